package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/waystation/waystation/controller"
	"github.com/waystation/waystation/devices"
)

// A receiver gets each notice as a JSON POST whose Idempotency-Key header
// is the notice's key.
func ExampleWebhooks() {
	got := make(chan string, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n controller.Notice
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &n)
		got <- fmt.Sprintf("%s %s key=%s header=%s", r.Method, n.Type, n.Key,
			r.Header.Get("Idempotency-Key"))
	}))
	defer recv.Close()

	dir, _ := os.MkdirTemp("", "waystation-example")
	defer os.RemoveAll(dir)
	db, err := devices.OpenDB(filepath.Join(dir, "w.db"), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	hooks, err := controller.NewWebhooks(controller.WebhooksOptions{DB: db,
		URLs: []string{recv.URL}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- hooks.Run(ctx) }()

	hooks.Notify(controller.Notice{Type: "alert.raised", Key: "alert-a17-1-raised",
		Station: "ys-001", At: time.Now()})
	fmt.Println(<-got)
	cancel()
	<-stopped
	// Output: POST alert.raised key=alert-a17-1-raised header=alert-a17-1-raised
}

func ExampleParseWebhookURL() {
	for _, s := range []string{"https://hooks.example.com/night-desk", "hooks.example.com"} {
		if _, err := controller.ParseWebhookURL(s); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("ok", s)
	}
	// Output:
	// ok https://hooks.example.com/night-desk
	// webhook URL "hooks.example.com": want http:// or https://
}
