package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of operator management, checked with errors.Is.
var (
	ErrInvalidOperator  = errors.New("invalid operator")
	ErrOperatorExists   = errors.New("operator already exists")
	ErrOperatorNotFound = errors.New("no such operator")
	// ErrFirstAdmin refuses to revoke the first admin, whose token the
	// server keeps in its data folder and restores at every start.
	ErrFirstAdmin = errors.New("the first admin cannot be revoked")
)

// FirstAdminName is the name of the admin created at first start.
const FirstAdminName = "admin"

func firstAdmin() Operator {
	return Operator{Name: FirstAdminName, Role: RoleAdmin, Orgs: []string{AllOrgs}}
}

// decodeOperator reads a stored operator. Operators stored before scopes
// existed carry "org" instead of "orgs"; an empty one meant every
// organisation.
func decodeOperator(v []byte) (Operator, error) {
	var op struct {
		Operator
		Org string `json:"org"`
	}
	if err := json.Unmarshal(v, &op); err != nil {
		return Operator{}, err
	}
	if len(op.Orgs) == 0 {
		op.Orgs = []string{AllOrgs}
		if op.Org != "" {
			op.Orgs = []string{op.Org}
		}
	}
	return op.Operator, nil
}

// Issue creates an operator with a fresh token and returns the token,
// which is not kept: only its hash is.
func (o *Operators) Issue(op Operator) (string, Operator, error) {
	token, err := NewToken()
	if err != nil {
		return "", Operator{}, err
	}
	op, err = o.put(token, op, false)
	if err != nil {
		return "", Operator{}, err
	}
	return token, op, nil
}

// List returns every operator, sorted by name.
func (o *Operators) List() []Operator {
	o.mu.RLock()
	out := make([]Operator, 0, len(o.byKey))
	for _, op := range o.byKey {
		out = append(out, op)
	}
	o.mu.RUnlock()
	slices.SortFunc(out, func(a, b Operator) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get returns the operator called name.
func (o *Operators) Get(name string) (Operator, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if _, op, ok := o.byName(name); ok {
		return op, nil
	}
	return Operator{}, fmt.Errorf("operator %s: %w", name, ErrOperatorNotFound)
}

// Revoke deletes the operator called name: its token stops working at
// once. The first admin cannot be revoked.
func (o *Operators) Revoke(name string) (Operator, error) {
	if name == FirstAdminName {
		return Operator{}, fmt.Errorf("operator %s: %w", name, ErrFirstAdmin)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	key, op, ok := o.byName(name)
	if !ok {
		return Operator{}, fmt.Errorf("operator %s: %w", name, ErrOperatorNotFound)
	}
	err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOperators).Delete([]byte(key))
	})
	if err != nil {
		return Operator{}, fmt.Errorf("revoke operator %s: %w", name, err)
	}
	delete(o.byKey, key)
	return op, nil
}

// put stores op under token. A name already in use is refused, unless
// replace is set: then the older token of that name stops working.
func (o *Operators) put(token string, op Operator, replace bool) (Operator, error) {
	if len(token) < 16 {
		return Operator{}, fmt.Errorf("%w: token too short", ErrInvalidOperator)
	}
	if err := op.validate(); err != nil {
		return Operator{}, err
	}
	op.Created = o.now().UTC().Truncate(time.Second)
	key := tokenKey(token)
	buf, err := json.Marshal(op)
	if err != nil {
		return Operator{}, err
	}

	// Held across the write so two calls cannot both take a name; operators
	// change rarely, so API calls waiting on it is no cost worth avoiding.
	o.mu.Lock()
	defer o.mu.Unlock()
	oldKey, _, taken := o.byName(op.Name)
	if taken && !replace {
		return Operator{}, fmt.Errorf("operator %s: %w", op.Name, ErrOperatorExists)
	}
	err = o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOperators)
		if taken {
			if err := b.Delete([]byte(oldKey)); err != nil {
				return err
			}
		}
		return b.Put([]byte(key), buf)
	})
	if err != nil {
		return Operator{}, fmt.Errorf("store operator %s: %w", op.Name, err)
	}
	if taken {
		delete(o.byKey, oldKey)
	}
	o.byKey[key] = op
	return op, nil
}

// byName finds an operator by name. o.mu must be held.
func (o *Operators) byName(name string) (key string, op Operator, ok bool) {
	for k, op := range o.byKey {
		if op.Name == name {
			return k, op, true
		}
	}
	return "", Operator{}, false
}
