package multiplexer

import (
	"sort"
	"sync"
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
	prev *object // the object before it (nil for ADDED): selectors that stop matching become DELETED
	// frames holds the event encoded once per format (JSON, protobuf).
	frames [2]lazyBytes
}

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

// watchCache is the state of one multiplexed resource: the objects, the window of
// recent events and the watchers. It mirrors the apiserver's watchCache+cacher
// pair: the reflector is the only writer; readers take a consistent snapshot
// under the read lock.
type watchCache struct {
	res         resource
	window      int
	windowBytes int

	mu      sync.RWMutex
	ready   bool               // listed (or loaded from the cache file) at least once
	objects map[string]*object // "namespace/name" => current state
	rv      uint64             // the newest resourceVersion seen (event or bookmark)
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
}

func newWatchCache(res resource, window, windowBytes int) *watchCache {
	return &watchCache{res: res, window: window, windowBytes: windowBytes, objects: map[string]*object{}, events: make([]*event, window), watchers: map[*watcher]struct{}{}}
}

// eventBytes estimates what an event holds: its object and up to two frames.
func eventBytes(ev *event) int { return 3*len(ev.obj.data) + 128 }

func objectKey(namespace, name string) string { return namespace + "/" + name }

// replace installs a complete state at rv (a list, or the cache file at start).
// Every open watch ends: its client re-watches and, from before rv, gets 410 and
// relists (what a client of an apiserver whose watch cache re-initialised sees).
func (c *watchCache) replace(objs []*object, rv uint64) {
	m := make(map[string]*object, len(objs))
	for _, o := range objs {
		m[objectKey(o.namespace, o.name)] = o
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects, c.rv, c.since, c.ready = m, rv, rv, true
	for i := range c.events {
		c.events[i] = nil
	}
	c.start, c.n, c.bytes = 0, 0, 0
	for w := range c.watchers {
		w.stop()
		delete(c.watchers, w)
	}
}

// apply records one event from the cloud and hands it to every watcher. It
// returns the event as kept (nil when it changes nothing: an old resourceVersion).
func (c *watchCache) apply(typ eventType, o *object) *event {
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
	ev := &event{typ: typ, rv: o.rv, obj: o, prev: c.objects[k]}
	switch typ {
	case added, modified:
		if ev.prev == nil {
			ev.typ = added
		} else {
			ev.typ = modified
		}
		c.objects[k] = o
	case deleted:
		delete(c.objects, k)
	}
	c.rv = o.rv
	c.push(ev)
	for w := range c.watchers {
		if !w.send(ev) {
			delete(c.watchers, w)
		}
	}
	return ev
}

// applyLocal installs an object the offline path changed in the cache (the
// EndpointSlice repair, internal/localproxy repair.go) and hands it to every
// watcher as MODIFIED. It keeps the object's resourceVersion (only the cloud hands
// out new ones) and is not put in the window, whose events are ordered by
// resourceVersion: a watch resumed from before now is answered 410 instead (since
// moves up), and its client relists the current state, this change included. The
// state is marked local, so the reflector relists when the cloud is back and the
// cloud's copy replaces this one. It returns false when the resource has no such
// object.
func (c *watchCache) applyLocal(o *object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := objectKey(o.namespace, o.name)
	prev := c.objects[k]
	if prev == nil || !c.ready {
		return false
	}
	c.objects[k] = o
	c.local = true
	c.since = c.rv
	ev := &event{typ: modified, rv: o.rv, obj: o, prev: prev}
	for w := range c.watchers {
		if !w.send(ev) {
			delete(c.watchers, w)
		}
	}
	return true
}

// takeLocal reports whether the state was changed locally since the last call.
func (c *watchCache) takeLocal() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.local
	c.local = false
	return l
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

// snapshot is what a new list or watch starts from.
type snapshot struct {
	rv      uint64
	objects []*object // sorted by namespace/name, as the apiserver lists
}

// errExpired: the resourceVersion asked for is older than the window.
type errExpired struct{ rv, oldest uint64 }

// list returns the current objects (sorted) and resourceVersion.
func (c *watchCache) list() (snapshot, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return snapshot{}, false
	}
	return c.snapshotLocked(), true
}

func (c *watchCache) snapshotLocked() snapshot {
	s := snapshot{rv: c.rv, objects: make([]*object, 0, len(c.objects))}
	for _, o := range c.objects {
		s.objects = append(s.objects, o)
	}
	sort.Slice(s.objects, func(i, j int) bool {
		a, b := s.objects[i], s.objects[j]
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.name < b.name
	})
	return s
}

// watch registers w. With initial, w starts with the current objects (returned)
// and then every later event; else with the window's events after from, or
// errExpired when the window no longer reaches back to from. ok is false when the
// resource has no state yet.
func (c *watchCache) watch(w *watcher, initial bool, from uint64) (snap snapshot, backlog []*event, exp *errExpired, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return snapshot{}, nil, nil, false
	}
	if initial {
		snap = c.snapshotLocked()
	} else {
		if from < c.since {
			return snapshot{}, nil, &errExpired{rv: from, oldest: c.since}, true
		}
		for i := 0; i < c.n; i++ {
			ev := c.events[(c.start+i)%len(c.events)]
			if ev.rv > from {
				backlog = append(backlog, ev)
			}
		}
		snap.rv = max(from, c.rv)
	}
	c.watchers[w] = struct{}{}
	return snap, backlog, nil, true
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
