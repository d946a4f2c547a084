package controller

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketOperators = []byte("operators")

// Operator roles.
const (
	RoleAdmin = "admin" // everything, every organisation
)

// ErrUnauthorized means a request carried no valid operator token.
var ErrUnauthorized = errors.New("missing or unknown operator token")

// Operator is a person (or program) allowed to use the API.
type Operator struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Orgs is the operator's scope: the organisations whose stations it
	// sees and manages, or AllOrgs alone for every one.
	Orgs    []string  `json:"orgs"`
	Created time.Time `json:"created"`
}

// Operators holds operator tokens, stored as SHA-256 hashes: tokens are 256
// random bits, so a fast hash is enough and keeps every API call cheap.
type Operators struct {
	db  *bolt.DB
	now func() time.Time

	mu    sync.RWMutex // guards byKey
	byKey map[string]Operator
}

// NewOperators loads the operators stored in db.
func NewOperators(db *bolt.DB, now func() time.Time) (*Operators, error) {
	if now == nil {
		now = time.Now
	}
	ops := &Operators{db: db, now: now, byKey: map[string]Operator{}}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOperators)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			op, err := decodeOperator(v)
			if err != nil {
				return fmt.Errorf("operator %s: %w", k, err)
			}
			ops.byKey[string(k)] = op
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load operators: %w", err)
	}
	return ops, nil
}

// NewToken returns a fresh random operator token.
func NewToken() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	return "wst_" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Add stores an operator under token. It fails with ErrInvalidOperator for
// a bad name, role or scope and ErrOperatorExists for a name in use.
func (o *Operators) Add(token string, op Operator) error {
	_, err := o.put(token, op, false)
	return err
}

// Lookup returns the operator a token belongs to, or ErrUnauthorized.
func (o *Operators) Lookup(token string) (Operator, error) {
	if token == "" {
		return Operator{}, ErrUnauthorized
	}
	o.mu.RLock()
	op, ok := o.byKey[tokenKey(token)]
	o.mu.RUnlock()
	if !ok {
		return Operator{}, ErrUnauthorized
	}
	return op, nil
}

// EnsureAdminToken makes the token in file (created with mode 0600 when
// missing) an admin token, and returns it and whether the file was created.
func (o *Operators) EnsureAdminToken(file string) (string, bool, error) {
	buf, err := os.ReadFile(file)
	switch {
	case err == nil:
		token := strings.TrimSpace(string(buf))
		if _, err := o.Lookup(token); err == nil {
			return token, false, nil
		}
		// The file names the first admin: it replaces an older token.
		if _, err := o.put(token, firstAdmin(), true); err != nil {
			return "", false, fmt.Errorf("admin token in %s: %w (delete the file to have a new "+
				"one made)", file, err)
		}
		return token, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", false, fmt.Errorf("read admin token: %w", err)
	}

	token, err := NewToken()
	if err != nil {
		return "", false, err
	}
	if _, err := o.put(token, firstAdmin(), true); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return token, true, nil
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
