package controller

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/waystation/waystation/devices"
	"github.com/waystation/waystation/schemas"
)

func TestCredentialsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2025, 7, 15, 8, 0, 0, 0, time.UTC)}
	creds, err := NewCredentials(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}

	tok, cr, err := creds.Issue(" org-a ", "张师傅", []string{"qr", "face", "qr"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, credentialTokenPrefix) || len(tok) < 40 {
		t.Fatalf("token %q", tok)
	}
	// The token passes the contract's access/req check.
	if _, err := schemas.DecodeAccessRequest([]byte(`{"id":"x","method":"qr","token":"` + tok +
		`"}`)); err != nil {
		t.Fatal(err)
	}
	if cr.Org != "org-a" || !slices.Equal(cr.Methods, []string{"face", "qr"}) ||
		cr.ID != CredentialID(tok) || cr.Hash != hashToken(tok) || !cr.Active() {
		t.Fatalf("credential %+v", cr)
	}
	if got, ok := creds.Lookup(tok); !ok || got.ID != cr.ID {
		t.Fatalf("lookup %+v %v", got, ok)
	}
	if _, ok := creds.Lookup(tok + "x"); ok {
		t.Fatal("a different token found a credential")
	}
	tokB, _, _ := creds.Issue("org-b", "", nil)

	for _, bad := range []struct{ org, worker string }{
		{"", "x"}, {"a,b", "x"}, {"org-a", "line\nbreak"}, {strings.Repeat("o", 129), ""},
	} {
		if _, _, err := creds.Issue(bad.org, bad.worker, nil); !errors.Is(err, ErrInvalidCredential) {
			t.Errorf("issue %q %q: %v", bad.org, bad.worker, err)
		}
	}
	if _, _, err := creds.Issue("org-a", "", []string{"iris"}); !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("method iris: %v", err)
	}

	clock.Add(time.Hour)
	revoked, err := creds.Revoke(cr.ID)
	if err != nil || revoked.Active() || !revoked.Revoked.Equal(clock.Now()) {
		t.Fatalf("revoke %+v %v", revoked, err)
	}
	clock.Add(time.Hour)
	again, err := creds.Revoke(cr.ID)
	if err != nil || !again.Revoked.Equal(revoked.Revoked) {
		t.Fatalf("second revoke changed it: %+v %v", again, err)
	}
	if _, err := creds.Revoke("0123456789abcdef"); !errors.Is(err, ErrCredentialNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if got, _ := creds.Lookup(tok); got.Active() {
		t.Fatal("lookup after revoke finds an active credential")
	}

	// Only hashes are stored, and everything survives a reopen.
	db.Close()
	raw, err := bboltDump(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(tok)) || bytes.Contains(raw, []byte(tokB)) {
		t.Fatal("a raw token is in the data file")
	}
	db, err = devices.OpenDB(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	creds, err = NewCredentials(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := creds.Lookup(tok); !ok || got.Active() || got.Worker != "张师傅" {
		t.Fatalf("after reopen %+v %v", got, ok)
	}
	if got, ok := creds.Lookup(tokB); !ok || !got.Active() ||
		!slices.Equal(got.Methods, AccessMethods) {
		t.Fatalf("after reopen %+v %v", got, ok)
	}
	orgA := creds.List(func(c Credential) bool { return c.Org == "org-a" })
	if len(orgA) != 1 || orgA[0].ID != cr.ID || len(creds.List(nil)) != 2 {
		t.Fatalf("list %+v", orgA)
	}
}

// bboltDump returns every key and value of a bbolt file, concatenated.
func bboltDump(path string) ([]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []byte
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out = append(append(out, k...), v...)
				return nil
			})
		})
	})
	return out, err
}
