package devices

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/internal/record"
	"github.com/waystation/waystation/schemas"
)

var (
	bucketStations = []byte("stations")
	bucketDevices  = []byte("devices")
)

// Station is a rest station.
type Station struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Address string  `json:"address,omitempty"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Org     string  `json:"org,omitempty"` // the partner organisation that hosts it
	// Hours is "24h" or the daily opening window "HH:MM-HH:MM" in the
	// station's local time; a window may cross midnight.
	Hours   string    `json:"hours"`
	Created time.Time `json:"created"`
}

var hoursRE = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$`)

// Validate checks a station before it is stored.
func (s *Station) Validate() error {
	switch {
	case !schemas.ValidID(s.ID):
		return fmt.Errorf("%w: station id %q: want [a-z0-9][a-z0-9-]{0,31}", ErrInvalid, s.ID)
	case s.ID == schemas.AlertsStation:
		return fmt.Errorf("%w: station id %q is reserved for alert topics", ErrInvalid, s.ID)
	case strings.TrimSpace(s.Name) == "":
		return fmt.Errorf("%w: station %s: name is empty", ErrInvalid, s.ID)
	case !plainText(s.Name, 128):
		return fmt.Errorf("%w: station %s: name: at most 128 characters, no control characters",
			ErrInvalid, s.ID)
	case !plainText(strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s.Address), 256):
		// An address may run over lines; other control characters are out.
		return fmt.Errorf("%w: station %s: address: at most 256 characters, no control characters",
			ErrInvalid, s.ID)
	case !plainText(s.Org, 64):
		return fmt.Errorf("%w: station %s: org: at most 64 characters, no control characters",
			ErrInvalid, s.ID)
	case math.IsNaN(s.Lat) || s.Lat < -90 || s.Lat > 90:
		return fmt.Errorf("%w: station %s: latitude %v outside -90..90", ErrInvalid, s.ID, s.Lat)
	case math.IsNaN(s.Lon) || s.Lon < -180 || s.Lon > 180:
		return fmt.Errorf("%w: station %s: longitude %v outside -180..180", ErrInvalid, s.ID, s.Lon)
	case s.Hours != "24h" && !hoursRE.MatchString(s.Hours):
		return fmt.Errorf("%w: station %s: hours %q: want 24h or HH:MM-HH:MM", ErrInvalid, s.ID, s.Hours)
	}
	return nil
}

// Device is a registered device. Its secret is kept only as an Argon2id hash.
type Device struct {
	ID        string       `json:"id"`
	Station   string       `json:"station"`
	Kind      schemas.Kind `json:"kind"`
	Model     string       `json:"model,omitempty"`
	Firmware  string       `json:"firmware,omitempty"` // as registered; the twin has what it reports
	IntervalS int          `json:"interval_s,omitempty"`
	Created   time.Time    `json:"created"`
}

// Validate checks a device before it is stored.
func (d *Device) Validate() error {
	switch {
	case !schemas.ValidID(d.ID):
		return fmt.Errorf("%w: device id %q: want [a-z0-9][a-z0-9-]{0,31}", ErrInvalid, d.ID)
	case !d.Kind.Valid():
		return fmt.Errorf("%w: device %s: unknown kind %q (want lock, ac, charger or aed)",
			ErrInvalid, d.ID, d.Kind)
	case !plainText(d.Model, 64) || !plainText(d.Firmware, 64):
		return fmt.Errorf("%w: device %s: model and firmware: at most 64 characters, "+
			"no control characters", ErrInvalid, d.ID)
	case d.IntervalS < 0 || d.IntervalS > 86400:
		return fmt.Errorf("%w: device %s: interval %ds outside 0..86400", ErrInvalid, d.ID, d.IntervalS)
	}
	return nil
}

// plainText reports whether s is valid UTF-8 of at most max characters
// with no control characters: it is shown in tables, pages and logs.
func plainText(s string, max int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// storedDevice is a device as kept in bbolt, with its secret hash.
type storedDevice struct {
	Device
	SecretHash []byte `json:"secret_hash"`
	// BrokerHash is the secret's hash for an external broker's password
	// file (see MosquittoHash).
	BrokerHash string `json:"broker_hash,omitempty"`
}

// RegistryOptions configures a Registry. The zero value works.
type RegistryOptions struct {
	// SecretMemoryKiB is the Argon2id memory cost of new device secrets;
	// default DefaultSecretMemoryKiB.
	SecretMemoryKiB uint32
	Now             func() time.Time
	// Owner, if set, says whether this registry keeps a station: nil if
	// it does, else why not (the station belongs to another partition).
	// Stations it refuses are not added, and those already in the file
	// are not loaded, nor their devices.
	Owner func(station string) error
	// StationAdded, if set, is called with each station added, after it
	// is stored and before the call that added it returns.
	StationAdded func(id string)
}

// Registry holds stations and devices. It is safe for concurrent use; reads
// are served from memory.
type Registry struct {
	db      *bolt.DB
	memKiB  uint32
	now     func() time.Time
	owner   func(string) error
	added   func(string)
	foreign int // stations in the file that Owner refused

	// gen counts the additions of stations and devices (see Generation).
	gen atomic.Uint64

	mu       sync.RWMutex // guards the maps below
	stations map[string]Station
	devices  map[string]*storedDevice
	// verified holds sha256 of a secret that has passed Argon2id, per
	// device, so a reconnecting device costs one fast hash.
	verified map[string][sha256.Size]byte
}

// NewRegistry loads the registry from db, creating its buckets.
func NewRegistry(db *bolt.DB, o RegistryOptions) (*Registry, error) {
	r := &Registry{
		db:       db,
		memKiB:   o.SecretMemoryKiB,
		now:      o.Now,
		owner:    o.Owner,
		added:    o.StationAdded,
		stations: map[string]Station{},
		devices:  map[string]*storedDevice{},
		verified: map[string][sha256.Size]byte{},
	}
	if r.memKiB == 0 {
		r.memKiB = DefaultSecretMemoryKiB
	}
	if r.now == nil {
		r.now = time.Now
	}
	if err := ensureBuckets(db, bucketStations, bucketDevices); err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	// A read transaction, so that the twins can load beside it.
	err := db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketStations).ForEach(func(k, v []byte) error {
			var s Station
			if err := record.Decode(v, &s); err != nil {
				return fmt.Errorf("station %s: %w", k, err)
			}
			if r.owner != nil && r.owner(s.ID) != nil {
				r.foreign++
				return nil
			}
			r.stations[s.ID] = s
			return nil
		})
		if err != nil {
			return err
		}
		bd := tx.Bucket(bucketDevices)
		r.devices = make(map[string]*storedDevice, bd.Stats().KeyN)
		return bd.ForEach(func(k, v []byte) error {
			d := new(storedDevice)
			if err := record.Decode(v, d); err != nil {
				return fmt.Errorf("device %s: %w", k, err)
			}
			if r.owner != nil && r.owner(d.Station) != nil {
				return nil
			}
			r.devices[d.ID] = d
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	return r, nil
}

// ensureBuckets creates the buckets that db lacks, in a write transaction
// only if one is missing: loading then runs in read transactions, which
// do not wait for each other.
func ensureBuckets(db *bolt.DB, names ...[]byte) error {
	missing := false
	err := db.View(func(tx *bolt.Tx) error {
		for _, n := range names {
			if tx.Bucket(n) == nil {
				missing = true
			}
		}
		return nil
	})
	if err != nil || !missing {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddStation stores a new station.
func (r *Registry) AddStation(s Station) (Station, error) {
	if err := s.Validate(); err != nil {
		return Station{}, err
	}
	if err := r.owns(s.ID); err != nil {
		return Station{}, err
	}
	added := false
	defer func() { // after the unlock below
		if added && r.added != nil {
			r.added(s.ID)
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.stations[s.ID]; ok {
		return Station{}, fmt.Errorf("station %s: %w", s.ID, ErrExists)
	}
	s.Created = r.now().UTC().Truncate(time.Millisecond)
	if err := r.put(bucketStations, s.ID, s); err != nil {
		return Station{}, err
	}
	r.stations[s.ID] = s
	r.gen.Add(1)
	added = true
	return s, nil
}

// AddStations stores several new stations in one transaction: all or none.
func (r *Registry) AddStations(list []Station) error {
	if len(list) == 0 {
		return fmt.Errorf("%w: no stations in the list", ErrInvalid)
	}
	seen := map[string]bool{}
	for i := range list {
		if err := list[i].Validate(); err != nil {
			return err
		}
		if seen[list[i].ID] {
			return fmt.Errorf("station %s: %w twice in the list", list[i].ID, ErrExists)
		}
		seen[list[i].ID] = true
		if err := r.owns(list[i].ID); err != nil {
			return err
		}
	}
	added := false
	defer func() { // after the unlock below
		if added && r.added != nil {
			for _, s := range list {
				r.added(s.ID)
			}
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range list {
		if _, ok := r.stations[s.ID]; ok {
			return fmt.Errorf("station %s: %w", s.ID, ErrExists)
		}
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStations)
		for i := range list {
			list[i].Created = now
			v, err := json.Marshal(list[i])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(list[i].ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store stations: %w", err)
	}
	for _, s := range list {
		r.stations[s.ID] = s
	}
	r.gen.Add(1)
	added = true
	return nil
}

// Generation is a number that grows each time stations or devices are
// added, so a reader can tell cheaply that its copy of Stations or
// Devices is still current.
func (r *Registry) Generation() uint64 { return r.gen.Load() }

// Station returns a station by id.
func (r *Registry) Station(id string) (Station, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.stations[id]
	if !ok {
		return Station{}, fmt.Errorf("station %s: %w", id, ErrNotFound)
	}
	return s, nil
}

// Stations returns every station, sorted by id.
func (r *Registry) Stations() []Station {
	r.mu.RLock()
	out := make([]Station, 0, len(r.stations))
	for _, s := range r.stations {
		out = append(out, s)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Station) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// AddDevice registers a device at an existing station and returns its
// secret. The secret is shown this once; only its hash is kept.
func (r *Registry) AddDevice(d Device) (Device, string, error) {
	if err := d.Validate(); err != nil {
		return Device{}, "", err
	}
	if err := r.owns(d.Station); err != nil {
		return Device{}, "", fmt.Errorf("device %s: %w", d.ID, err)
	}
	secret, hash, bhash, err := r.newSecret()
	if err != nil {
		return Device{}, "", err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.stations[d.Station]; !ok {
		return Device{}, "", fmt.Errorf("device %s: station %q: %w", d.ID, d.Station, ErrNotFound)
	}
	if _, ok := r.devices[d.ID]; ok {
		return Device{}, "", fmt.Errorf("device %s: %w", d.ID, ErrExists)
	}
	d.Created = r.now().UTC().Truncate(time.Millisecond)
	sd := &storedDevice{Device: d, SecretHash: hash, BrokerHash: bhash}
	if err := r.put(bucketDevices, d.ID, sd); err != nil {
		return Device{}, "", err
	}
	r.devices[d.ID] = sd
	r.gen.Add(1)
	return d, secret, nil
}

// RotateSecret issues a new secret for a device; the old one stops working.
func (r *Registry) RotateSecret(id string) (string, error) {
	secret, hash, bhash, err := r.newSecret()
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.devices[id]
	if !ok {
		return "", fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	sd := &storedDevice{Device: old.Device, SecretHash: hash, BrokerHash: bhash}
	if err := r.put(bucketDevices, id, sd); err != nil {
		return "", err
	}
	r.devices[id] = sd
	delete(r.verified, id)
	return secret, nil
}

// Device returns a device by id.
func (r *Registry) Device(id string) (Device, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.devices[id]
	if !ok {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return d.Device, nil
}

// Devices returns every device, sorted by station and id.
func (r *Registry) Devices() []Device {
	r.mu.RLock()
	out := make([]Device, 0, len(r.devices))
	for _, d := range r.devices {
		out = append(out, d.Device)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Device) int {
		if c := strings.Compare(a.Station, b.Station); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Authenticate checks a device's secret and returns the device. It fails
// with ErrNotFound for an unknown id and ErrBadSecret for a wrong secret.
func (r *Registry) Authenticate(id string, secret []byte) (Device, error) {
	sum := sha256.Sum256(secret)
	r.mu.RLock()
	d, ok := r.devices[id]
	known, cached := r.verified[id]
	r.mu.RUnlock()
	if !ok {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	if cached && subtle.ConstantTimeCompare(known[:], sum[:]) == 1 {
		return d.Device, nil
	}
	ok, err := secretMatches(d.SecretHash, secret)
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", id, err)
	}
	if !ok {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrBadSecret)
	}

	r.mu.Lock()
	// Cache only if the secret was not rotated meanwhile.
	if cur, ok := r.devices[id]; ok && bytes.Equal(cur.SecretHash, d.SecretHash) {
		r.verified[id] = sum
	}
	r.mu.Unlock()
	return d.Device, nil
}

func (r *Registry) newSecret() (secret string, hash []byte, brokerHash string, err error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", nil, "", fmt.Errorf("make secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(buf)
	hash, err = hashSecret([]byte(secret), r.memKiB)
	if err != nil {
		return "", nil, "", err
	}
	if brokerHash, err = MosquittoHash(secret); err != nil {
		return "", nil, "", err
	}
	return secret, hash, brokerHash, nil
}

func (r *Registry) put(bucket []byte, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = r.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), buf)
	})
	if err != nil {
		return fmt.Errorf("store %s %s: %w", bucket, key, err)
	}
	return nil
}

// Provision registers the devices of list that are missing and issues a new
// secret to those already registered, in one transaction, and returns every
// secret by device id. Simulated fleets use it: they must log in, and stored
// hashes cannot give back an earlier secret.
func (r *Registry) Provision(list []Device) (map[string]string, error) {
	secrets := make(map[string]string, len(list))
	hashes := make(map[string][]byte, len(list))
	bhashes := make(map[string]string, len(list))
	for i := range list {
		if err := list[i].Validate(); err != nil {
			return nil, err
		}
		if _, dup := secrets[list[i].ID]; dup {
			return nil, fmt.Errorf("device %s: %w twice in the list", list[i].ID, ErrExists)
		}
		if err := r.owns(list[i].Station); err != nil {
			return nil, fmt.Errorf("device %s: %w", list[i].ID, err)
		}
		secret, hash, bhash, err := r.newSecret()
		if err != nil {
			return nil, err
		}
		secrets[list[i].ID], hashes[list[i].ID], bhashes[list[i].ID] = secret, hash, bhash
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC().Truncate(time.Millisecond)
	stored := make([]*storedDevice, 0, len(list))
	for _, d := range list {
		if _, ok := r.stations[d.Station]; !ok {
			return nil, fmt.Errorf("device %s: station %q: %w", d.ID, d.Station, ErrNotFound)
		}
		sd := &storedDevice{Device: d, SecretHash: hashes[d.ID], BrokerHash: bhashes[d.ID]}
		if old, ok := r.devices[d.ID]; ok {
			sd.Device = old.Device
		} else {
			sd.Created = now
		}
		stored = append(stored, sd)
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for _, sd := range stored {
			v, err := json.Marshal(sd)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(sd.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store devices: %w", err)
	}
	for _, sd := range stored {
		r.devices[sd.ID] = sd
		delete(r.verified, sd.ID)
	}
	r.gen.Add(1)
	return secrets, nil
}
