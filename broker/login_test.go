package broker

import (
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestConcurrentLoginsLeaveOneSession: logins with the same client id that
// arrive together end with one live session that still gets its commands,
// not several, one of them deaf.
func TestConcurrentLoginsLeaveOneSession(t *testing.T) {
	e := start(t, nil)
	bus := e.b.Bus()
	defer bus.Close()
	connected := func() float64 {
		return gather(t, e.reg, "waystation_broker_clients_connected", nil)
	}
	cmd := "waystation/v1/st-1/ac-1/cmd"

	for trial := range 12 {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			clients []paho.Client
		)
		start := make(chan struct{})
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := dial(t, e.url(), "ac-1", "ac-1", fleet["ac-1"].secret, nil)
				if err == nil {
					mu.Lock()
					clients = append(clients, c)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()

		eventually(t, "one session left", func() bool { return connected() == 1 })
		var live paho.Client
		eventually(t, "the losers notice", func() bool {
			n := 0
			for _, c := range clients {
				if c.IsConnectionOpen() {
					n, live = n+1, c
				}
			}
			return n == 1
		})

		got := newInbox()
		if tok := live.Subscribe(cmd, 1, got.paho); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("trial %d: subscribe: %v", trial, tok.Error())
		}
		if err := bus.Publish(cmd, 1, false, []byte(`{"id":"c1"}`)); err != nil {
			t.Fatal(err)
		}
		if m := got.next(t); m.topic != cmd {
			t.Fatalf("trial %d: got %s", trial, m.topic)
		}
		for _, c := range clients {
			c.Disconnect(0)
		}
		eventually(t, "all gone", func() bool { return connected() == 0 })
	}
}

// TestHeldLoginsWaitForOpen: with HoldLogins, a device's login completes
// only once OpenLogins is called.
func TestHeldLoginsWaitForOpen(t *testing.T) {
	e := start(t, func(o *Options) { o.HoldLogins = true })
	done := make(chan error, 1)
	go func() {
		_, err := dial(t, e.url(), "ac-1", "ac-1", fleet["ac-1"].secret, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("login finished before logins opened: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	e.b.OpenLogins()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("login still held after OpenLogins")
	}
}
