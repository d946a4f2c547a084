package controller

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// eventsWriteWait bounds one write to an event stream: the HTTP server has
// no write timeout (streams last), so a client that stops reading would
// otherwise hold its handler for ever.
const eventsWriteWait = 10 * time.Second

// eventsRetryMS is the reconnection delay the stream asks of EventSource
// clients, in milliseconds.
const eventsRetryMS = 3000

// handleEvents adds the live event stream when it is configured.
func (a *API) handleEvents() {
	if a.o.Events != nil {
		a.handle("GET /api/v1/events", PermRead, a.streamEvents)
	}
}

// streamEvents serves the live event stream as server-sent events
// (text/event-stream): each notice in the operator's scope is one event
// whose data is the notice's JSON and whose id is sent back as
// Last-Event-ID (header, or the last_event_id query parameter) to replay
// what was missed. An "event: gap" says events were missed that are no
// longer kept: reload what is shown. Comment lines keep an idle stream
// alive. ?station=ID keeps one station's notices, ?type=T the notices of
// type T or T.*.
func (a *API) streamEvents(w http.ResponseWriter, r *http.Request, op Operator) {
	e := a.o.Events
	q := r.URL.Query()
	f := EventFilter{Station: q.Get("station"), Type: strings.TrimSuffix(q.Get("type"), ".")}
	if f.Station != "" {
		st, err := a.o.Registry.Station(f.Station)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		if !a.allowStation(w, r, op, st) {
			return
		}
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("last_event_id")
	}
	sub, replay, gap, err := e.subscribe(op, f, lastID)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer e.unsubscribe(sub)
	a.log.Debug("event stream opened", "operator", op.Name, "replay", len(replay), "gap", gap)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	buf.WriteString("retry: " + strconv.Itoa(eventsRetryMS) + "\n\n")
	if gap {
		buf.WriteString("event: gap\ndata: {\"reason\":\"events were missed that are no longer " +
			"kept\"}\n\n")
	}
	for _, ev := range replay {
		e.frame(&buf, ev)
	}
	rc := http.NewResponseController(w)
	if !a.sendFrames(rc, w, &buf) {
		return
	}

	beat := time.NewTicker(e.o.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				a.log.Debug("event stream ended by the server", "operator", op.Name,
					"reason", sub.why)
				return
			}
			e.frame(&buf, ev)
			// Whatever else is queued goes in the same write.
			for more := true; more; {
				select {
				case ev, ok := <-sub.ch:
					if !ok {
						a.sendFrames(rc, w, &buf)
						return
					}
					e.frame(&buf, ev)
				default:
					more = false
				}
			}
		case <-beat.C:
			// A revoked operator's stream ends at the next beat.
			if now, err := a.authenticate(r); err != nil || !now.Can(PermRead) ||
				!slices.Equal(now.Orgs, op.Orgs) {
				e.revoke(sub)
				a.log.Info("event stream ended: the operator's token or scope changed",
					"operator", op.Name)
				return
			}
			buf.WriteString(": beat\n\n")
		case <-r.Context().Done():
			a.log.Debug("event stream closed by the client", "operator", op.Name)
			return
		}
		if !a.sendFrames(rc, w, &buf) {
			return
		}
	}
}

// frame writes ev as one server-sent event.
func (e *Events) frame(buf *bytes.Buffer, ev event) {
	buf.WriteString("id: ")
	buf.WriteString(e.id(ev.seq))
	buf.WriteString("\ndata: ")
	buf.Write(ev.data) // JSON from encoding/json has no raw newline
	buf.WriteString("\n\n")
}

// sendFrames writes and flushes buf within eventsWriteWait, then empties
// it; false means the client is gone.
func (a *API) sendFrames(rc *http.ResponseController, w http.ResponseWriter,
	buf *bytes.Buffer) bool {
	err := rc.SetWriteDeadline(time.Now().Add(eventsWriteWait))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	_, err = w.Write(buf.Bytes())
	buf.Reset()
	if err == nil {
		err = rc.Flush()
	}
	if err != nil {
		a.log.Debug("event stream write failed", "err", err)
		return false
	}
	return true
}
