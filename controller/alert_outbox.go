package controller

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox keeps, in bbolt and in order, the alert messages the bus did
// not take: those of the last moments of a clean stop, when the broker has
// closed before the controller finished (it closes first so that what it
// acknowledged is still handled), and those of an external broker that is
// away. They are published, oldest first, as soon as the bus takes them
// again: every second while Run runs, and when it next starts. While any
// wait, new messages join them, so subscribers get them in order.

var bucketAlertOutbox = []byte("alert_outbox")

// maxKept bounds the outbox; a message past it is dropped and counted as
// an error.
const maxKept = 10000

// keptRetryEvery is how often the teller tries the outbox again.
const keptRetryEvery = time.Second

// keptMessage is an alert message waiting in the outbox.
type keptMessage struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
}

// loadOutbox counts the messages kept by an earlier run; tx is NewAlerts'.
func (e *Alerts) loadOutbox(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketAlertOutbox)
	if err != nil {
		return err
	}
	e.kept.Store(int64(b.Stats().KeyN))
	return nil
}

// publish sends one alert message on the bus, behind any kept ones; one
// the bus does not take is kept.
func (e *Alerts) publish(topic string, payload []byte, id string) {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	err := e.sendKeptLocked()
	if err == nil {
		if err = e.o.Bus.Publish(topic, 1, false, payload); err == nil {
			e.published.WithLabelValues("ok").Inc()
			return
		}
	}
	e.failedLocked(err)
	if kerr := e.keepLocked(topic, payload); kerr != nil {
		e.published.WithLabelValues("error").Inc()
		e.log.Error("alert message lost", "alert", id, "err", kerr, "publish_err", err)
		return
	}
	e.published.WithLabelValues("kept").Inc()
}

// retryKept publishes kept messages if any wait.
func (e *Alerts) retryKept() {
	if e.kept.Load() == 0 {
		return
	}
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	if err := e.sendKeptLocked(); err != nil {
		e.failedLocked(err)
	}
}

// failedLocked says once, when publishing starts failing, that messages
// are being kept: a warning, unless the bus is closed because the server
// is stopping. e.pubMu is held.
func (e *Alerts) failedLocked(err error) {
	if e.pubFailing {
		return
	}
	e.pubFailing = true
	if errors.Is(err, ErrBusClosed) {
		e.log.Info("bus closed: alert messages kept to publish at the next start", "err", err)
		return
	}
	e.log.Warn("alert messages not published; kept to publish when the bus takes them",
		"err", err)
}

// keepLocked adds a message to the outbox; e.pubMu is held.
func (e *Alerts) keepLocked(topic string, payload []byte) error {
	if e.kept.Load() >= maxKept {
		return errors.New("the outbox is full")
	}
	val, err := json.Marshal(keptMessage{Topic: topic, Payload: payload})
	if err != nil {
		return err
	}
	if err := e.o.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlertOutbox)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), val)
	}); err != nil {
		return err
	}
	e.kept.Add(1)
	return nil
}

// sendKeptLocked publishes kept messages, oldest first, until none is
// left or the bus refuses one; e.pubMu is held. Without a bus they stay
// kept for a start that has one.
func (e *Alerts) sendKeptLocked() error {
	if e.o.Bus == nil {
		return nil
	}
	sent := 0
	defer func() {
		if sent > 0 {
			e.log.Info("published kept alert messages", "count", sent, "left", e.kept.Load())
		}
	}()
	for e.kept.Load() > 0 {
		var keys [][]byte
		var msgs []keptMessage
		if err := e.o.DB.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketAlertOutbox).Cursor()
			for k, v := c.First(); k != nil && len(keys) < 100; k, v = c.Next() {
				var m keptMessage
				if err := json.Unmarshal(v, &m); err != nil {
					m = keptMessage{} // unreadable: dropped below
				}
				keys, msgs = append(keys, append([]byte(nil), k...)), append(msgs, m)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(keys) == 0 {
			e.kept.Store(0)
			break
		}
		n := 0
		var perr error
		for _, m := range msgs {
			if m.Topic != "" {
				if perr = e.o.Bus.Publish(m.Topic, 1, false, m.Payload); perr != nil {
					break
				}
				e.published.WithLabelValues("ok").Inc()
			}
			n++
		}
		if n > 0 {
			if err := e.o.DB.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketAlertOutbox)
				for _, k := range keys[:n] {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
			e.kept.Add(-int64(n))
			sent += n
		}
		if perr != nil {
			return perr
		}
	}
	e.pubFailing = false
	return nil
}
