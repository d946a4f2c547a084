package broker

import (
	"bytes"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"

	"github.com/waystation/waystation/internal/record"
)

// store is mochi's bbolt storage hook, kept to retained messages: the
// devices' presence lives in their retained status, which must survive a
// restart. The hook would also write every session, subscription, in-flight
// QoS 1 message and $SYS tick, each in its own fsynced transaction; devices
// use clean sessions, so that would only make the disk the broker's limit
// (a county of 345 devices connecting at once took over ten seconds).
//
// Mochi's hook writes the retained messages; the store reads them itself
// at start-up, with a faster JSON decoder than the hook's (see
// record.Decode): at 40,000 devices the hook's took about half a second.
type store struct {
	*bolt.Hook
	retained []storage.Message // read by Init, handed over once
}

// Provides implements mqtt.Hook.
func (s *store) Provides(b byte) bool {
	switch b {
	case mqtt.OnRetainMessage, mqtt.StoredRetainedMessages:
		return s.Hook.Provides(b)
	}
	return false
}

// storeBucket is the bucket mochi's hook keeps its records in.
const storeBucket = "mochi"

// Init reads the retained messages of the store file, then lets mochi's
// hook open it: a bbolt file is opened by one handle at a time.
func (s *store) Init(config any) error {
	o, ok := config.(*bolt.Options)
	if !ok || o == nil || o.Path == "" || (o.Bucket != "" && o.Bucket != storeBucket) {
		return fmt.Errorf("store: want the options of a file in bucket %q", storeBucket)
	}
	msgs, err := readRetained(o.Path, o.Options)
	if err != nil {
		return err
	}
	s.retained = msgs
	return s.Hook.Init(config)
}

// StoredRetainedMessages implements mqtt.Hook: the retained messages Init
// read. Mochi asks once, at start-up.
func (s *store) StoredRetainedMessages() ([]storage.Message, error) {
	msgs := s.retained
	s.retained = nil
	return msgs, nil
}

// readRetained decodes the retained messages in a store file, as mochi's
// hook would (records under the "RET" prefix; an empty record is an empty
// message), creating the file if there is none.
func readRetained(path string, o *bbolt.Options) ([]storage.Message, error) {
	if o == nil {
		o = &bbolt.Options{Timeout: storeOpenTimeout}
	}
	db, err := bbolt.Open(path, 0o600, o)
	if err != nil {
		return nil, err
	}
	var msgs []storage.Message
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(storeBucket))
		if b == nil {
			return nil // a new file: mochi's hook creates the bucket
		}
		msgs = make([]storage.Message, 0, b.Stats().KeyN)
		prefix := []byte(storage.RetainedKey)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m storage.Message
			if len(v) > 0 {
				if err := record.Decode(v, &m); err != nil {
					return fmt.Errorf("retained message %q: %w", k, err)
				}
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read retained messages of %s: %w", path, err)
	}
	return msgs, nil
}
