package devices

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Device secrets are hashed with Argon2id and kept in the PHC string form
// ($argon2id$v=19$m=..,t=..,p=..$salt$hash), so the parameters can change
// without breaking secrets already issued.
//
// A secret is 192 random bits: no work factor makes a search of that space
// any less hopeless, so the hash only has to keep a leaked data file from
// giving secrets away. Light parameters keep a reconnect storm of tens of
// thousands of devices to seconds of CPU, where bcrypt would take minutes.
const (
	// DefaultSecretMemoryKiB is the Argon2id memory cost of device secrets.
	DefaultSecretMemoryKiB = 64
	secretTime             = 1
	secretThreads          = 1
	secretKeyLen           = 32
)

var errHashFormat = errors.New("unknown secret hash format")

func hashSecret(secret []byte, memoryKiB uint32) ([]byte, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("make salt: %w", err)
	}
	key := argon2.IDKey(secret, salt, secretTime, memoryKiB, secretThreads, secretKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, memoryKiB,
		secretTime, secretThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// secretMatches reports whether secret hashes to hash.
func secretMatches(hash, secret []byte) (bool, error) {
	var (
		version, mem, tm int
		threads          uint8
		saltB64, keyB64  string
	)
	_, err := fmt.Sscanf(string(hash), "$argon2id$v=%d$m=%d,t=%d,p=%d$%s", &version, &mem, &tm,
		&threads, &saltB64)
	if err != nil || version != argon2.Version || mem <= 0 || tm <= 0 || threads == 0 {
		return false, errHashFormat
	}
	// Sscanf's %s took "salt$key".
	for i := 0; i < len(saltB64); i++ {
		if saltB64[i] == '$' {
			saltB64, keyB64 = saltB64[:i], saltB64[i+1:]
			break
		}
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(saltB64)
	want, err2 := enc.DecodeString(keyB64)
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errHashFormat
	}
	got := argon2.IDKey(secret, salt, uint32(tm), uint32(mem), threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
