package controller

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Silence keeps the alerts it matches from notifying anyone until it
// expires: a technician at work. Silenced alerts are still recorded and
// listed. An AED cabinet-opened alert is never silenced.
type Silence struct {
	ID string `json:"id"`
	// Station, Device and Rule select alerts; each given one must match,
	// and at least one is given.
	Station   string    `json:"station,omitempty"`
	Device    string    `json:"device,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Expires   time.Time `json:"expires"`
}

// matches reports whether s silences a at now.
func (s *Silence) matches(a *Alert, now time.Time) bool {
	return now.Before(s.Expires) && a.Rule != RuleAEDOpened &&
		(s.Station == "" || s.Station == a.Station) &&
		(s.Device == "" || s.Device == a.Device) &&
		(s.Rule == "" || s.Rule == a.Rule)
}

// MaxSilence is the longest a silence may last.
const MaxSilence = 30 * 24 * time.Hour

// silence marks a new or reopened alert silenced when a silence matches.
// e.mu must be held.
func (e *Alerts) silence(a *Alert) {
	now := e.o.Now()
	a.Silenced, a.SilencedBy = false, ""
	for _, s := range e.silences {
		if s.matches(a, now) {
			a.Silenced, a.SilencedBy = true, s.ID
			return
		}
	}
}

// AddSilence stores a silence and applies it to the open alerts it
// matches. Station and device must be registered, the rule one of
// AlertRules; Expires must be in the future, at most MaxSilence away.
func (e *Alerts) AddSilence(s Silence) (Silence, error) {
	s.Station, s.Device, s.Rule = strings.TrimSpace(s.Station), strings.TrimSpace(s.Device),
		strings.TrimSpace(s.Rule)
	s.Reason = strings.TrimSpace(s.Reason)
	now := e.o.Now()
	switch {
	case s.Station == "" && s.Device == "" && s.Rule == "":
		return Silence{}, fmt.Errorf("%w: give a station, a device or a rule", ErrInvalidSilence)
	case s.Reason == "":
		return Silence{}, fmt.Errorf("%w: give a reason (who is at work, and why)", ErrInvalidSilence)
	case len(s.Reason) > 500:
		return Silence{}, fmt.Errorf("%w: reason longer than 500 bytes", ErrInvalidSilence)
	case !s.Expires.After(now):
		return Silence{}, fmt.Errorf("%w: it expires at %s, not in the future", ErrInvalidSilence,
			s.Expires.Format(time.RFC3339))
	case s.Expires.Sub(now) > MaxSilence:
		return Silence{}, fmt.Errorf("%w: longer than %v", ErrInvalidSilence, MaxSilence)
	case s.Rule == RuleAEDOpened:
		return Silence{}, fmt.Errorf("%w: %s is never silenced", ErrInvalidSilence, RuleAEDOpened)
	case s.Rule != "" && !slices.Contains(AlertRules, s.Rule):
		return Silence{}, fmt.Errorf("%w: unknown rule %q (rules: %s)", ErrInvalidSilence, s.Rule,
			strings.Join(AlertRules, ", "))
	}
	if s.Station != "" {
		if _, err := e.o.Registry.Station(s.Station); err != nil {
			return Silence{}, fmt.Errorf("%w: %v", ErrInvalidSilence, err)
		}
	}
	if s.Device != "" {
		d, err := e.o.Registry.Device(s.Device)
		if err != nil {
			return Silence{}, fmt.Errorf("%w: %v", ErrInvalidSilence, err)
		}
		if s.Station != "" && d.Station != s.Station {
			return Silence{}, fmt.Errorf("%w: device %s is at station %s, not %s",
				ErrInvalidSilence, s.Device, d.Station, s.Station)
		}
	}
	s.CreatedAt = now

	e.mu.Lock()
	e.silenceSeq++
	s.ID = "s" + strconv.FormatUint(e.silenceSeq, 10)
	if err := e.putSilence(&s, e.silenceSeq); err != nil {
		e.silenceSeq--
		e.mu.Unlock()
		return Silence{}, err
	}
	e.silences[s.ID] = &s
	for _, a := range e.alerts {
		if a.Open() && !a.Silenced && s.matches(a, now) {
			a.Silenced, a.SilencedBy = true, s.ID
			a.Version++
			e.dirty[a.ID] = struct{}{}
		}
	}
	e.mu.Unlock()
	return s, e.Flush()
}

// putSilence stores s, and seq as the last silence id given when it is
// past the stored one.
func (e *Alerts) putSilence(s *Silence, seq uint64) error {
	buf, err := json.Marshal(s)
	if err != nil {
		return err
	}
	err = e.o.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSilences)
		if b.Sequence() < seq {
			if err := b.SetSequence(seq); err != nil {
				return err
			}
		}
		return b.Put([]byte(s.ID), buf)
	})
	if err != nil {
		return fmt.Errorf("store silence: %w", err)
	}
	return nil
}

// Silences returns the silences not yet expired that keep returns true
// for (nil keeps all), soonest to expire first.
func (e *Alerts) Silences(keep func(Silence) bool) []Silence {
	now := e.o.Now()
	e.mu.Lock()
	out := []Silence{}
	for _, s := range e.silences {
		if now.Before(s.Expires) && (keep == nil || keep(*s)) {
			out = append(out, *s)
		}
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Silence) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// GetSilence returns one silence, expired or not.
func (e *Alerts) GetSilence(id string) (Silence, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.silences[id]
	if !ok {
		return Silence{}, fmt.Errorf("%w: %q", ErrSilenceNotFound, id)
	}
	return *s, nil
}

// RemoveSilence ends a silence now; alerts it kept quiet that still fire
// notify at once.
func (e *Alerts) RemoveSilence(id string) (Silence, error) {
	e.mu.Lock()
	s, ok := e.silences[id]
	if !ok {
		e.mu.Unlock()
		return Silence{}, fmt.Errorf("%w: %q", ErrSilenceNotFound, id)
	}
	err := e.o.DB.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSilences).Delete([]byte(id))
	})
	if err != nil {
		e.mu.Unlock()
		return Silence{}, fmt.Errorf("remove silence: %w", err)
	}
	delete(e.silences, id)
	e.sweepSilences(e.o.Now())
	e.mu.Unlock()
	return *s, e.Flush()
}

// sweepSilences drops expired silences and lets the open alerts no silence
// covers any more notify. e.mu must be held.
func (e *Alerts) sweepSilences(now time.Time) {
	var expired []string
	for id, s := range e.silences {
		if !now.Before(s.Expires) {
			expired = append(expired, id)
		}
	}
	if len(expired) > 0 {
		err := e.o.DB.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSilences)
			for _, id := range expired {
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.log.Error("expired silences not removed", "err", err)
		} else {
			for _, id := range expired {
				delete(e.silences, id)
			}
		}
	}
	for _, a := range e.alerts {
		if !a.Silenced {
			continue
		}
		if !a.Open() {
			continue
		}
		e.silence(a)
		if a.Silenced {
			continue
		}
		a.Version++
		if a.State == AlertFiring && a.Severity == SeverityCritical {
			a.NextEscalation = now.Add(e.o.EscalateAfter)
		}
		e.notify(NoticeAlertUnsilenced, a, time.Time{})
	}
}
