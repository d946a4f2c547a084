package loadgen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is a broker or server the load generator started.
type Process struct {
	Name string
	Addr string // its MQTT address, host:port
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // of Wait, set before done closes
}

// FreeAddr returns a loopback address with a port free at the moment.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start runs bin with args and env added to this process's environment,
// its output to logFile, and waits up to 30 s for waitAddr to accept
// connections.
func Start(name, bin string, args, env []string, logFile, waitAddr string) (*Process, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Addr: waitAddr, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", waitAddr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			_ = f.Close()
			return nil, fmt.Errorf("%s exited at start (%v); see %s", name, p.err, logFile)
		default:
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return nil, fmt.Errorf("%s did not listen on %s: %w", name, waitAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop asks the process to end (SIGTERM), kills it after 15 s, and waits.
func (p *Process) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.log.Close()
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil // ended by the signal, as asked
	}
	return p.err
}

// StartMosquitto runs Debian's Mosquitto (bin, e.g. /usr/sbin/mosquitto) in
// dir on a free loopback port, letting anyone in, with no limit on queued
// or in-flight messages, so what it relays is what it can.
func StartMosquitto(bin, dir string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"+
		"persistence false\nlog_type error\nmax_inflight_messages 0\nmax_queued_messages 0\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return Start("mosquitto", bin, []string{"-c", conf}, nil, filepath.Join(dir, "mosquitto.log"),
		addr)
}
