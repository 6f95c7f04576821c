package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

type batchReq struct {
	key    ListKey
	events []Event
	encs   []byte
	stale  []int
	done   chan error
}

// ApplyEvents applies watch events for view k in order: ADDED and MODIFIED store the
// object and add it to the view, DELETED removes it from the view (and from the file
// when no other view holds it), BOOKMARK only advances the view's resourceVersion.
// The view's resourceVersion moves to the newest event's, in the same transaction.
//
// An event older than the stored object, or than the view's resourceVersion, is
// refused and the others are applied: the error is then a *StaleEventsError
// (errors.Is(err, ErrStale)). An event equal to the stored object is a no-op.
// A view that was never listed is created, marked incomplete ("watched without a
// list").
//
// Calls are group-committed (see the package doc): ApplyEvents returns once its
// events are fsync'd, at most Options.MaxBatchDelay plus one commit later.
func (s *Store) ApplyEvents(ctx context.Context, k ListKey, events []Event) error {
	if err := checkListKey(k); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("cache %s is open read-only", s.path)
	}
	if len(events) == 0 {
		return nil
	}
	req := &batchReq{key: k, events: events, encs: make([]byte, len(events)), done: make(chan error, 1)}
	for i, ev := range events {
		switch ev.Type {
		case Bookmark:
			continue
		case Added, Modified, Deleted:
		default:
			return fmt.Errorf("%w: %s: event %d has unknown type %q", ErrInvalid, k, i, ev.Type)
		}
		enc, err := s.checkListObject(k, ev.Object)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		req.encs[i] = enc
	}
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case s.batchc <- req:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.done // once queued the outcome is bounded by one commit: wait for it
}

// committer is the one goroutine that turns queued ApplyEvents calls into
// transactions: it takes the first call, gathers more for at most MaxBatchDelay (or
// until MaxBatchEvents wait), and commits them together.
func (s *Store) committer() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *batchReq
		select {
		case first = <-s.batchc:
		case <-s.closing:
			return
		}
		batch := []*batchReq{first}
		n := len(first.events)
		timer.Reset(s.opts.MaxBatchDelay)
	gather:
		for n < s.opts.MaxBatchEvents {
			select {
			case r := <-s.batchc:
				batch = append(batch, r)
				n += len(r.events)
			case <-timer.C:
				break gather
			case <-s.closing:
				break gather
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch applies every request in one transaction. A request that fails hard
// (not a stale refusal) is taken out with its error and the rest retried, so one bad
// request never costs the others their writes.
func (s *Store) commitBatch(batch []*batchReq) {
	for len(batch) > 0 {
		failed := -1
		var failErr error
		err := s.update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				r.stale = r.stale[:0]
				if err := s.applyTx(tx, r); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, r := range batch {
				if len(r.stale) > 0 {
					r.done <- &StaleEventsError{Key: r.key, Indexes: append([]int(nil), r.stale...)}
				} else {
					r.done <- nil
				}
			}
			return
		}
		if failed < 0 || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrClosed) {
			for _, r := range batch { // the commit itself failed: nobody's events are stored
				r.done <- err
			}
			return
		}
		batch[failed].done <- failErr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

func (s *Store) applyTx(tx *bolt.Tx, r *batchReq) error {
	v, err := openViewTx(tx, r.key)
	if err != nil {
		return err
	}
	if !v.existed {
		v.info = schema.ListInfo{Complete: false, Reason: "watched without a list"}
	}
	for i, ev := range r.events {
		rv := ev.Object.ResourceVersion
		if rv < v.info.ResourceVersion {
			r.stale = append(r.stale, i)
			continue
		}
		switch ev.Type {
		case Bookmark:
		case Added, Modified:
			stale, err := v.upsert(ev.Object, r.encs[i], true)
			if err != nil {
				return fmt.Errorf("%s: apply %s %s/%s: %w", r.key, ev.Type, ev.Object.Namespace, ev.Object.Name, err)
			}
			if stale {
				r.stale = append(r.stale, i)
				continue
			}
		case Deleted:
			key := schema.ObjectKey(ev.Object.Namespace, ev.Object.Name)
			if old := v.objs.Get(key); old != nil {
				if _, orv, _, derr := schema.DecodeObject(old); derr == nil && orv > rv {
					r.stale = append(r.stale, i)
					continue
				}
			}
			if err := v.drop(key); err != nil {
				return fmt.Errorf("%s: apply DELETED %s: %w", r.key, key, err)
			}
		}
		if rv > v.info.ResourceVersion {
			v.info.ResourceVersion = rv
		}
	}
	return v.saveInfo()
}
