package devices

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// An external broker checks device logins against its own password file.
// Mosquitto's (and the brokers that read its files) holds PBKDF2-SHA512
// hashes in the form $7$iterations$salt$hash, base64 with padding, a 12 byte
// salt and mosquitto_passwd's 101 iterations. The registry keeps such a hash
// of every secret it issues beside the Argon2id one, because neither hash
// gives the secret back: without it, making the broker's file would mean
// issuing every device a new secret.
//
// A secret is 192 random bits, so the cheaper hash gives away no more than
// the Argon2id one would: no guess of such a secret ever succeeds.
const (
	mosquittoIterations = 101
	mosquittoSaltLen    = 12
)

// MosquittoHash returns secret hashed as Mosquitto's password file holds it.
func MosquittoHash(secret string) (string, error) {
	salt := make([]byte, mosquittoSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("make salt: %w", err)
	}
	return mosquittoHash(secret, salt, mosquittoIterations)
}

func mosquittoHash(secret string, salt []byte, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, secret, salt, iterations, sha512.Size)
	if err != nil {
		return "", err
	}
	enc := base64.StdEncoding
	return fmt.Sprintf("$7$%d$%s$%s", iterations, enc.EncodeToString(salt),
		enc.EncodeToString(key)), nil
}

// MosquittoHashMatches reports whether secret hashes to hash, a $7$ hash of
// Mosquitto's password file.
func MosquittoHashMatches(hash, secret string) bool {
	parts := strings.Split(hash, "$")
	// "", "7", iterations, salt, hash
	if len(parts) != 5 || parts[0] != "" || parts[1] != "7" {
		return false
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil {
		return false
	}
	got, err := mosquittoHash(secret, salt, n)
	return err == nil && got == hash
}

// BrokerLogin is a device's login for an external broker.
type BrokerLogin struct {
	Device  string `json:"device"`
	Station string `json:"station"`
	// Hash is the secret's hash for Mosquitto's password file; empty for
	// a device whose secret was issued before the registry kept such
	// hashes (rotate its secret to get one).
	Hash string `json:"hash,omitempty"`
}

// BrokerLogins returns every device's login for an external broker, sorted
// by station and device.
func (r *Registry) BrokerLogins() []BrokerLogin {
	r.mu.RLock()
	out := make([]BrokerLogin, 0, len(r.devices))
	for _, d := range r.devices {
		out = append(out, BrokerLogin{Device: d.ID, Station: d.Station, Hash: d.BrokerHash})
	}
	r.mu.RUnlock()
	sortLogins(out)
	return out
}

func sortLogins(l []BrokerLogin) {
	slices.SortFunc(l, func(a, b BrokerLogin) int {
		if c := strings.Compare(a.Station, b.Station); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	})
}
