package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// The store's half of garbage collection (package gc holds the policies): removing
// objects from the file and from every view that covers them, walking objects with
// their view coverage, the in-memory record of when a GET last refreshed an object,
// and the capped put of locally created events. Nothing here changes the layout.

// refreshes records, per object key, when PutObject or UpdateObject last saw the
// object (an unchanged GET commits nothing, so the file cannot say). It is memory
// only: after a restart every object counts as refreshed at Open, so a restart
// never makes an object look older than it is.
type refreshes struct {
	mu     sync.Mutex
	opened time.Time
	at     map[string]int64 // ObjectKey.String() -> unix ns
}

func (r *refreshes) touch(k ObjectKey, now time.Time) {
	r.mu.Lock()
	if r.at == nil {
		r.at = make(map[string]int64)
	}
	r.at[k.String()] = now.UnixNano()
	r.mu.Unlock()
}

func (r *refreshes) forget(k ObjectKey) {
	r.mu.Lock()
	delete(r.at, k.String())
	r.mu.Unlock()
}

// prune forgets the keys for which keep is false and that were last seen before
// cutoff (a key seen after it may be an object being written right now).
func (r *refreshes) prune(keep func(string) bool, cutoff time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, ns := range r.at {
		if ns < cutoff.UnixNano() && !keep(k) {
			delete(r.at, k)
			n++
		}
	}
	return n
}

func (r *refreshes) last(k ObjectKey) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ns, ok := r.at[k.String()]; ok {
		return time.Unix(0, ns)
	}
	return r.opened
}

func (s *Store) refreshes() *refreshes { return &s.refresh }

// touched records that a GET (PutObject) or a local write (UpdateObject) saw k now.
func (s *Store) touched(k ObjectKey) { s.refreshes().touch(k, s.opts.Now()) }

// LastRefreshed is when a GET or a local write last saw k in this process, or when
// the store was opened if none has.
func (s *Store) LastRefreshed(k ObjectKey) time.Time { return s.refreshes().last(k) }

// PruneRefreshes forgets the refresh times of objects no longer in the file (a view
// dropped them, or a DELETED event), last seen more than an hour ago, so the record
// does not grow with every pod name the node ever had. The periodic GC calls it.
func (s *Store) PruneRefreshes(ctx context.Context) (int, error) {
	present := map[string]struct{}{}
	if err := s.Walk(ctx, Filter{}, func(k ObjectKey, _ Object) error {
		present[k.String()] = struct{}{}
		return nil
	}); err != nil {
		return 0, err
	}
	return s.refreshes().prune(func(k string) bool { _, ok := present[k]; return ok }, s.opts.Now().Add(-time.Hour)), nil
}

// DeleteObjects removes each object named in keys from the file and from every list
// view of its component and resource that covers it (their counts drop), in one
// transaction. Keys not in the cache are skipped. It returns how many objects were
// removed.
func (s *Store) DeleteObjects(ctx context.Context, keys []ObjectKey) (int, error) {
	removed, err := s.DeleteObjectsAt(ctx, keys, nil)
	return len(removed), err
}

// DeleteObjectsAt is DeleteObjects for objects a caller decided on from an earlier
// read: keys[i] is removed only if its stored resourceVersion is still rvs[i], so a
// copy the cloud sent meanwhile (a pod recreated under the same name, say) is kept.
// rvs nil removes whatever is stored. It returns the keys it removed.
func (s *Store) DeleteObjectsAt(ctx context.Context, keys []ObjectKey, rvs []uint64) ([]ObjectKey, error) {
	for _, k := range keys {
		if err := checkObjectKey(k); err != nil {
			return nil, err
		}
	}
	if rvs != nil && len(rvs) != len(keys) {
		return nil, fmt.Errorf("%w: %d keys but %d resourceVersions", ErrInvalid, len(keys), len(rvs))
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var done []ObjectKey
	err := s.update(func(tx *bolt.Tx) error {
		done = done[:0]
		for i, k := range keys {
			if rvs != nil {
				objs, _ := objectsBucket(tx, false, k.Component, k.Resource)
				var v []byte
				if objs != nil {
					v = objs.Get(schema.ObjectKey(k.Namespace, k.Name))
				}
				if v == nil {
					continue
				}
				if _, rv, _, derr := schema.DecodeObject(v); derr == nil && rv != rvs[i] {
					continue // changed since the caller looked: keep it
				}
			}
			removed, err := deleteObjectTx(tx, k)
			if err != nil {
				return err
			}
			if removed {
				done = append(done, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range done {
		s.refreshes().forget(k)
	}
	return done, nil
}

// deleteObjectTx removes one object and its memberships; removed is false when the
// object was not stored.
func deleteObjectTx(tx *bolt.Tx, k ObjectKey) (removed bool, err error) {
	key := schema.ObjectKey(k.Namespace, k.Name)
	if lists, _ := listsBucket(tx, false, k.Component, k.Resource); lists != nil {
		var views [][]byte
		_ = lists.ForEachBucket(func(vk []byte) error {
			views = append(views, bytes.Clone(vk))
			return nil
		})
		for _, vk := range views {
			vb := lists.Bucket(vk)
			m := vb.Bucket(schema.BucketMembers)
			if m == nil || m.Get(key) == nil {
				continue
			}
			if err := m.Delete(key); err != nil {
				return false, fmt.Errorf("%s: drop from view %q: %w", k, vk, err)
			}
			li, err := schema.DecodeListInfo(vb.Get(schema.KeyInfo))
			if err != nil {
				return false, fmt.Errorf("%w: %s: view %q info: %v", ErrCorrupt, k, vk, err)
			}
			if li.Count > 0 {
				li.Count--
			}
			if err := vb.Put(schema.KeyInfo, schema.EncodeListInfo(li)); err != nil {
				return false, err
			}
		}
	}
	objs, _ := objectsBucket(tx, false, k.Component, k.Resource)
	if objs == nil || objs.Get(key) == nil {
		return false, nil
	}
	return true, objs.Delete(key)
}

// WalkCoverage is Walk that also says whether some list view of the object's
// component and resource covers it (an object only a GET or a local write stored
// is not covered).
func (s *Store) WalkCoverage(ctx context.Context, f Filter, fn func(k ObjectKey, o Object, covered bool) error) error {
	walked := 0 // a walk touches the map like a list does (mapdrop.go)
	defer func() { s.noteLargeList(walked) }()
	userFn := fn
	fn = func(k ObjectKey, o Object, covered bool) error { walked++; return userFn(k, o, covered) }
	return s.view(func(tx *bolt.Tx) error {
		comps := tx.Bucket(schema.BucketComponents)
		if comps == nil {
			return nil
		}
		return comps.ForEachBucket(func(cname []byte) error {
			if f.Component != "" && f.Component != string(cname) {
				return nil
			}
			cb := comps.Bucket(cname)
			ob := cb.Bucket(schema.BucketObjects)
			if ob == nil {
				return nil
			}
			lb := cb.Bucket(schema.BucketLists)
			return ob.ForEachBucket(func(rk []byte) error {
				g, v, rn, err := schema.ParseResourceKey(rk)
				if err != nil {
					return fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				r := Resource{Group: g, Version: v, Resource: rn}
				if !f.matchResource(r) {
					return nil
				}
				members := append(viewMembers(lb, rk), stagedMembers(cb, rk)...) // a list being committed covers its items
				c := ob.Bucket(rk).Cursor()
				for k, val := c.First(); k != nil; k, val = c.Next() {
					if err := ctxErr(ctx); err != nil {
						return err
					}
					ns, name, err := schema.ParseObjectKey(k)
					if err != nil {
						return fmt.Errorf("%w: %v", ErrCorrupt, err)
					}
					if (f.Namespace != "" && f.Namespace != ns) || (f.Name != "" && f.Name != name) {
						continue
					}
					enc, rv, data, err := schema.DecodeObject(val)
					if errors.Is(err, schema.ErrChecksum) {
						continue // damaged: the read paths report it and the next list repairs it; the GC leaves it
					}
					if err != nil {
						return fmt.Errorf("%w: %s/%s/%s: %v", ErrCorrupt, cname, rk, k, err)
					}
					covered := covers(members, k)
					key := ObjectKey{Component: string(cname), Resource: r, Namespace: ns, Name: name}
					if err := fn(key, Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: encodingOf(enc), Data: data, Local: schema.IsLocal(val)}, covered); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

// IsEventResource reports whether r is an Event resource (core/v1 or events.k8s.io).
func IsEventResource(r Resource) bool {
	return r.Resource == "events" && (r.Group == "" || r.Group == "events.k8s.io")
}

// PutLocalEvent stores an event created on the node while the cloud is unreachable
// (no list view covers it) and keeps at most max such events for the component,
// across its Event resources: when there are more, the oldest by when() (ties: the
// key order) are removed in the same transaction, never the new one. It returns the
// keys it removed. max <= 0 means no cap.
func (s *Store) PutLocalEvent(ctx context.Context, k ObjectKey, o Object, max int, when func(Object) time.Time) ([]ObjectKey, error) {
	if err := checkObjectKey(k); err != nil {
		return nil, err
	}
	if !IsEventResource(k.Resource) {
		return nil, fmt.Errorf("%w: %s is not an Event resource", ErrInvalid, k)
	}
	enc, err := encodingByte(o.Encoding)
	if err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var evicted []ObjectKey
	err = s.update(func(tx *bolt.Tx) error {
		evicted = evicted[:0]
		b, err := objectsBucket(tx, true, k.Component, k.Resource)
		if err != nil {
			return err
		}
		newKey := schema.ObjectKey(k.Namespace, k.Name)
		if err := b.Put(newKey, schema.EncodeObject(schema.LocalEncoding(enc), o.ResourceVersion, o.Data)); err != nil {
			return err
		}
		if max <= 0 {
			return nil
		}
		type cand struct {
			key ObjectKey
			at  time.Time
		}
		var cands []cand
		total := 0
		objs := tx.Bucket(schema.BucketComponents).Bucket([]byte(k.Component)).Bucket(schema.BucketObjects)
		lb := tx.Bucket(schema.BucketComponents).Bucket([]byte(k.Component)).Bucket(schema.BucketLists)
		err = objs.ForEachBucket(func(rk []byte) error {
			g, v, rn, err := schema.ParseResourceKey(rk)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			r := Resource{Group: g, Version: v, Resource: rn}
			if !IsEventResource(r) {
				return nil
			}
			members := append(viewMembers(lb, rk), stagedMembers(tx.Bucket(schema.BucketComponents).Bucket([]byte(k.Component)), rk)...)
			return objs.Bucket(rk).ForEach(func(key, val []byte) error {
				if covers(members, key) {
					return nil // listed from the cloud: not a local event
				}
				total++
				if r == k.Resource && bytes.Equal(key, newKey) {
					return nil // the new one is always kept
				}
				ns, name, err := schema.ParseObjectKey(key)
				if err != nil {
					return fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				e, rv, data, derr := schema.DecodeObject(val)
				var at time.Time
				if derr == nil && when != nil {
					at = when(Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: encodingOf(e), Data: data})
				}
				cands = append(cands, cand{ObjectKey{Component: k.Component, Resource: r, Namespace: ns, Name: name}, at})
				return nil
			})
		})
		if err != nil || total <= max {
			return err
		}
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].at.Before(cands[j].at) })
		for _, c := range cands[:total-max] {
			if _, err := deleteObjectTx(tx, c.key); err != nil {
				return err
			}
			evicted = append(evicted, c.key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range evicted {
		s.refreshes().forget(e)
	}
	return evicted, nil
}

// viewMembers is the members bucket of every list view of resource key rk in a
// component's lists bucket lb (nil: none).
func viewMembers(lb *bolt.Bucket, rk []byte) []*bolt.Bucket {
	if lb == nil {
		return nil
	}
	rb := lb.Bucket(rk)
	if rb == nil {
		return nil
	}
	var members []*bolt.Bucket
	_ = rb.ForEachBucket(func(vk []byte) error {
		if m := rb.Bucket(vk).Bucket(schema.BucketMembers); m != nil {
			members = append(members, m)
		}
		return nil
	})
	return members
}

// covers reports whether some list view (its members bucket) holds object key k.
func covers(members []*bolt.Bucket, k []byte) bool {
	for _, m := range members {
		if m.Get(k) != nil {
			return true
		}
	}
	return false
}
