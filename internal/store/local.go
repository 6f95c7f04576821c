package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// UpdateObject overwrites one cached object with a change made on the node while
// the cloud is unreachable (the offline path applying kubelet's node status, pod
// status and Lease writes to the cached copy). It is a compare-and-swap: o is
// written only if the stored copy's resourceVersion is still expectRV (ErrStale
// otherwise, ErrNotFound when the object is not cached), and it is written even
// though o.ResourceVersion may equal expectRV: a local change has no resourceVersion
// of its own, because only the cloud hands those out. The object keeps its list
// view memberships.
//
// The object is stored marked local (Object.Local; an upper-case encoding byte,
// see schema): it keeps the cloud's resourceVersion, but the cloud never saw this
// change, so the cloud's copy at that same resourceVersion (the next list, watch
// event or GET after the cloud comes back) replaces it, as does any newer one;
// nothing older ever does.
//
// Added for the offline path (package localproxy); PutObject cannot do this because
// it treats an equal resourceVersion as "already stored".
func (s *Store) UpdateObject(ctx context.Context, k ObjectKey, expectRV uint64, o Object) error {
	if err := checkObjectKey(k); err != nil {
		return err
	}
	enc, err := encodingByte(o.Encoding)
	if err != nil {
		return err
	}
	if o.ResourceVersion < expectRV {
		return fmt.Errorf("%s: resourceVersion %d < expected %d: %w", k, o.ResourceVersion, expectRV, ErrInvalid)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	s.touched(k)
	return s.update(func(tx *bolt.Tx) error {
		b, _ := objectsBucket(tx, false, k.Component, k.Resource)
		if b == nil {
			return fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		key := schema.ObjectKey(k.Namespace, k.Name)
		old := b.Get(key)
		if old == nil {
			return fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		_, rv, _, err := schema.DecodeObject(old)
		if err != nil {
			return damaged(err, k.String())
		}
		if rv != expectRV {
			return fmt.Errorf("%s: cached resourceVersion %d, expected %d: %w", k, rv, expectRV, ErrStale)
		}
		return b.Put(key, schema.EncodeObject(schema.LocalEncoding(enc), o.ResourceVersion, o.Data))
	})
}
