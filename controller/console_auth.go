package controller

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Console sessions: a person signs in to the web console with an operator
// token once, and the browser then carries a session cookie. The cookie is
// HttpOnly and SameSite=Strict; the server keeps only the SHA-256 of its
// value, with the hash of the operator's token, so a revoked operator's
// sessions stop working at once and the stored sessions grant nothing to
// whoever reads the data file.

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "waystation_session"

// DefaultSessionTTL is how long a console session lasts after sign-in: a
// night shift and then some.
const DefaultSessionTTL = 16 * time.Hour

var bucketSessions = []byte("console_sessions")

// ErrNoSession means a request carried no valid console session.
var ErrNoSession = errors.New("not signed in, or the session has ended")

// Session is one signed-in browser.
type Session struct {
	// CSRF is the token every form the session posts must carry.
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
	// OperatorKey is the hash of the token the operator signed in with.
	OperatorKey string `json:"operator_key"`
}

// Sessions keeps console sessions in memory and in bbolt, by the hash of
// their cookie value. It is safe for concurrent use.
type Sessions struct {
	db  *bolt.DB
	ops *Operators
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex // guards byID
	byID map[string]Session
}

// NewSessions loads the sessions stored in db, dropping ended ones. ttl
// zero means DefaultSessionTTL; now nil means time.Now.
func NewSessions(db *bolt.DB, ops *Operators, ttl time.Duration,
	now func() time.Time) (*Sessions, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if now == nil {
		now = time.Now
	}
	s := &Sessions{db: db, ops: ops, ttl: ttl, now: now, byID: map[string]Session{}}
	t := now()
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSessions)
		if err != nil {
			return err
		}
		var ended [][]byte
		err = b.ForEach(func(k, v []byte) error {
			var ss Session
			if err := json.Unmarshal(v, &ss); err != nil || !t.Before(ss.Expires) {
				ended = append(ended, k)
				return nil
			}
			s.byID[string(k)] = ss
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range ended {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load console sessions: %w", err)
	}
	return s, nil
}

// SignIn checks an operator token and starts a session for it. It returns
// the cookie value (shown to the browser only) and the session.
func (s *Sessions) SignIn(token string) (string, Session, Operator, error) {
	op, err := s.ops.Lookup(token)
	if err != nil {
		return "", Session{}, Operator{}, err
	}
	value, err := randomText()
	if err != nil {
		return "", Session{}, Operator{}, err
	}
	csrf, err := randomText()
	if err != nil {
		return "", Session{}, Operator{}, err
	}
	ss := Session{CSRF: csrf, Expires: s.now().Add(s.ttl), OperatorKey: tokenKey(token)}
	id := tokenKey(value)
	buf, _ := json.Marshal(ss)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte(id), buf)
	})
	if err != nil {
		return "", Session{}, Operator{}, fmt.Errorf("store console session: %w", err)
	}
	s.mu.Lock()
	s.byID[id] = ss
	s.prune()
	s.mu.Unlock()
	return value, ss, op, nil
}

// Lookup returns the operator and session of a cookie value, or
// ErrNoSession when the session is unknown or ended, or its operator was
// revoked.
func (s *Sessions) Lookup(value string) (Operator, Session, error) {
	if value == "" {
		return Operator{}, Session{}, ErrNoSession
	}
	s.mu.Lock()
	ss, ok := s.byID[tokenKey(value)]
	s.mu.Unlock()
	if !ok || !s.now().Before(ss.Expires) {
		return Operator{}, Session{}, ErrNoSession
	}
	op, ok := s.ops.lookupKey(ss.OperatorKey)
	if !ok {
		return Operator{}, Session{}, ErrNoSession
	}
	return op, ss, nil
}

// SignOut ends the session of a cookie value.
func (s *Sessions) SignOut(value string) error {
	id := tokenKey(value)
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Delete([]byte(id))
	})
}

// FromRequest returns the operator and session of the request's cookie.
func (s *Sessions) FromRequest(r *http.Request) (Operator, Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Operator{}, Session{}, ErrNoSession
	}
	return s.Lookup(c.Value)
}

// CheckCSRF reports whether a form's token is the session's.
func (ss Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(ss.CSRF)) == 1
}

// prune forgets ended sessions from memory (the data file drops them at the
// next start); s.mu is held.
func (s *Sessions) prune() {
	t := s.now()
	for id, ss := range s.byID {
		if !t.Before(ss.Expires) {
			delete(s.byID, id)
		}
	}
}

// lookupKey returns the operator whose token hashes to key.
func (o *Operators) lookupKey(key string) (Operator, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	op, ok := o.byKey[key]
	return op, ok
}

func randomText() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("make session: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// sessionOperator finds who makes a read-only (GET) API call that carries
// no bearer token: the operator of its console session cookie, so the
// console's pages can read the API and its event stream. Calls that change
// anything always need the token.
func (a *API) sessionOperator(r *http.Request) (Operator, bool) {
	if a.o.Sessions == nil || r.Header.Get("Authorization") != "" ||
		(r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return Operator{}, false
	}
	op, _, err := a.o.Sessions.FromRequest(r)
	return op, err == nil
}
