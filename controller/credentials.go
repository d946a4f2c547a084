package controller

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/schemas"
)

var bucketCredentials = []byte("credentials")

// Errors of the credential store, checked with errors.Is.
var (
	ErrInvalidCredential  = errors.New("invalid credential")
	ErrCredentialNotFound = errors.New("no such credential")
)

// Credential is a worker's door credential: what a terminal turns a face,
// a card or a QR code into. The platform issues the token, shows it once,
// and keeps only its SHA-256 hash; a face template or card number never
// reaches it.
type Credential struct {
	// ID names the credential in lists and revocations: the first 16 hex
	// digits of Hash, so a client holding the token can compute it.
	ID      string   `json:"id"`
	Org     string   `json:"org"`              // the organisation that issued it
	Worker  string   `json:"worker,omitempty"` // a label for people, not an identity check
	Methods []string `json:"methods"`          // the methods it may be used with
	// Hash is the lowercase hex SHA-256 of the token, as allow-lists carry it.
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Revoked time.Time `json:"revoked,omitzero"` // zero while the credential is valid
}

// Active reports whether the credential has not been revoked.
func (c Credential) Active() bool { return c.Revoked.IsZero() }

// credentialTokenPrefix starts every credential token, so one pasted into
// the wrong place is recognisable.
const credentialTokenPrefix = "wsc_"

// CredentialID returns the id of the credential whose token is token.
func CredentialID(token string) string { return hashToken(token)[:16] }

// hashToken is the lowercase hex SHA-256 of a token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Credentials holds worker credentials in memory, backed by bbolt, so an
// access decision never waits on the disk. It is safe for concurrent use.
type Credentials struct {
	db  *bolt.DB
	now func() time.Time

	// writeMu serialises Issue and Revoke, so that mu is held only for map
	// operations and never across a disk write: decisions read the maps.
	writeMu sync.Mutex
	mu      sync.RWMutex // guards the maps
	byHash  map[[sha256.Size]byte]*Credential
	byID    map[string]*Credential

	changed chan struct{} // a token in it: the set of credentials changed
}

// NewCredentials loads the credentials stored in db; now is the clock of
// issue and revocation times (time.Now when nil).
func NewCredentials(db *bolt.DB, now func() time.Time) (*Credentials, error) {
	if now == nil {
		now = time.Now
	}
	c := &Credentials{db: db, now: now, byHash: map[[sha256.Size]byte]*Credential{},
		byID: map[string]*Credential{}, changed: make(chan struct{}, 1)}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCredentials)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			cr := new(Credential)
			if err := json.Unmarshal(v, cr); err != nil {
				return fmt.Errorf("credential %s: %w", k, err)
			}
			return c.index(cr)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	return c, nil
}

// Changes delivers a token after the set of credentials changed; tokens
// do not pile up, so one read covers every change before it.
func (c *Credentials) Changes() <-chan struct{} { return c.changed }

// Issue creates a credential of org for worker, usable with methods (every
// method when empty), and returns its token, which is not kept.
func (c *Credentials) Issue(org, worker string, methods []string) (string, Credential, error) {
	org, worker = strings.TrimSpace(org), strings.TrimSpace(worker)
	switch {
	case org == "":
		return "", Credential{}, fmt.Errorf("%w: a credential needs an organisation",
			ErrInvalidCredential)
	case len(org) > 128 || strings.Contains(org, ","):
		return "", Credential{}, fmt.Errorf("%w: organisation %.20q: at most 128 bytes, no comma",
			ErrInvalidCredential, org)
	case utf8.RuneCountInString(worker) > 64 || strings.ContainsFunc(worker, isControl):
		return "", Credential{}, fmt.Errorf("%w: worker %.20q: at most 64 printable characters",
			ErrInvalidCredential, worker)
	}
	methods, err := checkMethods(methods)
	if err != nil {
		return "", Credential{}, err
	}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var token string
	for {
		if token, err = newCredentialToken(); err != nil {
			return "", Credential{}, err
		}
		// 64-bit ids collide once in billions of credentials; never twice.
		c.mu.RLock()
		_, taken := c.byID[CredentialID(token)]
		c.mu.RUnlock()
		if !taken {
			break
		}
	}
	hash := hashToken(token)
	cr := &Credential{ID: hash[:16], Org: org, Worker: worker, Methods: methods, Hash: hash,
		Created: c.now().UTC().Truncate(time.Millisecond)}
	if err := c.store(cr); err != nil {
		return "", Credential{}, err
	}
	c.mu.Lock()
	err = c.index(cr)
	c.mu.Unlock()
	if err != nil {
		return "", Credential{}, err
	}
	c.signal()
	return token, *cr, nil
}

// Revoke revokes the credential with id (see CredentialID): it leaves
// every allow-list and is refused from then on, with reason revoked.
// Revoking twice changes nothing.
func (c *Credentials) Revoke(id string) (Credential, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.RLock()
	cr, ok := c.byID[id]
	c.mu.RUnlock()
	if !ok {
		return Credential{}, fmt.Errorf("credential %.20s: %w", id, ErrCredentialNotFound)
	}
	if !cr.Active() {
		return *cr, nil
	}

	// Readers may hold the old value: change a copy and swap it in.
	next := *cr
	next.Revoked = c.now().UTC().Truncate(time.Millisecond)
	if err := c.store(&next); err != nil {
		return Credential{}, err
	}
	c.mu.Lock()
	err := c.index(&next)
	c.mu.Unlock()
	if err != nil {
		return Credential{}, err
	}
	c.signal()
	return next, nil
}

// Get returns the credential with id.
func (c *Credentials) Get(id string) (Credential, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cr, ok := c.byID[id]; ok {
		return *cr, nil
	}
	return Credential{}, fmt.Errorf("credential %.20s: %w", id, ErrCredentialNotFound)
}

// Lookup finds the credential a token stands for, from memory: it is on
// the path of every access request.
func (c *Credentials) Lookup(token string) (Credential, bool) {
	sum := sha256.Sum256([]byte(token))
	c.mu.RLock()
	cr, ok := c.byHash[sum]
	c.mu.RUnlock()
	if !ok {
		return Credential{}, false
	}
	return *cr, true
}

// List returns the credentials for which keep is true (all when keep is
// nil), revoked ones included, by organisation and issue time.
func (c *Credentials) List(keep func(Credential) bool) []Credential {
	c.mu.RLock()
	out := make([]Credential, 0, len(c.byID))
	for _, cr := range c.byID {
		if keep == nil || keep(*cr) {
			out = append(out, *cr)
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Credential) int {
		if n := strings.Compare(a.Org, b.Org); n != 0 {
			return n
		}
		if n := a.Created.Compare(b.Created); n != 0 {
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// store writes cr. c.writeMu must be held.
func (c *Credentials) store(cr *Credential) error {
	buf, err := json.Marshal(cr)
	if err != nil {
		return err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCredentials).Put([]byte(cr.Hash), buf)
	})
	if err != nil {
		return fmt.Errorf("store credential %s: %w", cr.ID, err)
	}
	return nil
}

// index puts cr in the maps. c.mu must be held, or c not yet shared.
func (c *Credentials) index(cr *Credential) error {
	raw, err := hex.DecodeString(cr.Hash)
	if err != nil || len(raw) != sha256.Size || cr.ID != cr.Hash[:16] {
		return fmt.Errorf("credential %s: bad hash %q", cr.ID, cr.Hash)
	}
	c.byHash[[sha256.Size]byte(raw)] = cr
	c.byID[cr.ID] = cr
	return nil
}

func (c *Credentials) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func newCredentialToken() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("make credential token: %w", err)
	}
	return credentialTokenPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// AccessMethods lists the access methods of the contract in their order.
var AccessMethods = []string{schemas.MethodFace, schemas.MethodNFC, schemas.MethodQR}

// checkMethods validates a list of access methods and returns it in the
// contract's order without repeats. nil (not given) means every method; an
// empty list is refused, since "no method" would lock everyone out and "all"
// would silently lift a restriction.
func checkMethods(methods []string) ([]string, error) {
	if methods == nil {
		return slices.Clone(AccessMethods), nil
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("%w: methods is empty: name at least one of face, nfc, qr, "+
			"or leave it out for all", ErrInvalidCredential)
	}
	for _, m := range methods {
		if !slices.Contains(AccessMethods, m) {
			return nil, fmt.Errorf("%w: method %q: want face, nfc or qr", ErrInvalidCredential, m)
		}
	}
	var out []string
	for _, m := range AccessMethods {
		if slices.Contains(methods, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
