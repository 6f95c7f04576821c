package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

var memberMark = []byte{1}

// viewTx is one list view inside a write transaction.
type viewTx struct {
	objs    *bolt.Bucket // the component/resource objects bucket
	lists   *bolt.Bucket // the component/resource lists bucket
	key     []byte       // the view's key in lists
	members *bolt.Bucket
	b       *bolt.Bucket
	info    schema.ListInfo
	existed bool
	staged  []*bolt.Bucket // members of lists being committed in chunks (staging.go)
}

func openViewTx(tx *bolt.Tx, k ListKey) (*viewTx, error) {
	objs, err := objectsBucket(tx, true, k.Component, k.Resource)
	if err != nil {
		return nil, err
	}
	lists, err := listsBucket(tx, true, k.Component, k.Resource)
	if err != nil {
		return nil, err
	}
	v := &viewTx{objs: objs, lists: lists, key: schema.ViewKey(k.Namespace, k.Selector), staged: stagedFor(tx, k)}
	v.b = lists.Bucket(v.key)
	if v.b != nil {
		v.existed = true
		if v.members, err = v.b.CreateBucketIfNotExists(schema.BucketMembers); err != nil {
			return nil, fmt.Errorf("create list members %s: %w", k, err)
		}
		if raw := v.b.Get(schema.KeyInfo); raw != nil {
			if v.info, err = schema.DecodeListInfo(raw); errors.Is(err, schema.ErrChecksum) {
				// A damaged info is rewritten: the view counts as incomplete at no
				// resourceVersion until a list replaces it.
				v.info = schema.ListInfo{Reason: "the list view's record failed its integrity check"}
				_ = v.members.ForEach(func([]byte, []byte) error { v.info.Count++; return nil })
			} else if err != nil {
				return nil, fmt.Errorf("%w: %s info: %v", ErrCorrupt, k, err)
			}
		}
	} else {
		if v.b, err = lists.CreateBucket(v.key); err != nil {
			return nil, fmt.Errorf("create list view %s: %w", k, err)
		}
		if v.members, err = v.b.CreateBucket(schema.BucketMembers); err != nil {
			return nil, fmt.Errorf("create list members %s: %w", k, err)
		}
	}
	return v, nil
}

func (v *viewTx) saveInfo() error { return v.b.Put(schema.KeyInfo, schema.EncodeListInfo(v.info)) }

// heldElsewhere reports whether another view of the same component/resource, or a
// list being committed in chunks, covers objKey.
func (v *viewTx) heldElsewhere(objKey []byte) bool {
	held := covers(v.staged, objKey)
	_ = v.lists.ForEachBucket(func(k []byte) error {
		if held || bytes.Equal(k, v.key) {
			return nil
		}
		if m := v.lists.Bucket(k).Bucket(schema.BucketMembers); m != nil && m.Get(objKey) != nil {
			held = true
		}
		return nil
	})
	return held
}

// drop removes objKey from the view, and the object itself when no other view covers it.
func (v *viewTx) drop(objKey []byte) error {
	if v.members.Get(objKey) != nil {
		if err := v.members.Delete(objKey); err != nil {
			return err
		}
		v.info.Count--
	}
	if !v.heldElsewhere(objKey) {
		return v.objs.Delete(objKey)
	}
	return nil
}

// upsert stores o unless the stored copy is newer, and adds it to the view.
// It reports stale when the stored copy is newer (then nothing changes).
func (v *viewTx) upsert(o Object, enc byte, requireFresh bool) (stale bool, err error) {
	key := schema.ObjectKey(o.Namespace, o.Name)
	c := compareStored(v.objs.Get(key), o.ResourceVersion)
	if c > 0 && requireFresh {
		return true, nil
	}
	// c > 0: a list older than another view's watch keeps the newer copy.
	if c < 0 {
		rec := o.record
		if rec == nil {
			rec = schema.EncodeObject(enc, o.ResourceVersion, o.Data)
		}
		if err := v.objs.Put(key, rec); err != nil {
			return false, err
		}
	}
	if v.members.Get(key) == nil {
		if err := v.members.Put(key, memberMark); err != nil {
			return false, err
		}
		v.info.Count++
	}
	return false, nil
}

func (s *Store) checkListObject(k ListKey, o Object) (byte, error) {
	if err := checkNames(o.Namespace, o.Name); err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	if k.Namespace != "" && o.Namespace != k.Namespace {
		return 0, fmt.Errorf("%w: %s: object %s/%s is outside the list's namespace", ErrInvalid, k, o.Namespace, o.Name)
	}
	return encodingByte(o.Encoding)
}

// replaceTx makes the view exactly the objects next yields, at rv.
func (s *Store) replaceTx(tx *bolt.Tx, k ListKey, rv uint64, next func() (Object, bool, error)) error {
	v, err := openViewTx(tx, k)
	if err != nil {
		return err
	}
	fresh := make(map[string]struct{})
	for {
		o, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		enc, err := s.checkListObject(k, o)
		if err != nil {
			return err
		}
		if _, err := v.upsert(o, enc, false); err != nil {
			return err
		}
		fresh[string(schema.ObjectKey(o.Namespace, o.Name))] = struct{}{}
	}
	var gone [][]byte
	_ = v.members.ForEach(func(key, _ []byte) error {
		if _, ok := fresh[string(key)]; !ok {
			gone = append(gone, bytes.Clone(key))
		}
		return nil
	})
	for _, key := range gone {
		if err := v.drop(key); err != nil {
			return err
		}
	}
	v.info = schema.ListInfo{ResourceVersion: rv, SyncedAt: s.opts.Now().UTC(), Count: len(fresh), Complete: true}
	return v.saveInfo()
}

// ReplaceList atomically makes the view exactly objs at resourceVersion rv (readers
// see the old set or the new one). Objects other views hold at a newer
// resourceVersion keep their newer bytes.
func (s *Store) ReplaceList(ctx context.Context, k ListKey, rv uint64, objs []Object) error {
	if err := checkListKey(k); err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	defer s.noteLargeList(len(objs))
	i := 0
	return s.update(func(tx *bolt.Tx) error {
		i = 0
		return s.replaceTx(tx, k, rv, func() (Object, bool, error) {
			if i == len(objs) {
				return Object{}, false, nil
			}
			i++
			return objs[i-1], true, nil
		})
	})
}

// ListWriter streams a list replacement: Add each item as it is decoded from the
// response, then Commit with the list's resourceVersion, or Abort. Items are
// spooled to an unlinked temporary file next to the cache, so a 10k-object list is
// never held in memory while it arrives. Commit writes a list of up to
// Options.ListChunkBytes in one transaction, a larger one in chunks into a staging
// generation switched in by one small transaction (staging.go), so the commit's heap
// is bounded by a chunk too; either way readers see the old list or the new one.
type ListWriter struct {
	s     *Store
	ctx   context.Context
	key   ListKey
	f     *os.File
	w     *bufio.Writer
	n     int
	bytes int // record bytes spooled
	err   error
	done  bool
	hdr   [3*binary.MaxVarintLen64 + 8 + 1]byte
}

// BeginList starts a streaming replacement of view k.
func (s *Store) BeginList(ctx context.Context, k ListKey) (*ListWriter, error) {
	if err := checkListKey(k); err != nil {
		return nil, err
	}
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("cache %s is open read-only", s.path)
	}
	f, err := os.CreateTemp(filepath.Dir(s.path), ".list-spool-*")
	if err != nil {
		return nil, noSpace(fmt.Errorf("list %s: create spool file: %w", k, err), filepath.Dir(s.path))
	}
	_ = os.Remove(f.Name()) // unlinked: gone with the process, whatever happens
	return &ListWriter{s: s, ctx: ctx, key: k, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// Add appends one item (its Data is copied; the caller may reuse it).
func (w *ListWriter) Add(o Object) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("list writer already committed or aborted")
	}
	enc, err := w.s.checkListObject(w.key, o)
	if err != nil {
		w.err = err
		return err
	}
	h := w.hdr[:0]
	h = binary.AppendUvarint(h, uint64(len(o.Namespace)))
	h = binary.AppendUvarint(h, uint64(len(o.Name)))
	h = binary.AppendUvarint(h, uint64(len(o.Data)))
	h = binary.BigEndian.AppendUint64(h, o.ResourceVersion)
	h = append(h, enc)
	_, _ = w.w.Write(h)
	_, _ = w.w.WriteString(o.Namespace)
	_, _ = w.w.WriteString(o.Name)
	if _, err := w.w.Write(o.Data); err != nil {
		w.err = noSpace(fmt.Errorf("list %s: spool: %w", w.key, err), filepath.Dir(w.s.path))
		return w.err
	}
	w.n++
	w.bytes += len(o.Data) + 14
	return nil
}

// Len is the number of items added so far.
func (w *ListWriter) Len() int { return w.n }

// Commit replaces the view with the added items at resourceVersion rv, atomically.
func (w *ListWriter) Commit(rv uint64) error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	if w.done {
		return errors.New("list writer already committed or aborted")
	}
	defer w.Abort()
	defer w.s.noteLargeList(w.n)
	if err := w.w.Flush(); err != nil {
		return noSpace(fmt.Errorf("list %s: spool: %w", w.key, err), filepath.Dir(w.s.path))
	}
	if err := ctxErr(w.ctx); err != nil {
		return err
	}
	if w.bytes > w.s.opts.ListChunkBytes {
		return w.commitStaged(rv) // staging.go: memory bounded by one chunk
	}
	return w.s.update(func(tx *bolt.Tx) error {
		if _, err := w.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		r := bufio.NewReaderSize(w.f, 256<<10)
		read := 0
		return w.s.replaceTx(tx, w.key, rv, func() (Object, bool, error) {
			if read == w.n {
				return Object{}, false, nil
			}
			read++
			o, err := readSpooled(r)
			if err != nil {
				return Object{}, false, fmt.Errorf("list %s: read spool: %w", w.key, err)
			}
			return o, true, nil
		})
	})
}

func readSpooled(r *bufio.Reader) (Object, error) {
	var ls [3]uint64
	for i := range ls {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return Object{}, err
		}
		ls[i] = v
	}
	var fixed [9]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Object{}, err
	}
	names := make([]byte, ls[0]+ls[1])
	if _, err := io.ReadFull(r, names); err != nil {
		return Object{}, err
	}
	// Read the bytes straight into a stored record: one copy in memory, which bbolt
	// references until the commit.
	rv := binary.BigEndian.Uint64(fixed[:8])
	rec := schema.NewObjectRecord(fixed[8], rv, int(ls[2]))
	if _, err := io.ReadFull(r, rec[len(rec)-int(ls[2]):]); err != nil {
		return Object{}, err
	}
	schema.SealObjectRecord(rec)
	return Object{
		Namespace:       string(names[:ls[0]]),
		Name:            string(names[ls[0]:]),
		Data:            rec[len(rec)-int(ls[2]):],
		ResourceVersion: rv,
		Encoding:        encodingOf(fixed[8]),
		record:          rec,
	}, nil
}

// Abort discards the spooled items; the view is unchanged. Safe to call twice and
// after Commit.
func (w *ListWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
}

// List calls fn for every object of view k, in namespace/name order, inside one
// read transaction (a consistent snapshot), and returns the view's info.
// Object.Data aliases the file and is valid only during fn. ErrNotSynced if the view
// was never listed or watched. An error from fn stops the walk and is returned.
//
// Every object's checksum is verified before fn is called for the first one: when
// any failed, fn is never called and List returns ErrDamaged naming them (and marks
// the view incomplete), so a caller never streams half a list and then finds a
// damaged item.
func (s *Store) List(ctx context.Context, k ListKey, fn func(Object) error) (ListInfo, error) {
	if fn == nil {
		return s.ListTx(ctx, k, nil)
	}
	return s.ListTx(ctx, k, func(_ ListInfo, each func(func(Object) error) error) error { return each(fn) })
}

// ListTx is List for a caller that needs the view's info before its objects, or
// more than one pass over them, from the same snapshot: fn is called once, inside
// one read transaction, with the info and an each that walks the verified objects
// (in namespace/name order; Object.Data valid only during the walk's callback).
// each may be called any number of times while fn runs; every call sees the same
// objects. fn is not called when a member is damaged (ErrDamaged, as List).
// Keep fn short: a read transaction held open keeps bbolt from remapping a file
// that outgrew its mapping (a writer waits) and keeps freed pages from reuse.
func (s *Store) ListTx(ctx context.Context, k ListKey, fn func(info ListInfo, each func(func(Object) error) error) error) (ListInfo, error) {
	if err := checkListKey(k); err != nil {
		return ListInfo{}, err
	}
	var info ListInfo
	var bad [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		lists, _ := listsBucket(tx, false, k.Component, k.Resource)
		var vb *bolt.Bucket
		if lists != nil {
			vb = lists.Bucket(schema.ViewKey(k.Namespace, k.Selector))
		}
		if vb == nil {
			return fmt.Errorf("%s: %w", k, ErrNotSynced)
		}
		li, err := schema.DecodeListInfo(vb.Get(schema.KeyInfo))
		if err != nil {
			return damaged(err, k.String()+" info")
		}
		info = ListInfo(li)
		if fn == nil {
			return nil
		}
		objs, _ := objectsBucket(tx, false, k.Component, k.Resource)
		members := vb.Bucket(schema.BucketMembers)
		if members == nil {
			return fn(info, func(func(Object) error) error { return nil })
		}
		// Pass 1: look up and verify every member; pass 2 (each): hand them to fn.
		type item struct {
			key   []byte
			enc   byte
			rv    uint64
			data  []byte
			local bool
		}
		items := make([]item, 0, min(max(info.Count, 0), 1<<17))
		// Members and objects are both sorted by key: walk them together (a cursor
		// step is much cheaper than a lookup from the root), seeking only over gaps.
		var oc *bolt.Cursor
		var ok, ov []byte
		if objs != nil {
			oc = objs.Cursor()
			ok, ov = oc.First()
		}
		c := members.Cursor()
		for key, _ := c.First(); key != nil; key, _ = c.Next() {
			if err := ctxErr(ctx); err != nil {
				return err
			}
			var v []byte
			if oc != nil {
				for steps := 0; ok != nil && bytes.Compare(ok, key) < 0; steps++ {
					if steps == 4 {
						ok, ov = oc.Seek(key)
						break
					}
					ok, ov = oc.Next()
				}
				if bytes.Equal(ok, key) {
					v = ov
				}
			}
			if v == nil {
				return fmt.Errorf("%w: %s: member %s has no object", ErrCorrupt, k, key)
			}
			enc, rv, data, err := schema.DecodeObject(v)
			if errors.Is(err, schema.ErrChecksum) {
				bad = append(bad, bytes.Clone(key))
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: %s: object %s: %v", ErrCorrupt, k, key, err)
			}
			items = append(items, item{key, enc, rv, data, schema.IsLocal(v)})
		}
		if len(bad) > 0 {
			return fmt.Errorf("%w: %s: %s", ErrDamaged, k, damageReason(bad))
		}
		s.noteLargeList(len(items))
		return fn(info, func(each func(Object) error) error {
			for _, it := range items {
				if err := ctxErr(ctx); err != nil {
					return err
				}
				ns, name, _ := schema.ParseObjectKey(it.key)
				if err := each(Object{Namespace: ns, Name: name, ResourceVersion: it.rv, Encoding: encodingOf(it.enc), Data: it.data, Local: it.local}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if len(bad) > 0 {
		s.noteDamaged(k.Component, k.Resource, bad)
		info.Complete, info.Reason = false, damageReason(bad)
	}
	return info, err
}

// GetListInfo returns a view's info without reading its objects.
func (s *Store) GetListInfo(ctx context.Context, k ListKey) (ListInfo, error) {
	return s.List(ctx, k, nil)
}

// MarkIncomplete records that view k fell behind (a watch gap, a failed relist): it
// keeps its objects but List reports Complete false with the reason until the next
// full ReplaceList. ErrNotSynced if the view does not exist.
func (s *Store) MarkIncomplete(ctx context.Context, k ListKey, reason string) error {
	if err := checkListKey(k); err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		lists, _ := listsBucket(tx, false, k.Component, k.Resource)
		if lists == nil || lists.Bucket(schema.ViewKey(k.Namespace, k.Selector)) == nil {
			return fmt.Errorf("%s: %w", k, ErrNotSynced)
		}
		v, err := openViewTx(tx, k)
		if err != nil {
			return err
		}
		v.info.Complete = false
		v.info.Reason = reason
		return v.saveInfo()
	})
}
