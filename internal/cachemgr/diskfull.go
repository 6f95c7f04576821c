package cachemgr

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// diskFullLogEvery bounds how often a full disk is logged again while it lasts.
const diskFullLogEvery = time.Minute

// diskFull follows a full filesystem under the cache file (store.ErrNoSpace). The
// client is never affected (the tee does not wait for the store); what an operator
// needs is one clear error when it starts, a reminder while it lasts (not one line
// per response, which would only fill the disk further), and a line when it ends.
type diskFull struct {
	mu       sync.Mutex
	full     bool
	since    time.Time
	lastLog  time.Time
	failed   int64 // writes refused since the last log line
	total    int64 // writes refused since it started
	now      func() time.Time
	logEvery time.Duration
}

// refused records a write refused for want of space and logs when it is due.
func (d *diskFull) refused(log *slog.Logger, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.failed++
	d.total++
	switch {
	case !d.full:
		d.full, d.since, d.lastLog, d.failed = true, now, now, 0
		log.Error("cache writes fail: the disk is full; clients are still served (from the cloud, and offline from what the cache already holds), and caching resumes by itself once there is space",
			slog.Any("err", err))
	case now.Sub(d.lastLog) >= d.logEvery:
		log.Error("cache writes still fail: the disk is still full",
			slog.Duration("for", now.Sub(d.since).Round(time.Second)), slog.Int64("refusedSinceLastLog", d.failed), slog.Any("err", err))
		d.lastLog, d.failed = now, 0
	}
}

// succeeded records a write that committed (a list replaced, watch events applied;
// not a GET whose object was unchanged, which writes nothing and proves nothing); the
// first one after a full disk is logged.
func (d *diskFull) succeeded(log *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.full {
		return
	}
	log.Info("cache writes succeed again: there is space on the disk",
		slog.Duration("after", d.now().Sub(d.since).Round(time.Second)), slog.Int64("refusedWrites", d.total))
	d.full, d.failed, d.total = false, 0, 0
}

// unmarkedViews are list views that should have been marked incomplete (their list
// or watch was not fully cached) but could not be, because the mark is a write too
// and the disk was full. Until the mark is written or a new list replaces the view,
// no watch event is applied to it: applying a later event would move its
// resourceVersion past the events that were lost and make it look current.
type unmarkedViews struct {
	mu sync.Mutex
	m  map[store.ListKey]string // key -> reason
}

// add owes view k an incomplete mark; the first reason owed is kept (the first gap
// is where the view stopped being whole).
func (u *unmarkedViews) add(k store.ListKey, reason string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[store.ListKey]string{}
	}
	if _, ok := u.m[k]; !ok {
		u.m[k] = reason
	}
}

func (u *unmarkedViews) remove(k store.ListKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, k)
}

func (u *unmarkedViews) get(k store.ListKey) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.m[k]
	return r, ok
}

// markPending writes the mark still owed to view k, if any. It returns an error
// when the mark is owed and still cannot be written: the caller must not apply
// events to the view then.
func (m *Manager) markPending(k store.ListKey) error {
	reason, ok := m.unmarked.get(k)
	if !ok {
		return nil
	}
	err := m.st.MarkIncomplete(m.ctx, k, reason)
	if err == nil || errors.Is(err, store.ErrNotSynced) {
		m.unmarked.remove(k)
		return nil
	}
	return err
}
