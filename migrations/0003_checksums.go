package migrations

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// addChecksums (version 3) rewrites every value record of format 1 (no checksum) as
// format 2, which carries a CRC-32C of its bytes: objects, list view infos and raw
// responses. Records already of format 2 (written by this binary's earlier steps)
// are kept; a record that is neither is left as it is, for the readers to report.
func addChecksums(tx *bolt.Tx, env Env) error {
	comps := tx.Bucket(schema.BucketComponents)
	if comps == nil {
		return nil
	}
	n := 0
	err := comps.ForEachBucket(func(cname []byte) error {
		cb := comps.Bucket(cname)
		if ob := cb.Bucket(schema.BucketObjects); ob != nil {
			if err := ob.ForEachBucket(func(rk []byte) error {
				c, err := rewriteV1(ob.Bucket(rk), convertObjectV1)
				n += c
				if err != nil {
					return fmt.Errorf("%s objects %s: %w", cname, rk, err)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if lb := cb.Bucket(schema.BucketLists); lb != nil {
			if err := lb.ForEachBucket(func(rk []byte) error {
				rb := lb.Bucket(rk)
				return rb.ForEachBucket(func(vk []byte) error {
					vb := rb.Bucket(vk)
					v := vb.Get(schema.KeyInfo)
					if v == nil || v[0] != schema.DeprecatedRecordFormat1 {
						return nil
					}
					nv, ok := convertListInfoV1(v)
					if !ok {
						return nil
					}
					n++
					return vb.Put(schema.KeyInfo, nv)
				})
			}); err != nil {
				return fmt.Errorf("%s lists: %w", cname, err)
			}
		}
		if rb := cb.Bucket(schema.BucketRaw); rb != nil {
			c, err := rewriteV1(rb, convertRawV1)
			n += c
			if err != nil {
				return fmt.Errorf("%s raw: %w", cname, err)
			}
		}
		return nil
	})
	if n > 0 {
		env.Log.Info("cache records now carry checksums", "records", n)
	}
	return err
}

// rewriteV1 converts every format-1 value of b with conv. Keys are gathered first:
// a bucket must not change under its own cursor.
func rewriteV1(b *bolt.Bucket, conv func([]byte) ([]byte, bool)) (int, error) {
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil && len(v) > 0 && v[0] == schema.DeprecatedRecordFormat1 {
			keys = append(keys, append([]byte(nil), k...))
		}
	}
	n := 0
	for _, k := range keys {
		nv, ok := conv(b.Get(k))
		if !ok {
			continue
		}
		if err := b.Put(k, nv); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Format 1 object: [1 fmt=1][1 enc][8 rv BE][data].
func convertObjectV1(v []byte) ([]byte, bool) {
	if len(v) < 10 || (v[1] != schema.EncodingJSON && v[1] != schema.EncodingProto) {
		return nil, false
	}
	return schema.EncodeObject(v[1], binary.BigEndian.Uint64(v[2:10]), v[10:]), true
}

// Format 1 list info: [1 fmt=1][8 rv][8 syncedAt unix ns][8 count][1 complete][reason].
func convertListInfoV1(v []byte) ([]byte, bool) {
	if len(v) < 26 {
		return nil, false
	}
	li := schema.ListInfo{
		ResourceVersion: binary.BigEndian.Uint64(v[1:9]),
		Count:           int(binary.BigEndian.Uint64(v[17:25])),
		Complete:        v[25] == 1,
		Reason:          string(v[26:]),
	}
	if ns := int64(binary.BigEndian.Uint64(v[9:17])); ns != 0 {
		li.SyncedAt = time.Unix(0, ns).UTC()
	}
	return schema.EncodeListInfo(li), true
}

// Format 1 raw: [1 fmt=1][2 content-type length BE][content type][body].
func convertRawV1(v []byte) ([]byte, bool) {
	if len(v) < 3 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(v[1:3]))
	if len(v) < 3+n {
		return nil, false
	}
	return schema.EncodeRaw(string(v[3:3+n]), v[3+n:]), true
}
