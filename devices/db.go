package devices

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of the registry and store.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrInvalid   = errors.New("invalid")
	ErrBadSecret = errors.New("bad secret")
	// ErrLocked means another process holds the data file.
	ErrLocked = errors.New("data file is held by another process")
)

// DefaultLockTimeout is how long OpenDB waits for another process to let go
// of the data file before it gives up.
const DefaultLockTimeout = time.Second

// OpenDB opens (creating if needed) the bbolt file at path. It fails with
// ErrLocked, within timeout (DefaultLockTimeout when zero), when another
// process holds the file.
func OpenDB(path string, timeout time.Duration) (*bolt.DB, error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (is a server already running on this data folder?)",
			path, ErrLocked)
	}
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: the data folder must be writable by this user", err)
	case errors.As(err, &pathErr):
		return nil, err // it names the file
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}
