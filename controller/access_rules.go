package controller

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketAccessRules = []byte("access_rules")

// StationRules are a station's own access rules. A station without any
// keeps the defaults: every method allowed; open to all only when it
// belongs to no organisation.
type StationRules struct {
	Station string `json:"station"`
	// Methods are the access methods the station's terminals accept.
	Methods []string `json:"methods"`
	// OpenToAll lets in the credentials of every organisation, not only
	// those of the station's own.
	OpenToAll bool      `json:"open_to_all"`
	Updated   time.Time `json:"updated,omitzero"`
}

// RulesUpdate changes some of a station's rules; nil fields stay.
type RulesUpdate struct {
	Methods   []string `json:"methods,omitempty"`
	OpenToAll *bool    `json:"open_to_all,omitempty"`
}

// AccessRules holds every station's access rules in memory, backed by
// bbolt. It is safe for concurrent use.
type AccessRules struct {
	db  *bolt.DB
	now func() time.Time

	writeMu sync.Mutex   // serialises Update; mu is never held across a disk write
	mu      sync.RWMutex // guards rules
	rules   map[string]StationRules

	changed chan struct{} // a token in it: some rules changed
}

// NewAccessRules loads the rules stored in db; now is the clock of updates.
func NewAccessRules(db *bolt.DB, now func() time.Time) (*AccessRules, error) {
	if now == nil {
		now = time.Now
	}
	ar := &AccessRules{db: db, now: now, rules: map[string]StationRules{},
		changed: make(chan struct{}, 1)}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccessRules)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r StationRules
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("access rules of %s: %w", k, err)
			}
			ar.rules[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load access rules: %w", err)
	}
	return ar, nil
}

// Changes delivers a token after some station's rules changed.
func (ar *AccessRules) Changes() <-chan struct{} { return ar.changed }

// Get returns the rules of station, whose organisation is org.
func (ar *AccessRules) Get(station, org string) StationRules {
	ar.mu.RLock()
	r, ok := ar.rules[station]
	ar.mu.RUnlock()
	if ok {
		return r
	}
	return StationRules{Station: station, Methods: AccessMethods, OpenToAll: org == ""}
}

// Update changes the rules of station (of organisation org) and returns
// them.
func (ar *AccessRules) Update(station, org string, u RulesUpdate) (StationRules, error) {
	var methods []string
	if u.Methods != nil {
		var err error
		if methods, err = checkMethods(u.Methods); err != nil {
			return StationRules{}, err
		}
	}

	ar.writeMu.Lock()
	defer ar.writeMu.Unlock()
	ar.mu.RLock()
	r, ok := ar.rules[station]
	ar.mu.RUnlock()
	if !ok {
		r = StationRules{Station: station, Methods: AccessMethods, OpenToAll: org == ""}
	}
	if methods != nil {
		r.Methods = methods
	}
	if u.OpenToAll != nil {
		r.OpenToAll = *u.OpenToAll
	}
	r.Methods = slices.Clone(r.Methods)
	r.Updated = ar.now().UTC().Truncate(time.Millisecond)
	buf, err := json.Marshal(r)
	if err != nil {
		return StationRules{}, err
	}
	err = ar.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccessRules).Put([]byte(station), buf)
	})
	if err != nil {
		return StationRules{}, fmt.Errorf("store access rules of %s: %w", station, err)
	}
	ar.mu.Lock()
	ar.rules[station] = r
	ar.mu.Unlock()
	select {
	case ar.changed <- struct{}{}:
	default:
	}
	return r, nil
}

// admits reports whether a credential of org may enter a station of
// stationOrg under rules r.
func (r StationRules) admits(credOrg, stationOrg string) bool {
	return r.OpenToAll || (stationOrg != "" && credOrg == stationOrg)
}
