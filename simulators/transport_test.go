package simulators

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/waystation/waystation/schemas"
)

func TestDeviceOverWebSocket(t *testing.T) {
	b := startBroker(t)
	w := watchLive(t, b)

	// Mochi's own WebSocket listener cannot bind port 0 and say which port
	// it got, so the test serves the upgrade itself and hands the
	// connection to the same broker.
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	var conns sync.WaitGroup
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		conns.Add(1)
		defer conns.Done()
		defer c.Close()
		_ = b.srv.EstablishConnection("t1", &wsConn{Conn: c.UnderlyingConn(), c: c})
	}))
	t.Cleanup(func() {
		hs.Close()
		conns.Wait()
	})

	s := spec("st-1", "st-1-lock", schemas.KindLock)
	d := NewDevice(s, DeviceOptions{Broker: "ws://" + strings.TrimPrefix(hs.URL, "http://") + "/mqtt"})
	r := runDevice(t, d)
	eventually(t, 5*time.Second, "telemetry over WebSocket", func() bool {
		return len(w.telemetry(s.Device, s.Kind)) >= 2
	})

	// A power cut works on a WebSocket too: the will speaks for it.
	first := d.Conn()
	if err := d.PowerCut(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "will, then back online", func() bool {
		sts := w.statuses(s.Device)
		return len(sts) == 3 && !sts[1].Online && sts[1].Conn == first && sts[2].Online
	})
	r.stop(t)
}

func TestRunStopsWhileABrokerNeverAnswers(t *testing.T) {
	// A listener that accepts and then says nothing: the device waits for
	// a CONNACK that never comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	})

	d := NewDevice(spec("st-1", "st-1-ac", schemas.KindAC),
		DeviceOptions{Broker: "tcp://" + ln.Addr().String()})
	r := runDevice(t, d)
	eventually(t, 2*time.Second, "a connection accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(held) > 0
	})
	start := time.Now()
	r.stop(t)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %v to return while waiting for a CONNACK", took)
	}
	if d.Connected() {
		t.Error("connected without a CONNACK")
	}
}

// wsConn carries MQTT over binary WebSocket messages, the way a broker's
// WebSocket listener does.
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader // the message being read, nil between messages
}

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("not a binary message")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r, err = nil, nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
