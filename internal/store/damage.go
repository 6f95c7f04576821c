package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// A value whose bytes no longer match their checksum (schema.ErrChecksum) is
// damaged: bbolt's pages are intact, the value is not. It is never returned. The
// store logs it once per key (WARN), counts it (DamagedValues), and, when open
// read-write, marks every list view covering it incomplete with the reason, so the
// offline path refuses the view (never a partial list) until the next list from the
// cloud replaces the view, and with it the value (a damaged copy is always
// overwritten, whatever its resourceVersion).

// damageLog remembers the values already reported.
type damageLog struct {
	mu    sync.Mutex
	seen  map[string]struct{}
	count atomic.Int64
}

// maxDamageNames bounds the keys an error message names.
const maxDamageNames = 8

// DamagedValues is the number of distinct damaged values this store has found
// since it was opened (node_yurthub_cache_damaged_values_total).
func (s *Store) DamagedValues() int64 { return s.damage.count.Load() }

// damaged wraps a decode error: ErrDamaged for a checksum mismatch, ErrCorrupt for
// a record that does not parse at all.
func damaged(err error, what string) error {
	if errors.Is(err, schema.ErrChecksum) {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
}

// noteDamaged reports damaged objects (keys in component/resource's objects bucket)
// and marks the views covering them incomplete. It runs after the read transaction
// that found them. A failure to mark is logged: the caller's answer (ErrDamaged) is
// what keeps the damaged value from being served.
func (s *Store) noteDamaged(component string, r Resource, keys [][]byte) {
	for _, k := range keys {
		if s.firstReport(component + "/" + r.String() + "/" + string(k)) {
			s.log.Warn("cached value failed its integrity check (checksum mismatch): left out of every answer; its list views are marked incomplete until the next list from the cloud replaces it",
				slog.String("component", component), slog.String("resource", r.String()), slog.String("key", string(k)))
		}
	}
	if s.opts.ReadOnly || len(keys) == 0 {
		return
	}
	reason := damageReason(keys)
	err := s.update(func(tx *bolt.Tx) error {
		lists, _ := listsBucket(tx, false, component, r)
		if lists == nil {
			return nil
		}
		var views [][]byte
		_ = lists.ForEachBucket(func(vk []byte) error {
			m := lists.Bucket(vk).Bucket(schema.BucketMembers)
			for _, k := range keys {
				if m != nil && m.Get(k) != nil {
					views = append(views, bytes.Clone(vk))
					break
				}
			}
			return nil
		})
		for _, vk := range views {
			ns, sel, err := schema.ParseViewKey(vk)
			if err != nil {
				return err
			}
			v, err := openViewTx(tx, ListKey{Component: component, Resource: r, Namespace: ns, Selector: sel})
			if err != nil {
				return err
			}
			if !v.info.Complete && v.info.Reason == reason {
				continue
			}
			v.info.Complete = false
			v.info.Reason = reason
			if err := v.saveInfo(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("cannot mark the list views of a damaged value incomplete", slog.String("component", component),
			slog.String("resource", r.String()), slog.Any("err", err))
	}
}

// firstReport counts a damaged value and reports whether it is the first time.
func (s *Store) firstReport(id string) bool {
	s.damage.mu.Lock()
	defer s.damage.mu.Unlock()
	if s.damage.seen == nil {
		s.damage.seen = map[string]struct{}{}
	}
	if _, ok := s.damage.seen[id]; ok {
		return false
	}
	s.damage.seen[id] = struct{}{}
	s.damage.count.Add(1)
	return true
}

// damageReason is the incomplete reason (and the error text) naming keys.
func damageReason(keys [][]byte) string {
	names := make([]string, 0, min(len(keys), maxDamageNames))
	for i, k := range keys {
		if i == maxDamageNames {
			names = append(names, fmt.Sprintf("and %d more", len(keys)-i))
			break
		}
		names = append(names, string(k))
	}
	return fmt.Sprintf("%d cached object(s) failed the integrity check and are left out (%s); the next list from the cloud replaces them",
		len(keys), strings.Join(names, ", "))
}
