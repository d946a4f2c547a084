// Package mosquitto runs Debian's Mosquitto broker for tests: on a free
// loopback port, with a generated configuration, killed and restarted at
// will, and stopped when the test ends.
package mosquitto

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config is what the broker is started with.
type Config struct {
	// PasswordFile and ACLFile, if set, make the broker refuse anonymous
	// clients and check logins and topics against them.
	PasswordFile string
	ACLFile      string
	// Extra lines for mosquitto.conf.
	Extra []string
}

// Broker is a running mosquitto.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	Addr string // 127.0.0.1:port
	log  *lockedBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary returns the path of mosquitto, failing the test if it is not
// installed: CI installs it (.ci/run), so a missing broker is a broken
// setup, not a reason to pass.
func Binary(t testing.TB) string {
	t.Helper()
	if bin, err := exec.LookPath("mosquitto"); err == nil {
		return bin
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("mosquitto not installed (apt-get install -y mosquitto)")
	return ""
}

// Start runs mosquitto until the test ends.
func Start(t testing.TB, c Config) *Broker {
	t.Helper()
	bin := Binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // mosquitto takes the port next

	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		// As root, mosquitto would become the mosquitto user and lose
		// access to the test's files.
		"user root",
	}
	if c.PasswordFile != "" || c.ACLFile != "" {
		lines = append(lines, "allow_anonymous false")
	} else {
		lines = append(lines, "allow_anonymous true")
	}
	if c.PasswordFile != "" {
		lines = append(lines, "password_file "+c.PasswordFile)
	}
	if c.ACLFile != "" {
		lines = append(lines, "acl_file "+c.ACLFile)
	}
	lines = append(lines, c.Extra...)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Broker{t: t, bin: bin, conf: conf, Addr: fmt.Sprintf("127.0.0.1:%d", port),
		log: &lockedBuffer{}}
	b.Restart()
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.log.String())
		}
	})
	return b
}

// URL is the broker's address as tcp://127.0.0.1:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr }

// Log returns what mosquitto logged so far.
func (b *Broker) Log() string { return b.log.String() }

// Kill ends the broker with SIGKILL, as a crash would; it loses every
// session, subscription and retained message.
func (b *Broker) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
}

// Restart starts the broker (again, after Kill) on the same port and waits
// until it listens.
func (b *Broker) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		b.t.Fatal("mosquitto already running")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command(b.bin, "-c", b.conf)
		cmd.Stdout, cmd.Stderr = b.log, b.log
		if err := cmd.Start(); err != nil {
			b.t.Fatal(err)
		}
		if listening(b.Addr, time.Now().Add(3*time.Second)) {
			b.cmd = cmd
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// The port may still be held by the killed broker's socket for a
		// moment: try again until the deadline.
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %s:\n%s", b.Addr, b.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// listening polls addr until it accepts a connection or the deadline.
func listening(addr string, deadline time.Time) bool {
	for {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reload makes mosquitto read its password and ACL files again (SIGHUP).
func (b *Broker) Reload() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		b.t.Fatal("mosquitto is not running")
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
}
