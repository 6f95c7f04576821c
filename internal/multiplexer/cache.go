package multiplexer

import (
	"context"
	"errors"
	"sync"

	"github.com/yurthub/yurthub/internal/store"
)

// DefaultWindowSize is how many recent events a resource keeps for watches that
// resume from a resourceVersion (Options.WindowSize), and DefaultWindowBytes the
// memory they may hold (the objects and their encoded frames, estimated as three
// times the object's size): whichever is reached first drops the oldest event.
// A node's agents resume within seconds of a cut; 2 MiB of EndpointSlice events is
// about a thousand changes, several seconds of heavy churn. (The first measurement
// with only the 4096-event bound held 15 MiB more heap after the bench's churn.)
const (
	DefaultWindowSize  = 4096
	DefaultWindowBytes = 2 << 20
)

// watcherBuffer bounds the events queued for one watcher. A watcher that falls
// this far behind is ended (its client re-watches from its last resourceVersion,
// from the window), so a slow client never holds the others up.
const watcherBuffer = 1024

// eventType is a watch event type as the apiserver writes it.
type eventType string

const (
	added    eventType = "ADDED"
	modified eventType = "MODIFIED"
	deleted  eventType = "DELETED"
	bookmark eventType = "BOOKMARK"
)

// event is one change of the resource, shared by every watcher.
type event struct {
	typ  eventType
	rv   uint64
	obj  *object // the object after the change (for DELETED: its last state, at rv)
	prev *object // the object before it (nil: none; unknownPrev: could not be read): selectors that stop matching become DELETED
	// frames holds the event encoded once per format (JSON, protobuf).
	frames [2]lazyBytes
}

// unknownPrev stands for an object's previous state when it could not be read
// (the cache file failed, or fell too far behind): a selected watcher is then
// told DELETED when the object does not match (an unknown object deleted is a
// no-op for an informer; a missed DELETED would leave it holding the object).
var unknownPrev = &object{}

// frame returns the event as written on a watch stream in format f, encoded once.
func (e *event) frame(f format) ([]byte, error) {
	return e.frames[f].get(func() ([]byte, error) {
		doc, err := e.obj.encoded(f)
		if err != nil {
			return nil, err
		}
		return watchFrame(f, string(e.typ), doc)
	})
}

// pendingObject is the state of one object after events not yet committed to the
// cache file (obj nil: deleted), at resourceVersion rv.
type pendingObject struct {
	obj *object
	rv  uint64
}

// watchCache is the state of one multiplexed resource: the window of recent
// events and the watchers; the objects themselves are in the cache file (the
// view key), not here. It mirrors the apiserver's watchCache+cacher pair: the
// reflector is the only writer of the window; lists and initial events are read
// from the cache file at its resourceVersion, which the window continues from.
type watchCache struct {
	res         resource
	window      int
	windowBytes int
	st          *store.Store
	key         store.ListKey

	mu    sync.RWMutex
	ready bool   // listed (or found in the cache file) at least once
	rv    uint64 // the newest resourceVersion seen (event or bookmark)
	// events is a ring of the most recent events; since is the resourceVersion
	// from which it is complete: every change after since is in it.
	events   []*event
	start, n int
	bytes    int // held by the events in the window (estimated)
	since    uint64
	watchers map[*watcher]struct{}
	lists    int64 // lists from the cloud (metrics)
	// local is set when the offline path changed an object (applyLocal): the
	// state holds bytes the cloud never sent, so the next upstream contact is a
	// relist, not a resumed watch.
	local bool
	// epoch counts the states installed (replace); storeOK says the cache file
	// holds this epoch's state, whole (false once a write failed: lists are not
	// served from it until a list is committed again).
	epoch   uint64
	storeOK bool
	// pending are the objects of events applied here and not yet committed to
	// the cache file: an event's previous state is read here first, then from
	// the file. pendingLost: some were dropped (the file fell too far behind), so
	// the file cannot tell a previous state until the next list.
	pending     map[string]pendingObject
	pendingLost bool
	// stored is closed (and replaced) whenever the cache file's state moved:
	// lists waiting for it to catch up with the window look again.
	stored chan struct{}
	// relist: the reflector must list again (the cache file needs the whole
	// state); cancelWatch ends the reflector's current watch.
	relist      bool
	cancelWatch func()
}

func newWatchCache(res resource, window, windowBytes int, st *store.Store) *watchCache {
	return &watchCache{res: res, window: window, windowBytes: windowBytes, st: st, key: viewKey(res),
		events: make([]*event, window), watchers: map[*watcher]struct{}{}, pending: map[string]pendingObject{}, stored: make(chan struct{})}
}

// eventBytes estimates what an event holds: its object, up to two frames, and
// the previous state.
func eventBytes(ev *event) int {
	n := 3*len(ev.obj.data) + 128
	if ev.prev != nil {
		n += len(ev.prev.data)
	}
	return n
}

func objectKey(namespace, name string) string { return namespace + "/" + name }

// storeKey names one object of the resource's view in the cache file.
func (c *watchCache) storeKey(namespace, name string) store.ObjectKey {
	return store.ObjectKey{Component: c.key.Component, Resource: c.key.Resource, Namespace: namespace, Name: name}
}

// replace installs a new state at rv (a list committed to the cache file, or the
// file's state at start; storeOK false: the list could not be written). Every
// open watch ends: its client re-watches and, from before rv, gets 410 and
// relists (what a client of an apiserver whose watch cache re-initialised sees).
func (c *watchCache) replace(rv uint64, storeOK bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rv, c.since, c.ready = rv, rv, true
	c.epoch++
	c.storeOK = storeOK
	c.pending, c.pendingLost = map[string]pendingObject{}, false
	for i := range c.events {
		c.events[i] = nil
	}
	c.start, c.n, c.bytes = 0, 0, 0
	for w := range c.watchers {
		w.stop()
		delete(c.watchers, w)
	}
	c.notifyLocked()
}

// notifyLocked wakes the lists waiting for the cache file.
func (c *watchCache) notifyLocked() {
	close(c.stored)
	c.stored = make(chan struct{})
}

// previous returns the state of namespace/name before the event the reflector
// is about to apply: the newest uncommitted event's, else the cache file's (nil:
// no such object). Called by the reflector only (the only writer of pending),
// without the lock held across the file read.
func (c *watchCache) previous(namespace, name string) *object {
	k := objectKey(namespace, name)
	c.mu.RLock()
	p, ok := c.pending[k]
	unsure := c.pendingLost || !c.storeOK
	c.mu.RUnlock()
	if ok {
		return p.obj
	}
	if unsure {
		return unknownPrev
	}
	so, err := c.st.PeekObject(context.Background(), c.storeKey(namespace, name))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return unknownPrev
	}
	return objectOf(so) // a copy: PeekObject clones
}

// apply records one event from the cloud and hands it to every watcher; prev is
// the object's previous state (previous). It returns the event as kept (nil
// when it changes nothing: an old resourceVersion).
func (c *watchCache) apply(typ eventType, o, prev *object) *event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if typ == bookmark {
		if o.rv > c.rv {
			c.rv = o.rv
		}
		return nil
	}
	if o.rv <= c.rv && c.ready {
		return nil // already seen (a rewatch from an older point)
	}
	k := objectKey(o.namespace, o.name)
	ev := &event{typ: typ, rv: o.rv, obj: o, prev: prev}
	p := pendingObject{obj: o, rv: o.rv}
	switch typ {
	case added, modified:
		switch ev.prev {
		case nil:
			ev.typ = added
		case unknownPrev:
		default:
			ev.typ = modified
		}
	case deleted:
		p.obj = nil
	}
	if _, ok := c.pending[k]; !ok && len(c.pending) >= maxPendingEvents {
		// The cache file is this far behind only when its writes fail: stop
		// tracking (the previous states are unknown until the next list).
		c.pending, c.pendingLost = map[string]pendingObject{}, true
	}
	c.pending[k] = p
	c.rv = o.rv
	c.push(ev)
	c.sendLocked(ev)
	return ev
}

// sendLocked hands ev to every watcher, forgetting those too far behind.
func (c *watchCache) sendLocked(ev *event) {
	for w := range c.watchers {
		if !w.send(ev) {
			delete(c.watchers, w)
		}
	}
}

// committed: events up to these were written to the cache file (or refused as
// older than it): their objects need not be kept for previous states any more.
func (c *watchCache) committed(evs []store.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		if ev.Type == store.Bookmark {
			continue
		}
		k := objectKey(ev.Object.Namespace, ev.Object.Name)
		if p, ok := c.pending[k]; ok && p.rv == ev.Object.ResourceVersion {
			delete(c.pending, k)
		}
	}
	c.notifyLocked()
}

// storeFailed: a write to the cache file failed; its state is not served until
// a list is committed again.
func (c *watchCache) storeFailed() {
	c.mu.Lock()
	c.storeOK = false
	c.notifyLocked()
	c.mu.Unlock()
}

// requestRelist makes the reflector list again (ending its current watch).
func (c *watchCache) requestRelist() {
	c.mu.Lock()
	c.relist = true
	cancel := c.cancelWatch
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// takeRelist reports whether the state must be listed again: a relist was
// requested (the cache file needs the whole state), or the offline path changed
// objects (the cloud's copies must replace them, and a resumed watch would not
// resend them).
func (c *watchCache) takeRelist() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.relist || c.local
	c.relist, c.local = false, false
	return r
}

// watching records the cancel func of the reflector's current watch (nil: none).
// A relist requested before the watch registered ends it at once.
func (c *watchCache) watching(cancel func()) {
	c.mu.Lock()
	c.cancelWatch = cancel
	relist := c.relist
	c.mu.Unlock()
	if relist && cancel != nil {
		cancel()
	}
}

// applyLocal hands an object the offline path changed in the cache file (the
// EndpointSlice repair, internal/localproxy repair.go, writes it into this
// view) to every watcher as MODIFIED. It keeps the object's resourceVersion
// (only the cloud hands out new ones) and is not put in the window, whose events
// are ordered by resourceVersion: a watch resumed from before now is answered
// 410 instead (since moves up), and its client relists the current state from
// the file, this change included. The state is marked local, so the reflector
// relists when the cloud is back and the cloud's copy replaces this one. It
// returns false when the resource has no such object.
func (c *watchCache) applyLocal(o *object) bool {
	if !c.isReady() {
		return false
	}
	if _, err := c.st.PeekObject(context.Background(), c.storeKey(o.namespace, o.name)); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local = true
	c.since = c.rv
	// The repair changes endpoints, not labels: the object is its own previous
	// state for the selectors.
	c.sendLocked(&event{typ: modified, rv: o.rv, obj: o, prev: o})
	c.notifyLocked()
	return true
}

// push appends ev to the window, dropping the oldest events while it is full by
// count or by bytes (the window then starts at the last dropped event's
// resourceVersion).
func (c *watchCache) push(ev *event) {
	c.bytes += eventBytes(ev)
	for c.n > 0 && (c.n == len(c.events) || c.windowBytes > 0 && c.bytes > c.windowBytes) {
		old := c.events[c.start]
		c.since = old.rv
		c.bytes -= eventBytes(old)
		c.events[c.start] = nil
		c.start = (c.start + 1) % len(c.events)
		c.n--
	}
	c.events[(c.start+c.n)%len(c.events)] = ev
	c.n++
}

// errExpired: the resourceVersion asked for is older than the window.
type errExpired struct{ rv, oldest uint64 }

// watch registers w for the window's events after from, or returns errExpired
// when the window no longer reaches back to from. ok is false when the resource
// has no state yet. (A watch with initial events registers through
// watchFromLocked, once its initial state is read from the cache file.)
func (c *watchCache) watch(w *watcher, from uint64) (backlog []*event, exp *errExpired, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return nil, nil, false
	}
	if from < c.since {
		return nil, &errExpired{rv: from, oldest: c.since}, true
	}
	return c.watchFromLocked(w, from), nil, true
}

// watchFromLocked registers w and returns the window's events after from (which
// the caller checked is not older than since).
func (c *watchCache) watchFromLocked(w *watcher, from uint64) (backlog []*event) {
	for i := 0; i < c.n; i++ {
		ev := c.events[(c.start+i)%len(c.events)]
		if ev.rv > from {
			backlog = append(backlog, ev)
		}
	}
	c.watchers[w] = struct{}{}
	return backlog
}

// forget removes w (its client left).
func (c *watchCache) forget(w *watcher) {
	c.mu.Lock()
	delete(c.watchers, w)
	c.mu.Unlock()
}

// currentRV is the newest resourceVersion seen (for bookmarks).
func (c *watchCache) currentRV() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rv
}

// watcherCount is the number of open local watches of the resource.
func (c *watchCache) watcherCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.watchers)
}

// watcher is one local watch: the events queued for it, and done, closed when
// the cache ends it (a relist, or it fell behind).
type watcher struct {
	ch   chan *event
	done chan struct{}
	once sync.Once
}

func newWatcher() *watcher {
	return &watcher{ch: make(chan *event, watcherBuffer), done: make(chan struct{})}
}

// send queues ev without blocking; false (and the watch ended) when the watcher
// is watcherBuffer events behind.
func (w *watcher) send(ev *event) bool {
	select {
	case w.ch <- ev:
		return true
	default:
		w.stop()
		return false
	}
}

func (w *watcher) stop() { w.once.Do(func() { close(w.done) }) }

// lazyBytes is a value computed once, on first use, by whichever goroutine needs
// it first.
type lazyBytes struct {
	once sync.Once
	b    []byte
	err  error
}

func (l *lazyBytes) get(fn func() ([]byte, error)) ([]byte, error) {
	l.once.Do(func() { l.b, l.err = fn() })
	return l.b, l.err
}
