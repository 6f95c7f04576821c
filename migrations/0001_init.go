package migrations

import (
	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// initSchema (version 1) creates the top-level buckets and stamps the file as ours.
func initSchema(tx *bolt.Tx, env Env) error {
	meta, err := tx.CreateBucketIfNotExists(schema.BucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(schema.KeySchema, []byte(schema.Name)); err != nil {
		return err
	}
	if meta.Get(schema.KeyCreated) == nil {
		if err := meta.Put(schema.KeyCreated, []byte(env.Now().UTC().Format("2006-01-02T15:04:05Z07:00"))); err != nil {
			return err
		}
	}
	_, err = tx.CreateBucketIfNotExists(schema.BucketComponents)
	return err
}
