package migrations

import (
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

func init() {
	stepTests[1] = stepTest{
		init: nil, // an empty file
		check: func(t *testing.T, tx *bolt.Tx) {
			meta := tx.Bucket(schema.BucketMeta)
			if meta == nil {
				t.Fatal("no meta bucket")
			}
			if got := string(meta.Get(schema.KeySchema)); got != schema.Name {
				t.Errorf("meta/schema = %q, want %q", got, schema.Name)
			}
			if got := string(meta.Get(schema.KeyCreated)); got != "2026-11-22T06:00:00Z" {
				t.Errorf("meta/created = %q", got)
			}
			if tx.Bucket(schema.BucketComponents) == nil {
				t.Error("no components bucket")
			}
			if v, _ := Version(tx); v != Latest() {
				t.Errorf("version %d, want %d", v, Latest())
			}
		},
	}
}
