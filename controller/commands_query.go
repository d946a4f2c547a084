package controller

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns a command by id.
func (c *Commands) Get(id string) (CommandRecord, error) {
	c.mu.Lock()
	if rec, ok := c.dirty[id]; ok {
		defer c.mu.Unlock()
		return rec.clone(), nil
	}
	if rec, ok := c.recs[id]; ok {
		defer c.mu.Unlock()
		return rec.clone(), nil
	}
	c.mu.Unlock()
	var rec CommandRecord
	err := c.o.DB.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCommands).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("command %q: %w", id, ErrCommandNotFound)
		}
		return json.Unmarshal(v, &rec)
	})
	return rec, err
}

// CommandFilter selects commands from the log; zero fields select all.
type CommandFilter struct {
	Device, Station, State, Issuer, Name string
	Since                                time.Time // created at or after
	// Visible, when set, must accept a command's station.
	Visible func(station string) bool
	// Limit bounds the answer; default 100, at most 10000.
	Limit int
}

func (f CommandFilter) match(rec *CommandRecord) bool {
	return (f.Device == "" || rec.Device == f.Device) &&
		(f.Station == "" || rec.Station == f.Station) &&
		(f.State == "" || rec.State == f.State) &&
		(f.Issuer == "" || rec.Issuer == f.Issuer) &&
		(f.Name == "" || rec.Name == f.Name) &&
		(f.Since.IsZero() || !rec.Created.Before(f.Since)) &&
		(f.Visible == nil || f.Visible(rec.Station))
}

// List returns the commands f selects, newest first.
func (c *Commands) List(f CommandFilter) ([]CommandRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 10000)
	// Records changed in memory and not written yet win over the log's.
	c.mu.Lock()
	fresh := make(map[string]CommandRecord, len(c.dirty)+len(c.recs))
	for id, rec := range c.recs {
		fresh[id] = rec.clone()
	}
	for id, rec := range c.dirty {
		fresh[id] = rec.clone()
	}
	c.mu.Unlock()

	// Ids begin with the creation time (UTC, seconds), so the walk from
	// the newest stops before the second of Since.
	var stopAt string
	if !f.Since.IsZero() {
		stopAt = newID(f.Since, 0)[:len("c20060102-150405")]
	}
	out := []CommandRecord{}
	err := c.o.DB.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCommands).Cursor()
		for k, v := cur.Last(); k != nil && len(out) < f.Limit; k, v = cur.Prev() {
			if stopAt != "" && string(k) < stopAt {
				break
			}
			rec, ok := fresh[string(k)]
			if !ok {
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("command %s: %w", k, err)
				}
			}
			if f.match(&rec) {
				out = append(out, rec)
			}
		}
		return nil
	})
	return out, err
}
