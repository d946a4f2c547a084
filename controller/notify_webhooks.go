package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// Defaults of WebhooksOptions.
const (
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultWebhookRetryMin   = time.Second
	DefaultWebhookRetryMax   = 5 * time.Minute
	DefaultWebhookMaxAge     = 24 * time.Hour
	DefaultWebhookMaxPending = 10000
	DefaultWebhookPoll       = time.Second
)

// MinWebhookSecret is the shortest signing secret taken, in bytes.
const MinWebhookSecret = 16

// SignatureHeader carries a request's signature when a secret is set:
// "t=UNIX,v1=HEX", where HEX is the HMAC-SHA256 under the secret of UNIX
// (the send time in seconds), a dot and the body. A receiver recomputes it
// to know the notice comes from this server, and may refuse an old t to
// stop replays.
const SignatureHeader = "X-Waystation-Signature"

// webhookIntake is how many notices may wait to be written to the outbox.
const webhookIntake = 4096

// bucketOutbox holds the notices not yet delivered: one sub-bucket per
// receiver URL, keyed by an 8-byte big-endian sequence so the oldest comes
// first.
var bucketOutbox = []byte("notify_outbox")

// Reasons a notice is dropped without being delivered; the reason label of
// waystation_notifications_dropped_total.
const (
	DropFull     = "full"     // the receiver's outbox was full: the oldest went
	DropExpired  = "expired"  // it could not be delivered within the maximum age
	DropRefused  = "refused"  // the receiver refused it for good (400, 413, 415, 422)
	DropOverload = "overload" // the outbox could not keep up with the notices
)

// WebhooksOptions configures webhook delivery. DB and URLs are required.
type WebhooksOptions struct {
	// DB keeps the outbox, so a restart loses nothing that was notified.
	DB *bolt.DB
	// URLs are the receivers, each checked with ParseWebhookURL.
	URLs []string
	// Timeout bounds one delivery attempt. Default DefaultWebhookTimeout.
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait between attempts, which doubles
	// from RetryMin with each failure in a row, randomised over its upper
	// half. Defaults DefaultWebhookRetryMin, DefaultWebhookRetryMax.
	RetryMin, RetryMax time.Duration
	// MaxAge is how long a notice is tried for before it is given up.
	// Default DefaultWebhookMaxAge.
	MaxAge time.Duration
	// MaxPending bounds each receiver's outbox; past it the oldest notice
	// is dropped. Default DefaultWebhookMaxPending.
	MaxPending int
	// Poll is how often (in wall time) a waiting receiver looks at the
	// clock again, so retries follow Now even when Now is not the wall
	// clock. Default DefaultWebhookPoll.
	Poll time.Duration
	// Secret, when set, signs every request: see SignatureHeader. At
	// least MinWebhookSecret bytes.
	Secret []byte
	// Client sends the requests; default a client of its own that does not
	// follow redirects.
	Client *http.Client
	// Now is the clock of retries and ages; default time.Now. Jitter is
	// a number in [0, 1); default math/rand/v2.
	Now    func() time.Time
	Jitter func() float64
	Logger *slog.Logger
	// Registerer receives the delivery metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Webhooks is a Notifier that POSTs each notice as JSON to every receiver
// URL. Notices wait in an outbox in bbolt until their receiver accepts them
// (any 2xx), so a receiver that is down gets them when it is back, after a
// restart too. Each receiver has a worker of its own: one that fails or
// hangs delays nobody else, and Notify never waits for any.
//
// Each request carries the notice's key as the Idempotency-Key header (it
// is in the body too): a notice is sent again when the answer to an
// earlier attempt is lost, and the receiver drops repeats by key.
type Webhooks struct {
	o     WebhooksOptions
	log   *slog.Logger
	recvs []*receiver

	intake chan outboxEntry
	mu     sync.Mutex // guards stopped
	// stopped is set once Run has drained the intake: later notices are
	// written to the outbox directly.
	stopped bool

	sent     *prometheus.CounterVec
	failed   *prometheus.CounterVec
	retried  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	pending  *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
	overload atomic.Bool // logged once per overload
}

// receiver is one webhook URL and its outbox.
type receiver struct {
	url  *url.URL
	id   []byte // the URL, the name of its outbox bucket
	host string // the metrics label
	wake chan struct{}

	mu sync.Mutex // guards pending and done, and trimming the outbox
	// pending is how many notices wait in its outbox.
	pending int64
	// done is the sequence of the last notice its worker finished with
	// (delivered or given up). Finished notices are deleted from the
	// outbox in batches, to spare a disk sync per notice; a kill -9 may
	// have a few of them sent again, which the receiver drops by key.
	done uint64
}

// webhookDeleteBatch is how many finished notices a worker deletes from the
// outbox at once, at most; it deletes them sooner when it has nothing to
// send.
const webhookDeleteBatch = 64

// outboxEntry is a notice waiting in the outbox.
type outboxEntry struct {
	Key    string          `json:"key"`
	Type   string          `json:"type"`
	Queued time.Time       `json:"queued"`
	Body   json.RawMessage `json:"body"` // the notice as sent
}

// ParseWebhookURL checks a receiver URL: http or https, with a host, and no
// fragment.
func ParseWebhookURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return nil, fmt.Errorf("webhook URL %q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("webhook URL %q: want http:// or https://", s)
	case u.Hostname() == "":
		return nil, fmt.Errorf("webhook URL %q: no host", s)
	case u.Fragment != "":
		return nil, fmt.Errorf("webhook URL %q: a fragment (#...) is never sent", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("webhook URL %q: port %q: want 1..65535", s, p)
		}
	}
	return u, nil
}

// NewWebhooks checks the receivers, opens the outbox and registers the
// delivery metrics. Notices left in the outbox by an earlier run are sent
// once Run starts.
func NewWebhooks(o WebhooksOptions) (*Webhooks, error) {
	if o.DB == nil {
		return nil, errors.New("webhooks: a database is required")
	}
	if len(o.URLs) == 0 {
		return nil, errors.New("webhooks: no receiver URL")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultWebhookTimeout
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultWebhookRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultWebhookRetryMax
	}
	if o.RetryMax < o.RetryMin {
		return nil, fmt.Errorf("webhooks: the longest wait between attempts (%v) is shorter "+
			"than the first (%v)", o.RetryMax, o.RetryMin)
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultWebhookMaxAge
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultWebhookMaxPending
	}
	if o.Poll <= 0 {
		o.Poll = DefaultWebhookPoll
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: o.Timeout}).DialContext,
				TLSHandshakeTimeout:   o.Timeout,
				ResponseHeaderTimeout: o.Timeout,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       time.Minute,
			},
			// A POST redirected becomes a GET: the URL is to be fixed.
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if o.Secret != nil && len(o.Secret) < MinWebhookSecret {
		return nil, fmt.Errorf("webhooks: the signing secret has %d bytes; want at least %d",
			len(o.Secret), MinWebhookSecret)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = mrand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Webhooks{o: o, log: o.Logger.With("component", "webhooks"),
		intake: make(chan outboxEntry, webhookIntake)}

	seen := map[string]bool{}
	for _, s := range o.URLs {
		u, err := ParseWebhookURL(s)
		if err != nil {
			return nil, err
		}
		if seen[u.String()] {
			return nil, fmt.Errorf("webhook URL %q given twice", u.Redacted())
		}
		seen[u.String()] = true
		w.recvs = append(w.recvs, &receiver{url: u, id: []byte(u.String()), host: u.Host,
			wake: make(chan struct{}, 1)})
	}
	if err := w.newMetrics(); err != nil {
		return nil, err
	}
	if err := w.openOutbox(seen); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Webhooks) newMetrics() error {
	labels := []string{"receiver"}
	w.sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_notifications_sent_total",
		Help: "Notices a webhook receiver accepted, by receiver host.",
	}, labels)
	w.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_notifications_failed_total",
		Help: "Webhook delivery attempts that failed (no answer, or not 2xx), by receiver host.",
	}, labels)
	w.retried = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_notifications_retried_total",
		Help: "Webhook delivery attempts after the first of a notice, by receiver host.",
	}, labels)
	w.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waystation_notifications_dropped_total",
		Help: "Notices given up without delivery, by receiver host and reason: full, " +
			"expired, refused, overload.",
	}, []string{"receiver", "reason"})
	w.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "waystation_notifications_pending",
		Help: "Notices waiting in the webhook outbox, by receiver host.",
	}, labels)
	w.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "waystation_notification_delivery_seconds",
		Help: "Time from a notice to its receiver accepting it, by receiver host.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900,
			3600},
	}, labels)
	for _, r := range w.recvs {
		w.sent.WithLabelValues(r.host)
		w.failed.WithLabelValues(r.host)
		w.retried.WithLabelValues(r.host)
		w.pending.WithLabelValues(r.host)
		w.latency.WithLabelValues(r.host)
		for _, why := range []string{DropFull, DropExpired, DropRefused, DropOverload} {
			w.dropped.WithLabelValues(r.host, why)
		}
	}
	if w.o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.sent, w.failed, w.retried, w.dropped, w.pending,
			w.latency} {
			if err := w.o.Registerer.Register(c); err != nil {
				return fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return nil
}

// openOutbox creates the receivers' buckets and counts what waits in them.
// Notices kept for a receiver no longer configured stay, and are sent if it
// is configured again.
func (w *Webhooks) openOutbox(configured map[string]bool) error {
	return w.o.DB.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketOutbox)
		if err != nil {
			return fmt.Errorf("open webhook outbox: %w", err)
		}
		for _, r := range w.recvs {
			b, err := top.CreateBucketIfNotExists(r.id)
			if err != nil {
				return fmt.Errorf("open webhook outbox of %s: %w", r.url.Redacted(), err)
			}
			n := int64(b.Stats().KeyN)
			r.pending = n
			w.pending.WithLabelValues(r.host).Add(float64(n))
			if n > 0 {
				w.log.Info("notices wait for a webhook receiver from before the restart",
					"receiver", r.url.Redacted(), "pending", n)
			}
		}
		return top.ForEachBucket(func(name []byte) error {
			if configured[string(name)] {
				return nil
			}
			if n := top.Bucket(name).Stats().KeyN; n > 0 {
				u, _ := url.Parse(string(name))
				shown := string(name)
				if u != nil {
					shown = u.Redacted()
				}
				w.log.Warn("notices wait for a webhook receiver that is no longer configured; "+
					"they are kept and sent if it is given again", "receiver", shown, "pending", n)
			}
			return nil
		})
	})
}

// Notify implements Notifier: it queues n for every receiver and returns
// at once. A notice without a key is given one.
func (w *Webhooks) Notify(n Notice) {
	if n.Key == "" {
		n.Key = "notice-" + randomHex()
	}
	body, err := json.Marshal(n)
	if err != nil {
		w.log.Error("notice not sent to webhooks: cannot encode it", "key", n.Key, "type", n.Type,
			"err", err)
		return
	}
	e := outboxEntry{Key: n.Key, Type: n.Type, Queued: w.o.Now(), Body: body}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		// Run has ended (the server is stopping): straight to the outbox,
		// for the next run.
		if err := w.store([]outboxEntry{e}); err != nil {
			w.log.Error("notice lost: cannot write it to the webhook outbox", "key", n.Key,
				"err", err)
		}
		return
	}
	select {
	case w.intake <- e:
		w.overload.Store(false)
	default:
		for _, r := range w.recvs {
			w.dropped.WithLabelValues(r.host, DropOverload).Inc()
		}
		if !w.overload.Swap(true) {
			w.log.Error("webhook outbox cannot keep up: notices dropped", "key", n.Key,
				"waiting", webhookIntake)
		}
	}
}

// Run writes notices to the outbox and delivers them until ctx ends. An
// attempt in flight then is abandoned (its notice stays in the outbox);
// notices still waiting to be written are written before Run returns.
func (w *Webhooks) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, r := range w.recvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.deliver(ctx, r)
		}()
	}
	err := w.write(ctx)
	wg.Wait()
	w.o.Client.CloseIdleConnections() // their goroutines end with Run
	return err
}

// write moves notices from the intake to the outbox, many in one
// transaction, and wakes the receivers.
func (w *Webhooks) write(ctx context.Context) error {
	for {
		var batch []outboxEntry
		select {
		case e := <-w.intake:
			batch = append(batch, e)
		case <-ctx.Done():
			// Whatever is still in the intake is written, and later
			// notices go straight to the outbox.
			w.mu.Lock()
			defer w.mu.Unlock()
			w.stopped = true
			for more := true; more; {
				select {
				case e := <-w.intake:
					batch = append(batch, e)
				default:
					more = false
				}
			}
			if err := w.store(batch); err != nil {
				return fmt.Errorf("webhook outbox: %w (%d notices lost)", err, len(batch))
			}
			return nil
		}
		for len(batch) < 512 {
			select {
			case e := <-w.intake:
				batch = append(batch, e)
				continue
			default:
			}
			break
		}
		if err := w.store(batch); err != nil {
			w.log.Error("notices lost: cannot write them to the webhook outbox",
				"count", len(batch), "err", err)
			continue
		}
		for _, r := range w.recvs {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}
}

// store appends entries to every receiver's outbox, dropping the oldest of
// a full one.
func (w *Webhooks) store(entries []outboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	vals := make([][]byte, len(entries))
	for i, e := range entries {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	added := make([]int64, len(w.recvs))
	trimmed := make([]int64, len(w.recvs))
	for _, r := range w.recvs {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	err := w.o.DB.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketOutbox)
		for i, r := range w.recvs {
			b := top.Bucket(r.id)
			for _, v := range vals {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				if err := b.Put(seqKey(seq), v); err != nil {
					return err
				}
			}
			added[i] = int64(len(vals))
			// The oldest unfinished go; Seek again after each Delete, after
			// which a cursor's Next would skip a key.
			over := r.pending + added[i] - int64(w.o.MaxPending)
			c := b.Cursor()
			for ; trimmed[i] < over; trimmed[i]++ {
				if k, _ := c.Seek(seqKey(r.done + 1)); k == nil {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, r := range w.recvs {
		n := added[i] - trimmed[i]
		r.pending += n
		w.pending.WithLabelValues(r.host).Add(float64(n))
		if trimmed[i] > 0 {
			w.dropped.WithLabelValues(r.host, DropFull).Add(float64(trimmed[i]))
			w.log.Warn("webhook outbox full: oldest notices dropped", "receiver", r.url.Redacted(),
				"dropped", trimmed[i], "kept", w.o.MaxPending)
		}
	}
	return nil
}

// deliver sends a receiver's notices oldest first until ctx ends. After a
// failed attempt the receiver is left alone for a while, doubling with
// each failure in a row: a receiver that is down is not hammered, and its
// notices keep their order.
func (w *Webhooks) deliver(ctx context.Context, r *receiver) {
	log := w.log.With("receiver", r.url.Redacted())
	var (
		failures  int       // attempts failed in a row
		notBefore time.Time // no attempt before, on w.o.Now
		headSeq   uint64    // the notice being tried
		attempts  int       // attempts at headSeq
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	unflushed := 0 // finished notices not yet deleted
	flush := func() {
		if unflushed > 0 {
			w.flush(r)
			unflushed = 0
		}
	}
	defer flush()
	finish := func(seq uint64, reason string) {
		w.finish(r, seq, reason)
		if unflushed++; unflushed >= webhookDeleteBatch {
			flush()
		}
	}
	// wait waits d (for ever when 0), or until a notice comes; false means
	// ctx ended.
	wait := func(d time.Duration) bool {
		flush()
		var fired <-chan time.Time
		if d > 0 {
			timer.Reset(d) // no stale tick since Go 1.23
			fired = timer.C
		}
		select {
		case <-fired:
		case <-r.wake:
		case <-ctx.Done():
			return false
		}
		timer.Stop()
		return true
	}

	for ctx.Err() == nil {
		seq, e, ok, err := w.head(r)
		if err != nil {
			log.Error("read the webhook outbox", "err", err)
			if !wait(w.o.Poll) {
				return
			}
			continue
		}
		if !ok {
			if !wait(0) { // until a notice comes
				return
			}
			continue
		}
		if seq != headSeq {
			headSeq, attempts = seq, 0
		}
		now := w.o.Now()
		if age := now.Sub(e.Queued); age > w.o.MaxAge {
			finish(seq, DropExpired)
			log.Warn("notice given up: not delivered within the maximum age", "key", e.Key,
				"type", e.Type, "age", age.Round(time.Second), "attempts", attempts)
			continue
		}
		if now.Before(notBefore) {
			if !wait(min(notBefore.Sub(now), w.o.Poll)) {
				return
			}
			continue
		}

		attempts++
		if attempts > 1 {
			w.retried.WithLabelValues(r.host).Inc()
		}
		retryAfter, err := w.post(ctx, r, e, attempts)
		if ctx.Err() != nil {
			return // the notice stays for the next run
		}
		var refused *refusedError
		switch {
		case err == nil:
			finish(seq, "")
			w.sent.WithLabelValues(r.host).Inc()
			w.latency.WithLabelValues(r.host).Observe(w.o.Now().Sub(e.Queued).Seconds())
			if failures > 0 {
				log.Info("webhook receiver accepts notices again", "failures", failures)
			}
			log.Debug("notice delivered", "key", e.Key, "attempts", attempts)
			failures, notBefore = 0, time.Time{}
		case errors.As(err, &refused):
			w.failed.WithLabelValues(r.host).Inc()
			finish(seq, DropRefused)
			log.Warn("notice refused by the webhook receiver for good", "key", e.Key,
				"type", e.Type, "err", err)
		default:
			w.failed.WithLabelValues(r.host).Inc()
			failures++
			delay := w.backoff(failures, retryAfter)
			notBefore = w.o.Now().Add(delay)
			if failures == 1 {
				log.Warn("webhook delivery failed; retrying with backoff", "key", e.Key,
					"err", err, "retry_in", delay)
			} else {
				log.Debug("webhook delivery failed again", "key", e.Key, "err", err,
					"failures", failures, "retry_in", delay)
			}
		}
	}
}

// backoff is the wait after the n-th failure in a row: RetryMin doubled
// n-1 times, at most RetryMax, then taken at random from its upper half so
// that receivers coming back are not hit by every server at once. A
// Retry-After from the receiver is honoured up to RetryMax.
func (w *Webhooks) backoff(n int, retryAfter time.Duration) time.Duration {
	d := w.o.RetryMax
	if n <= 62 {
		if x := w.o.RetryMin << (n - 1); x > 0 && x < d {
			d = x
		}
	}
	d = d/2 + time.Duration(w.o.Jitter()*float64(d/2))
	return min(max(d, retryAfter), w.o.RetryMax)
}

// refusedError is an answer that says the notice itself is unacceptable:
// sending it again will not help.
type refusedError struct{ status int }

func (e *refusedError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
}

// post makes one delivery attempt. It returns nil for a 2xx, a
// *refusedError for an answer that will not change, and any other error
// (with the receiver's Retry-After, if any) for one worth retrying.
func (w *Webhooks) post(ctx context.Context, r *receiver, e outboxEntry,
	attempt int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url.String(),
		bytes.NewReader(e.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "waystation-webhook/1")
	req.Header.Set("Idempotency-Key", e.Key)
	req.Header.Set("X-Waystation-Event", e.Type)
	req.Header.Set("X-Waystation-Attempt", strconv.Itoa(attempt))
	if w.o.Secret != nil {
		// The wall clock, not Now: the receiver checks t against its own.
		req.Header.Set(SignatureHeader, Sign(w.o.Secret, time.Now(), e.Body))
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drained so the connection is reused; the answer is not read further.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return 0, nil
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge ||
		s == http.StatusUnsupportedMediaType || s == http.StatusUnprocessableEntity:
		return 0, &refusedError{status: s}
	default:
		var retryAfter time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			retryAfter = time.Duration(secs) * time.Second
		}
		msg := fmt.Sprintf("HTTP %d %s", s, http.StatusText(s))
		if loc := resp.Header.Get("Location"); s >= 300 && s < 400 && loc != "" {
			msg += " to " + loc + " (give that URL)"
		}
		return retryAfter, errors.New(msg)
	}
}

// head returns the oldest notice of a receiver's outbox its worker has not
// finished with.
func (w *Webhooks) head(r *receiver) (uint64, outboxEntry, bool, error) {
	var seq uint64
	var e outboxEntry
	found := false
	err := w.o.DB.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketOutbox).Bucket(r.id).Cursor().Seek(seqKey(r.done + 1))
		if k == nil {
			return nil
		}
		found, seq = true, binary.BigEndian.Uint64(k)
		if err := json.Unmarshal(v, &e); err != nil {
			// Not ours to read: given up rather than blocking the rest.
			e = outboxEntry{Key: "unreadable-" + strconv.FormatUint(seq, 10)}
		}
		return nil
	})
	return seq, e, found, err
}

// finish records that a receiver's worker is done with notice seq; a
// reason counts it as dropped. The notice is deleted at the next flush.
func (w *Webhooks) finish(r *receiver, seq uint64, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := false
	err := w.o.DB.View(func(tx *bolt.Tx) error {
		kept = tx.Bucket(bucketOutbox).Bucket(r.id).Get(seqKey(seq)) != nil
		return nil
	})
	if err == nil && kept { // else the outbox was full and it went already
		r.pending--
		w.pending.WithLabelValues(r.host).Dec()
	}
	r.done = seq
	if reason != "" {
		w.dropped.WithLabelValues(r.host, reason).Inc()
	}
}

// flush deletes the notices a receiver's worker has finished with.
func (w *Webhooks) flush(r *receiver) {
	err := w.o.DB.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Bucket(r.id).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= r.done; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.log.Error("delete delivered notices from the webhook outbox",
			"receiver", r.url.Redacted(), "err", err)
	}
}

// Sign returns the SignatureHeader value of a body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func randomHex() string {
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
