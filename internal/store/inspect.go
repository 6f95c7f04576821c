package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
	"github.com/yurthub/yurthub/migrations"
)

// Stats is what hubctl inspect shows: the cache's meaning, not bbolt's pages.
type Stats struct {
	Path           string           `json:"path"`
	SchemaVersion  uint64           `json:"schemaVersion"`
	LatestSchema   uint64           `json:"latestSchemaVersion"` // of this binary
	Created        string           `json:"created,omitempty"`
	OpenYurtImport string           `json:"openyurtImport,omitempty"`
	FileSize       int64            `json:"fileSize"`  // apparent size (the file grows in 4 MiB steps)
	DiskBytes      int64            `json:"diskBytes"` // blocks allocated on disk
	PageSize       int              `json:"pageSize"`
	FreePages      int              `json:"freePages"`    // reusable pages in the file
	PendingPages   int              `json:"pendingPages"` // freed, reusable once readers finish
	Components     []ComponentStats `json:"components"`

	// Reclaimable is what a compaction gives back: the free and pending pages (compact.go).
	Reclaimable int64 `json:"reclaimableBytes"`
}

// ComponentStats are one component's figures.
type ComponentStats struct {
	Name      string          `json:"name"`
	Resources []ResourceStats `json:"resources"`
	Raw       []string        `json:"raw,omitempty"` // cached non-resource paths
	RawBytes  int64           `json:"rawBytes,omitempty"`
}

// ResourceStats are one component/resource's figures.
type ResourceStats struct {
	Resource Resource    `json:"resource"`
	Objects  int         `json:"objects"`
	Bytes    int64       `json:"bytes"`             // object bytes as stored (JSON or protobuf)
	Damaged  []string    `json:"damaged,omitempty"` // keys of objects that failed the integrity check
	Lists    []ListStats `json:"lists"`
}

// ListStats describe one list view.
type ListStats struct {
	Namespace string `json:"namespace"`
	Selector  string `json:"selector"`
	ListInfo
}

// Stats walks the whole file once.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	defer s.noteLargeList(largeListObjects) // it reads every page (mapdrop.go)
	st := Stats{Path: s.path, LatestSchema: migrations.Latest()}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileSize = fi.Size()
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.DiskBytes = sys.Blocks * 512
		}
	}
	dbs := s.db.Stats()
	st.FreePages, st.PendingPages = dbs.FreePageN, dbs.PendingPageN
	st.PageSize = s.db.Info().PageSize
	st.Reclaimable = int64(st.FreePages+st.PendingPages) * int64(st.PageSize)
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if st.SchemaVersion, err = migrations.Version(tx); err != nil {
			return fmt.Errorf("%w: meta/version: %v", ErrCorrupt, err)
		}
		if meta := tx.Bucket(schema.BucketMeta); meta != nil {
			st.Created = string(meta.Get(schema.KeyCreated))
			st.OpenYurtImport = string(meta.Get(schema.KeyOpenYurtInput))
		}
		comps := tx.Bucket(schema.BucketComponents)
		if comps == nil {
			return nil
		}
		return comps.ForEachBucket(func(cname []byte) error {
			if err := ctxErr(ctx); err != nil {
				return err
			}
			cb := comps.Bucket(cname)
			cs := ComponentStats{Name: string(cname)}
			byRes := map[string]*ResourceStats{}
			var order []string
			res := func(rk []byte) (*ResourceStats, error) {
				if r, ok := byRes[string(rk)]; ok {
					return r, nil
				}
				g, v, rn, err := schema.ParseResourceKey(rk)
				if err != nil {
					return nil, fmt.Errorf("%w: component %s: %v", ErrCorrupt, cname, err)
				}
				r := &ResourceStats{Resource: Resource{Group: g, Version: v, Resource: rn}, Lists: []ListStats{}}
				byRes[string(rk)] = r
				order = append(order, string(rk))
				return r, nil
			}
			if ob := cb.Bucket(schema.BucketObjects); ob != nil {
				if err := ob.ForEachBucket(func(rk []byte) error {
					r, err := res(rk)
					if err != nil {
						return err
					}
					return ob.Bucket(rk).ForEach(func(k, v []byte) error {
						r.Objects++
						if _, _, d, err := schema.DecodeObject(v); err == nil {
							r.Bytes += int64(len(d))
						} else if errors.Is(err, schema.ErrChecksum) {
							r.Damaged = append(r.Damaged, string(k))
						}
						return nil
					})
				}); err != nil {
					return err
				}
			}
			if lb := cb.Bucket(schema.BucketLists); lb != nil {
				if err := lb.ForEachBucket(func(rk []byte) error {
					r, err := res(rk)
					if err != nil {
						return err
					}
					rb := lb.Bucket(rk)
					return rb.ForEachBucket(func(vk []byte) error {
						ns, sel, err := schema.ParseViewKey(vk)
						if err != nil {
							return fmt.Errorf("%w: %v", ErrCorrupt, err)
						}
						li, err := schema.DecodeListInfo(rb.Bucket(vk).Get(schema.KeyInfo))
						if errors.Is(err, schema.ErrChecksum) {
							li = schema.ListInfo{Reason: "the list view's record failed its integrity check"}
						} else if err != nil {
							return fmt.Errorf("%w: list %s %s: %v", ErrCorrupt, rk, vk, err)
						}
						r.Lists = append(r.Lists, ListStats{Namespace: ns, Selector: sel, ListInfo: ListInfo(li)})
						return nil
					})
				}); err != nil {
					return err
				}
			}
			if rb := cb.Bucket(schema.BucketRaw); rb != nil {
				_ = rb.ForEach(func(k, v []byte) error {
					cs.Raw = append(cs.Raw, string(k))
					cs.RawBytes += int64(len(v))
					return nil
				})
			}
			cs.Resources = make([]ResourceStats, 0, len(order))
			for _, k := range order {
				cs.Resources = append(cs.Resources, *byRes[k])
			}
			st.Components = append(st.Components, cs)
			return nil
		})
	})
	if st.Components == nil {
		st.Components = []ComponentStats{}
	}
	return st, err
}

// Filter selects objects for Walk; empty fields match everything. Resource matches
// on the fields given (e.g. only Resource "pods", or "deployments"+"v1"+"apps").
type Filter struct {
	Component string
	Resource  Resource
	Namespace string
	Name      string
}

func (f Filter) matchResource(r Resource) bool {
	return (f.Resource.Resource == "" || f.Resource.Resource == r.Resource) &&
		(f.Resource.Version == "" || f.Resource.Version == r.Version) &&
		(f.Resource.Group == "" || f.Resource.Group == r.Group)
}

// Walk calls fn for every stored object matching f, ordered by component, resource,
// namespace and name, in one read transaction. Object.Data is valid only during fn.
// An object that failed its integrity check is passed with Damaged set and no Data
// (hubctl dump shows it as such); its views are marked incomplete after the walk.
func (s *Store) Walk(ctx context.Context, f Filter, fn func(ObjectKey, Object) error) error {
	walked := 0 // a walk touches the map like a list does (mapdrop.go)
	defer func() { s.noteLargeList(walked) }()
	userFn := fn
	fn = func(k ObjectKey, o Object) error { walked++; return userFn(k, o) }
	type damagedKey struct {
		component string
		resource  Resource
		key       []byte
	}
	var bad []damagedKey
	defer func() {
		for _, d := range bad {
			s.noteDamaged(d.component, d.resource, [][]byte{d.key})
		}
	}()
	return s.view(func(tx *bolt.Tx) error {
		comps := tx.Bucket(schema.BucketComponents)
		if comps == nil {
			return nil
		}
		return comps.ForEachBucket(func(cname []byte) error {
			if f.Component != "" && f.Component != string(cname) {
				return nil
			}
			ob := comps.Bucket(cname).Bucket(schema.BucketObjects)
			if ob == nil {
				return nil
			}
			return ob.ForEachBucket(func(rk []byte) error {
				g, v, rn, err := schema.ParseResourceKey(rk)
				if err != nil {
					return fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				r := Resource{Group: g, Version: v, Resource: rn}
				if !f.matchResource(r) {
					return nil
				}
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
					key := ObjectKey{Component: string(cname), Resource: r, Namespace: ns, Name: name}
					enc, rv, data, err := schema.DecodeObject(val)
					if errors.Is(err, schema.ErrChecksum) {
						bad = append(bad, damagedKey{string(cname), r, bytes.Clone(k)})
						if err := fn(key, Object{Namespace: ns, Name: name, Damaged: damaged(err, key.String())}); err != nil {
							return err
						}
						continue
					}
					if err != nil {
						return fmt.Errorf("%w: %s/%s/%s: %v", ErrCorrupt, cname, rk, k, err)
					}
					if err := fn(key, Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: encodingOf(enc), Data: data, Local: schema.IsLocal(val)}); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}
