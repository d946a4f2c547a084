package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Defaults and environment variables of the client commands.
const (
	defaultServer         = "http://127.0.0.1:8080"
	defaultRequestTimeout = 10 * time.Second
	envServer             = "WAYSTATION_SERVER"
	envToken              = "WAYSTATION_TOKEN"
	adminTokenFile        = "admin.token" // written by serve in its data folder
)

// maxAnswerBytes bounds an API answer read by the client.
const maxAnswerBytes = 32 << 20

// clientOptions are the flags every client command takes.
type clientOptions struct {
	server  string
	token   string
	data    string
	output  outputFormat
	timeout time.Duration
}

// addClientFlags gives cmd the client flags. The server and token flags
// win over their environment variables, which win over the defaults.
func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	o.output = outputTable
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "the server's HTTP address (or $"+envServer+")")
	f.StringVar(&o.token, "token", "", "operator token (or $"+envToken+
		"; else the admin.token in --data)")
	f.StringVar(&o.data, "data", "./data",
		"the server's data folder, read for its admin.token when no token is given")
	f.VarP(&o.output, "output", "o", "output: table or json")
	f.DurationVar(&o.timeout, "timeout", defaultRequestTimeout, "how long to wait for each answer")
}

// client talks to the HTTP API of a running server.
type client struct {
	base    *url.URL
	token   string
	timeout time.Duration
	http    *http.Client
	clock   serverClock // the server's time and zone, as of its last answer
}

// connect resolves the server address and operator token of cmd and
// returns a client; the caller closes it.
func (o *clientOptions) connect(cmd *cobra.Command) (*client, error) {
	server := o.server
	if env := strings.TrimSpace(os.Getenv(envServer)); env != "" && !cmd.Flags().Changed("server") {
		server = env
	}
	base, err := parseServer(server)
	if err != nil {
		return nil, err
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: want a positive duration, e.g. 10s", o.timeout)
	}
	token, err := o.resolveToken(cmd)
	if err != nil {
		return nil, err
	}

	// A transport of its own, so close leaves no idle connection behind.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &client{
		base:    base,
		token:   token,
		timeout: o.timeout,
		http:    &http.Client{Timeout: o.timeout, Transport: transport},
	}, nil
}

// parseServer reads a --server value; "host:port" alone means http.
func parseServer(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s != "" && !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server address %q: want http://host:port or https://host:port "+
			"(--server or $%s)", s, envServer)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// resolveToken finds the operator token: --token, else $WAYSTATION_TOKEN,
// else the admin token the server wrote in its data folder.
func (o *clientOptions) resolveToken(cmd *cobra.Command) (string, error) {
	if cmd.Flags().Changed("token") {
		if t := strings.TrimSpace(o.token); t != "" {
			return t, nil
		}
		return "", errors.New("--token is empty")
	}
	if t := strings.TrimSpace(os.Getenv(envToken)); t != "" {
		return t, nil
	}

	path := filepath.Join(o.data, adminTokenFile)
	buf, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("no operator token: pass --token, set %s, or run on the server's "+
			"machine with --data pointing at its data folder (there is no %s)", envToken, path)
	case err != nil:
		return "", fmt.Errorf("read operator token: %w (run as the user that runs the server, "+
			"or pass --token)", err)
	}
	t := strings.TrimSpace(string(buf))
	if t == "" {
		return "", fmt.Errorf("%s is empty: restart the server to write a new one, or pass --token",
			path)
	}
	return t, nil
}

// close lets go of the client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// get calls GET on an API path such as "api/v1/stations" and returns the
// answer's body.
func (c *client) get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	return c.call(ctx, http.MethodGet, path, query, nil)
}

// post sends in as JSON to an API path and returns the answer's body.
func (c *client) post(ctx context.Context, path string, in any) ([]byte, error) {
	return c.call(ctx, http.MethodPost, path, nil, in)
}

func (c *client) call(ctx context.Context, method, path string, query url.Values,
	in any) ([]byte, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if c.token != "" { // public routes are called without one
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	c.clock.observe(resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		return nil, newAPIError(resp.StatusCode, raw)
	}
	return raw, nil
}

// unreachable explains a request that got no answer.
func (c *client) unreachable(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the server at %s: connection refused; "+
			"is `waystation serve` running there? (set --server or $%s)", c.base, envServer)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer from the server at %s within %v (raise --timeout, or check "+
			"the server)", c.base, c.timeout)
	}
	return fmt.Errorf("cannot reach the server at %s: %w (set --server or $%s)", c.base, err,
		envServer)
}

// apiError is a call the API refused: its message and HTTP status.
type apiError struct {
	status  int
	message string
}

func newAPIError(status int, raw []byte) *apiError {
	var body struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(raw, &body) == nil {
		msg = body.Error
	}
	if msg == "" {
		// Not the API's error shape: a proxy, or not a waystation server.
		msg = strings.TrimSpace(printable(string(raw)))
		if r := []rune(msg); len(r) > 200 {
			msg = string(r[:200]) + "..."
		}
	}
	if msg == "" {
		msg = "no message"
	}
	return &apiError{status: status, message: msg}
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d %s)", e.message, e.status, http.StatusText(e.status))
	if e.status == http.StatusUnauthorized {
		msg += ": check --token or $" + envToken + " (the server writes an admin token to " +
			adminTokenFile + " in its data folder)"
	}
	return msg
}
