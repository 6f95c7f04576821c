package store

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// A large list is committed in chunks into a staging generation and switched in by
// one small transaction, so that neither the decoded list nor bbolt's dirty pages
// for all of it are ever on the heap at once (one transaction for a 10k-pod list
// held 44 MiB live at its commit: every record, referenced by bbolt's nodes until
// the commit, and then the dirty pages written from them).
//
//	components/<component>/staging/<resource>/<namespace>?<selector>
//	    members/<namespace>/<name> = 0x01 | 0x02   the new list's members so far;
//	                                              0x02: its bytes went straight to objects
//	    objects/<namespace>/<name> = object record  new bytes of objects the view already covers
//
// Each chunk transaction (Options.ListChunkBytes of items; the first also drops a
// generation a failed attempt left) adds members to the
// staging generation and writes the items' bytes: an object the view does not cover
// yet goes straight to the objects bucket (no reader of this view sees it: List
// walks the view's members), one it covers goes to staging objects, so the view
// keeps serving its old bytes. The switch transaction then copies the staged bytes
// (those the cloud changed since the view's last list: none on a first list, few on
// a relist), drops the old members the new list lacks, and moves the staging
// members bucket into the view in place of the old one (a bucket move is one key).
// Readers see the old list or the new one, never a mix. A staged object is held
// (not deleted by an event's DELETED on another view, nor by the GC) like a member.
//
// A crash (or a failed chunk) leaves a staging generation behind: Open removes it,
// and with it the objects it wrote straight to the objects bucket that no view
// covers (0x02), so no orphan with a newer resourceVersion than its view refuses
// the view's next watch events. Commits of large lists take one mutex, so at most
// one chunk is in memory at a time however many lists arrive together.

var (
	stagedDirect = []byte{2} // a staged member whose bytes went straight to objects
)

// defaultListChunkBytes is Options.ListChunkBytes' default.
const defaultListChunkBytes = 2 << 20

func stagingBucket(tx *bolt.Tx, create bool, k ListKey) (*bolt.Bucket, error) {
	return bucketPath(tx, create, schema.BucketComponents, []byte(k.Component), schema.BucketStaging,
		schema.ResourceKey(k.Resource.Group, k.Resource.Version, k.Resource.Resource), schema.ViewKey(k.Namespace, k.Selector))
}

// stagedMembers is the members bucket of every staging generation of resource key
// rk in a component bucket cb (nil: none).
func stagedMembers(cb *bolt.Bucket, rk []byte) []*bolt.Bucket {
	if cb == nil {
		return nil
	}
	sb := cb.Bucket(schema.BucketStaging)
	if sb == nil {
		return nil
	}
	rb := sb.Bucket(rk)
	if rb == nil {
		return nil
	}
	var out []*bolt.Bucket
	_ = rb.ForEachBucket(func(vk []byte) error {
		if m := rb.Bucket(vk).Bucket(schema.BucketMembers); m != nil {
			out = append(out, m)
		}
		return nil
	})
	return out
}

// stagedFor is the members bucket of every staging generation of k's component
// and resource.
func stagedFor(tx *bolt.Tx, k ListKey) []*bolt.Bucket {
	cb, _ := bucketPath(tx, false, schema.BucketComponents, []byte(k.Component))
	return stagedMembers(cb, schema.ResourceKey(k.Resource.Group, k.Resource.Version, k.Resource.Resource))
}

// commitStaged is Commit for a list larger than one chunk.
func (w *ListWriter) commitStaged(rv uint64) error {
	s := w.s
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(w.f, 256<<10)
	ok := false
	defer func() {
		if !ok {
			if err := s.update(func(tx *bolt.Tx) error { return dropStaging(tx, w.key) }); err != nil {
				s.log.Warn("list commit failed and its staging generation could not be removed now; the next open removes it", slog.String("list", w.key.String()), slog.Any("err", err))
			}
		}
	}()
	read := 0
	for read < w.n {
		if err := ctxErr(w.ctx); err != nil {
			return err
		}
		// One chunk, read from the spool inside its transaction; a failed chunk
		// fails the whole commit (the staging generation is dropped).
		first := read == 0
		err := s.update(func(tx *bolt.Tx) error {
			if first {
				// Start clean: a generation a failed attempt left behind is dropped.
				if err := dropStaging(tx, w.key); err != nil {
					return err
				}
			}
			objs, err := objectsBucket(tx, true, w.key.Component, w.key.Resource)
			if err != nil {
				return err
			}
			st, err := stagingBucket(tx, true, w.key)
			if err != nil {
				return err
			}
			members, err := st.CreateBucketIfNotExists(schema.BucketMembers)
			if err != nil {
				return err
			}
			staged, err := st.CreateBucketIfNotExists(schema.BucketStaged)
			if err != nil {
				return err
			}
			var covered *bolt.Bucket
			if lists, _ := listsBucket(tx, false, w.key.Component, w.key.Resource); lists != nil {
				if vb := lists.Bucket(schema.ViewKey(w.key.Namespace, w.key.Selector)); vb != nil {
					covered = vb.Bucket(schema.BucketMembers)
				}
			}
			bytesIn := 0
			for read < w.n && bytesIn < s.opts.ListChunkBytes {
				o, err := readSpooled(r)
				if err != nil {
					return fmt.Errorf("list %s: read spool: %w", w.key, err)
				}
				read++
				bytesIn += len(o.record)
				key := schema.ObjectKey(o.Namespace, o.Name)
				if !newerThanStored(objs.Get(key), o.ResourceVersion) {
					if members.Get(key) == nil {
						if err := members.Put(key, memberMark); err != nil {
							return err
						}
					}
					continue
				}
				if covered != nil && covered.Get(key) != nil {
					if err := staged.Put(key, o.record); err != nil {
						return err
					}
					if err := members.Put(key, memberMark); err != nil {
						return err
					}
					continue
				}
				if err := objs.Put(key, o.record); err != nil {
					return err
				}
				if err := members.Put(key, stagedDirect); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// The switch has a transaction of its own: bbolt's MoveBucket moves a bucket as
	// last committed (changes made to it in the same transaction would be lost).
	if err := s.update(func(tx *bolt.Tx) error { return s.switchStaged(tx, w.key, rv) }); err != nil {
		return err
	}
	ok = true
	return nil
}

// newerThanStored reports whether an item at rv must replace the stored record old.
func newerThanStored(old []byte, rv uint64) bool { return compareStored(old, rv) < 0 }

// compareStored is the one rule for whether an item at rv replaces the stored record
// old (nil: none): -1 it does (nothing stored, a damaged or older copy, or a copy
// changed locally offline at the same resourceVersion: the cloud's copy wins), 0 it
// is the same (an equal resourceVersion), 1 the stored copy is newer. Both commits
// use it: one transaction (upsert) and in chunks.
func compareStored(old []byte, rv uint64) int {
	if old == nil {
		return -1
	}
	_, srv, _, err := schema.DecodeObject(old)
	switch {
	case err != nil:
		return -1
	case srv > rv:
		return 1
	case srv == rv && rv != 0 && !schema.IsLocal(old):
		return 0
	}
	return -1
}

// switchStaged makes view k the staging generation, at rv, in one transaction that
// must not have changed the staging members bucket before (MoveBucket).
func (s *Store) switchStaged(tx *bolt.Tx, k ListKey, rv uint64) error {
	st, _ := stagingBucket(tx, false, k)
	if st == nil || st.Bucket(schema.BucketMembers) == nil {
		return fmt.Errorf("list %s: its staging generation is gone", k)
	}
	v, err := openViewTx(tx, k)
	if err != nil {
		return err
	}
	members := st.Bucket(schema.BucketMembers)
	// Staged bytes of objects the view covered: in now, unless an event stored a
	// newer copy meanwhile.
	if staged := st.Bucket(schema.BucketStaged); staged != nil {
		if err := staged.ForEach(func(key, rec []byte) error {
			_, orv, _, derr := schema.DecodeObject(rec)
			if derr != nil {
				return fmt.Errorf("%w: %s: staged object %s: %v", ErrCorrupt, k, key, derr)
			}
			if !newerThanStored(v.objs.Get(key), orv) {
				return nil
			}
			return v.objs.Put(key, rec) // aliases the staging pages, freed only after this commit
		}); err != nil {
			return err
		}
	}
	// Members whose object is gone (deleted for good meanwhile) are left out.
	var missing, gone [][]byte
	count := 0
	_ = members.ForEach(func(key, _ []byte) error {
		if v.objs.Get(key) == nil {
			missing = append(missing, bytes.Clone(key))
		} else {
			count++
		}
		return nil
	})
	_ = v.members.ForEach(func(key, _ []byte) error {
		if members.Get(key) == nil {
			gone = append(gone, bytes.Clone(key))
		}
		return nil
	})
	for _, key := range gone {
		if err := v.drop(key); err != nil {
			return err
		}
	}
	if err := v.b.DeleteBucket(schema.BucketMembers); err != nil {
		return err
	}
	if err := st.MoveBucket(schema.BucketMembers, v.b); err != nil {
		return fmt.Errorf("list %s: switch in the staged members: %w", k, err)
	}
	if moved := v.b.Bucket(schema.BucketMembers); moved != nil {
		for _, key := range missing {
			if err := moved.Delete(key); err != nil {
				return err
			}
		}
	}
	// The moved members still say which bytes went straight in; that only matters
	// to a staging generation, so the marks are left as they are (any value is a
	// member).
	v.info = schema.ListInfo{ResourceVersion: rv, SyncedAt: s.opts.Now().UTC(), Count: count, Complete: true}
	if err := v.saveInfo(); err != nil {
		return err
	}
	return deleteStagingBucket(tx, k)
}

// deleteStagingBucket removes view k's staging generation (nothing else).
func deleteStagingBucket(tx *bolt.Tx, k ListKey) error {
	rb, _ := bucketPath(tx, false, schema.BucketComponents, []byte(k.Component), schema.BucketStaging,
		schema.ResourceKey(k.Resource.Group, k.Resource.Version, k.Resource.Resource))
	if rb == nil || rb.Bucket(schema.ViewKey(k.Namespace, k.Selector)) == nil {
		return nil
	}
	return rb.DeleteBucket(schema.ViewKey(k.Namespace, k.Selector))
}

// dropStaging removes view k's staging generation and the objects it wrote
// straight to the objects bucket that no view (nor another staging generation)
// covers.
func dropStaging(tx *bolt.Tx, k ListKey) error {
	st, _ := stagingBucket(tx, false, k)
	if st == nil {
		return nil
	}
	if m := st.Bucket(schema.BucketMembers); m != nil {
		var direct [][]byte
		_ = m.ForEach(func(key, v []byte) error {
			if bytes.Equal(v, stagedDirect) {
				direct = append(direct, bytes.Clone(key))
			}
			return nil
		})
		if len(direct) > 0 {
			if err := deleteStagingBucket(tx, k); err != nil {
				return err
			}
			cb, _ := bucketPath(tx, false, schema.BucketComponents, []byte(k.Component))
			lb, _ := bucketPath(tx, false, schema.BucketComponents, []byte(k.Component), schema.BucketLists)
			rk := schema.ResourceKey(k.Resource.Group, k.Resource.Version, k.Resource.Resource)
			holders := append(viewMembers(lb, rk), stagedMembers(cb, rk)...)
			objs, _ := objectsBucket(tx, false, k.Component, k.Resource)
			for _, key := range direct {
				if objs != nil && !covers(holders, key) {
					if err := objs.Delete(key); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	return deleteStagingBucket(tx, k)
}

// removeStaging drops every staging generation in the file (Open: what a crash
// left), with the objects they alone wrote. It returns how many it removed; a file
// without any is not written to.
func (s *Store) removeStaging() (int, error) {
	collect := func(tx *bolt.Tx) (keys []ListKey, comps [][]byte) {
		cb := tx.Bucket(schema.BucketComponents)
		if cb == nil {
			return nil, nil
		}
		_ = cb.ForEachBucket(func(c []byte) error {
			sb := cb.Bucket(c).Bucket(schema.BucketStaging)
			if sb == nil {
				return nil
			}
			comps = append(comps, bytes.Clone(c))
			return sb.ForEachBucket(func(rk []byte) error {
				g, ver, res, err := schema.ParseResourceKey(rk)
				if err != nil {
					return nil
				}
				return sb.Bucket(rk).ForEachBucket(func(vk []byte) error {
					if ns, sel, err := schema.ParseViewKey(vk); err == nil {
						keys = append(keys, ListKey{Component: string(c), Resource: Resource{Group: g, Version: ver, Resource: res}, Namespace: ns, Selector: sel})
					}
					return nil
				})
			})
		})
		return keys, comps
	}
	found := false
	if err := s.view(func(tx *bolt.Tx) error {
		_, comps := collect(tx)
		found = len(comps) > 0
		return nil
	}); err != nil || !found {
		return 0, err
	}
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		keys, comps := collect(tx)
		n = len(keys)
		for _, k := range keys {
			if err := dropStaging(tx, k); err != nil {
				return err
			}
		}
		cb := tx.Bucket(schema.BucketComponents)
		for _, c := range comps {
			if err := cb.Bucket(c).DeleteBucket(schema.BucketStaging); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
