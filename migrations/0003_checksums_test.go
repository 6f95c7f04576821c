package migrations

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// Format-1 records as schema version 2 wrote them, spelled here byte by byte.
func objectV1(enc byte, rv uint64, data string) []byte {
	b := []byte{schema.DeprecatedRecordFormat1, enc}
	b = binary.BigEndian.AppendUint64(b, rv)
	return append(b, data...)
}

func listInfoV1(rv uint64, synced time.Time, count uint64, complete bool, reason string) []byte {
	b := []byte{schema.DeprecatedRecordFormat1}
	b = binary.BigEndian.AppendUint64(b, rv)
	b = binary.BigEndian.AppendUint64(b, uint64(synced.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, count)
	if complete {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, reason...)
}

func rawV1(ct, body string) []byte {
	b := []byte{schema.DeprecatedRecordFormat1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(ct)))
	return append(append(b, ct...), body...)
}

var synced3 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func init() {
	stepTests[3] = stepTest{
		init: func(t *testing.T, tx *bolt.Tx, env *Env) {
			put := func(value []byte, path ...string) {
				b := tx.Bucket(schema.BucketComponents)
				for _, p := range path[:len(path)-1] {
					nb, err := b.CreateBucketIfNotExists([]byte(p))
					if err != nil {
						t.Fatal(err)
					}
					b = nb
				}
				if err := b.Put([]byte(path[len(path)-1]), value); err != nil {
					t.Fatal(err)
				}
			}
			put(objectV1('j', 41, `{"kind":"Pod"}`), "kubelet", "objects", "core/v1/pods", "default/p1")
			put(objectV1('p', 42, "k8s\x00proto"), "kubelet", "objects", "core/v1/pods", "default/p2")
			put([]byte{1}, "kubelet", "lists", "core/v1/pods", "?", "members", "default/p1")
			put(listInfoV1(42, synced3, 2, true, ""), "kubelet", "lists", "core/v1/pods", "?", "info")
			put(listInfoV1(40, synced3, 1, false, "watch gap"), "kubelet", "lists", "core/v1/pods", "default?", "info")
			put(rawV1("application/json", `{"major":"1"}`), "kubelet", "raw", "/version")
			// Already format 2 (as this binary's import writes): kept as is.
			put(schema.EncodeObject('j', 7, []byte(`{}`)), "coredns", "objects", "core/v1/services", "default/s")
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			comps := tx.Bucket(schema.BucketComponents)
			objs := comps.Bucket([]byte("kubelet")).Bucket(schema.BucketObjects).Bucket([]byte("core/v1/pods"))
			for key, want := range map[string]struct {
				enc  byte
				rv   uint64
				data string
			}{"default/p1": {'j', 41, `{"kind":"Pod"}`}, "default/p2": {'p', 42, "k8s\x00proto"}} {
				enc, rv, data, err := schema.DecodeObject(objs.Get([]byte(key)))
				if err != nil || enc != want.enc || rv != want.rv || string(data) != want.data {
					t.Errorf("object %s: %c %d %q %v, want %c %d %q", key, enc, rv, data, err, want.enc, want.rv, want.data)
				}
			}
			lists := comps.Bucket([]byte("kubelet")).Bucket(schema.BucketLists).Bucket([]byte("core/v1/pods"))
			li, err := schema.DecodeListInfo(lists.Bucket([]byte("?")).Get(schema.KeyInfo))
			if err != nil || li != (schema.ListInfo{ResourceVersion: 42, SyncedAt: synced3, Count: 2, Complete: true}) {
				t.Errorf("list info ?: %+v %v", li, err)
			}
			li, err = schema.DecodeListInfo(lists.Bucket([]byte("default?")).Get(schema.KeyInfo))
			if err != nil || li != (schema.ListInfo{ResourceVersion: 40, SyncedAt: synced3, Count: 1, Reason: "watch gap"}) {
				t.Errorf("list info default?: %+v %v", li, err)
			}
			if m := lists.Bucket([]byte("?")).Bucket(schema.BucketMembers).Get([]byte("default/p1")); !bytes.Equal(m, []byte{1}) {
				t.Errorf("member mark changed: %v", m)
			}
			ct, body, err := schema.DecodeRaw(comps.Bucket([]byte("kubelet")).Bucket(schema.BucketRaw).Get([]byte("/version")))
			if err != nil || ct != "application/json" || string(body) != `{"major":"1"}` {
				t.Errorf("raw /version: %q %q %v", ct, body, err)
			}
			kept := comps.Bucket([]byte("coredns")).Bucket(schema.BucketObjects).Bucket([]byte("core/v1/services")).Get([]byte("default/s"))
			if !bytes.Equal(kept, schema.EncodeObject('j', 7, []byte(`{}`))) {
				t.Errorf("format-2 record rewritten: %q", kept)
			}
		},
	}
}
