package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

func checkResource(component string, r Resource) error {
	if component == "" {
		return fmt.Errorf("%w: empty component", ErrInvalid)
	}
	if strings.ContainsAny(component, "/") {
		return fmt.Errorf("%w: component %q contains '/'", ErrInvalid, component)
	}
	if r.Resource == "" || r.Version == "" || strings.Contains(r.Resource+r.Version+r.Group, "/") {
		return fmt.Errorf("%w: resource %+v needs a resource and a version, without '/'", ErrInvalid, r)
	}
	return nil
}

func checkNames(namespace, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty object name", ErrInvalid)
	}
	if strings.ContainsAny(namespace, "/?") || strings.Contains(name, "/") {
		return fmt.Errorf("%w: namespace %q / name %q contain '/' or '?'", ErrInvalid, namespace, name)
	}
	return nil
}

func checkObjectKey(k ObjectKey) error {
	if err := checkResource(k.Component, k.Resource); err != nil {
		return err
	}
	return checkNames(k.Namespace, k.Name)
}

func checkListKey(k ListKey) error {
	if err := checkResource(k.Component, k.Resource); err != nil {
		return err
	}
	if strings.ContainsAny(k.Namespace, "/?") {
		return fmt.Errorf("%w: namespace %q contains '/' or '?'", ErrInvalid, k.Namespace)
	}
	return nil
}

func encodingByte(e Encoding) (byte, error) {
	switch e {
	case EncodingJSON, "":
		return schema.EncodingJSON, nil
	case EncodingProtobuf:
		return schema.EncodingProto, nil
	}
	return 0, fmt.Errorf("%w: unknown encoding %q (json or protobuf)", ErrInvalid, e)
}

func encodingOf(b byte) Encoding {
	if b == schema.EncodingProto {
		return EncodingProtobuf
	}
	return EncodingJSON
}

// bucketPath walks (or creates) nested buckets from the top; nil if one is missing.
func bucketPath(tx *bolt.Tx, create bool, names ...[]byte) (*bolt.Bucket, error) {
	var b *bolt.Bucket
	for i, n := range names {
		var next *bolt.Bucket
		if i == 0 {
			next = tx.Bucket(n)
		} else {
			next = b.Bucket(n)
		}
		if next == nil {
			if !create {
				return nil, nil
			}
			var err error
			if i == 0 {
				next, err = tx.CreateBucketIfNotExists(n)
			} else {
				next, err = b.CreateBucketIfNotExists(n)
			}
			if err != nil {
				return nil, fmt.Errorf("create bucket %q: %w", n, err)
			}
		}
		b = next
	}
	return b, nil
}

func objectsBucket(tx *bolt.Tx, create bool, component string, r Resource) (*bolt.Bucket, error) {
	return bucketPath(tx, create, schema.BucketComponents, []byte(component), schema.BucketObjects,
		schema.ResourceKey(r.Group, r.Version, r.Resource))
}

func listsBucket(tx *bolt.Tx, create bool, component string, r Resource) (*bolt.Bucket, error) {
	return bucketPath(tx, create, schema.BucketComponents, []byte(component), schema.BucketLists,
		schema.ResourceKey(r.Group, r.Version, r.Resource))
}

func rawBucket(tx *bolt.Tx, create bool, component string) (*bolt.Bucket, error) {
	return bucketPath(tx, create, schema.BucketComponents, []byte(component), schema.BucketRaw)
}

// PutObject stores one object (from a GET). An object whose resourceVersion is
// lower than the stored copy's is refused with ErrStale; an equal one is a no-op,
// unless the stored copy is a local change (Object.Local), which it replaces.
//
// Most GETs through the hub return what is cached already (kubelet reads its node
// and its pods again and again), so the comparison is made first in a read
// transaction: an unchanged object costs no commit and no fsync. A changed one is
// written through bbolt's Batch, which coalesces concurrent PutObject calls into
// one commit; it still returns only once the object is on disk.
func (s *Store) PutObject(ctx context.Context, k ObjectKey, o Object) error {
	if err := checkObjectKey(k); err != nil {
		return err
	}
	enc, err := encodingByte(o.Encoding)
	if err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.touched(k) // an unchanged GET still refreshes the object (gc.go)
	key := schema.ObjectKey(k.Namespace, k.Name)
	// compare says whether the stored copy makes this write stale (an error) or
	// needless (done).
	compare := func(b *bolt.Bucket) (done bool, err error) {
		old := b.Get(key)
		if old == nil {
			return false, nil
		}
		_, rv, _, derr := schema.DecodeObject(old)
		if derr != nil {
			return false, nil // a damaged copy is overwritten
		}
		if o.ResourceVersion < rv {
			return true, fmt.Errorf("%s: resourceVersion %d < cached %d: %w", k, o.ResourceVersion, rv, ErrStale)
		}
		// Equal is already stored, unless the stored copy is a local change: it
		// kept the cloud's resourceVersion, and the cloud's copy replaces it.
		return o.ResourceVersion == rv && o.ResourceVersion != 0 && !schema.IsLocal(old), nil
	}
	var done bool
	err = s.view(func(tx *bolt.Tx) error {
		b, _ := objectsBucket(tx, false, k.Component, k.Resource)
		if b == nil {
			return nil
		}
		var err error
		done, err = compare(b)
		return err
	})
	if err != nil || done {
		return err
	}
	// Batch may run this function more than once (when another call in the same
	// batch fails); it is idempotent, and compares again under the write lock.
	return s.batch(func(tx *bolt.Tx) error {
		b, err := objectsBucket(tx, true, k.Component, k.Resource)
		if err != nil {
			return err
		}
		if done, err := compare(b); err != nil || done {
			return err
		}
		return b.Put(key, schema.EncodeObject(enc, o.ResourceVersion, o.Data))
	})
}

// GetObject returns a copy of one cached object, or ErrNotFound.
func (s *Store) GetObject(ctx context.Context, k ObjectKey) (Object, error) {
	if err := checkObjectKey(k); err != nil {
		return Object{}, err
	}
	s.touched(k) // a read offline keeps the object as wanted as a GET online (gc.go)
	return s.getObject(ctx, k)
}

// PeekObject is GetObject for the hub's own bookkeeping (the multiplexer reading
// an object's previous state): the read is not recorded as a refresh (gc.go), so
// it costs no memory per object.
func (s *Store) PeekObject(ctx context.Context, k ObjectKey) (Object, error) {
	if err := checkObjectKey(k); err != nil {
		return Object{}, err
	}
	return s.getObject(ctx, k)
}

func (s *Store) getObject(ctx context.Context, k ObjectKey) (Object, error) {
	if err := ctxErr(ctx); err != nil {
		return Object{}, err
	}
	var out Object
	key := schema.ObjectKey(k.Namespace, k.Name)
	err := s.view(func(tx *bolt.Tx) error {
		b, _ := objectsBucket(tx, false, k.Component, k.Resource)
		if b == nil {
			return fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		enc, rv, data, err := schema.DecodeObject(v)
		if err != nil {
			return damaged(err, k.String())
		}
		out = Object{Namespace: k.Namespace, Name: k.Name, ResourceVersion: rv, Encoding: encodingOf(enc),
			Data: bytes.Clone(data), Local: schema.IsLocal(v)}
		return nil
	})
	if errors.Is(err, ErrDamaged) {
		s.noteDamaged(k.Component, k.Resource, [][]byte{key})
	}
	return out, err
}

// PutRaw stores a non-resource response (/version, /api, /apis, /apis/<g>/<v>).
func (s *Store) PutRaw(ctx context.Context, component, path, contentType string, body []byte) error {
	if component == "" || path == "" {
		return fmt.Errorf("%w: raw response needs a component and a path", ErrInvalid)
	}
	if len(contentType) > 0xffff {
		return fmt.Errorf("%w: content type too long", ErrInvalid)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := rawBucket(tx, true, component)
		if err != nil {
			return err
		}
		return b.Put([]byte(path), schema.EncodeRaw(contentType, body))
	})
}

// GetRaw returns a copy of a stored non-resource response, or ErrNotFound.
func (s *Store) GetRaw(ctx context.Context, component, path string) (contentType string, body []byte, err error) {
	if err := ctxErr(ctx); err != nil {
		return "", nil, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		b, _ := rawBucket(tx, false, component)
		var v []byte
		if b != nil {
			v = b.Get([]byte(path))
		}
		if v == nil {
			return fmt.Errorf("%s %s: %w", component, path, ErrNotFound)
		}
		ct, bd, err := schema.DecodeRaw(v)
		if err != nil {
			return damaged(err, "raw "+component+" "+path)
		}
		contentType, body = ct, bytes.Clone(bd)
		return nil
	})
	if errors.Is(err, ErrDamaged) && s.firstReport(component+"/raw"+path) {
		s.log.Warn("cached response failed its integrity check (checksum mismatch): not served; the next answer from the cloud replaces it",
			slog.String("component", component), slog.String("path", path))
	}
	return contentType, body, err
}
