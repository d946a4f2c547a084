package broker

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// TestReadRetainedAsMochi writes retained messages as mochi's hook does and
// checks that the store reads them back as the hook's own decoding would,
// and leaves the other records alone.
func TestReadRetainedAsMochi(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	msgs := []storage.Message{
		{ID: "RET_waystation/v1/s1/d1/status", T: storage.RetainedKey,
			TopicName: "waystation/v1/s1/d1/status", Payload: []byte(`{"online":true,"kind":"ac"}`),
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			Created:     1796329227, Client: "d1", Origin: "d1"},
		{ID: "RET_a/b", T: storage.RetainedKey, TopicName: "a/b", Payload: []byte{0, 0xff, 'x'},
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true, Remaining: 9},
			Properties: storage.MessageProperties{ContentType: "text/plain", ResponseTopic: "r/t",
				CorrelationData: []byte("id"), SubscriptionIdentifier: []int{1, 2},
				User: []packets.UserProperty{{Key: "k", Val: "v «ü»"}}, MessageExpiryInterval: 60,
				PayloadFormat: 1, PayloadFormatFlag: true},
			Created: 1, Client: "c", Origin: "o", PacketID: 7},
		{ID: "RET_empty", T: storage.RetainedKey, TopicName: "empty"},
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []storage.Message
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(storeBucket))
		if err != nil {
			return err
		}
		// Mochi's other records, which the store does not load.
		if err := b.Put([]byte("CL_d1"), []byte(`{"id":"d1"}`)); err != nil {
			return err
		}
		if err := b.Put([]byte("SUB_d1:a/#"), []byte(`{"filter":"a/#"}`)); err != nil {
			return err
		}
		for _, m := range msgs {
			v, err := m.MarshalBinary()
			if err != nil {
				return err
			}
			if err := b.Put([]byte(m.ID), v); err != nil {
				return err
			}
		}
		// The hook's own reading, in key order.
		c := b.Cursor()
		for k, v := c.Seek([]byte("RET")); k != nil && string(k[:3]) == "RET"; k, v = c.Next() {
			var m storage.Message
			if err := m.UnmarshalBinary(v); err != nil {
				return err
			}
			want = append(want, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readRetained(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("read\n%s\nwant\n%s", g, w)
	}

	// A file that is not there yet is made, with nothing in it.
	got, err = readRetained(filepath.Join(t.TempDir(), "new.db"), nil)
	if err != nil || len(got) != 0 {
		t.Errorf("new file: %d messages, err %v", len(got), err)
	}
}
