package multiplexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// maxObjectBytes bounds one object or watch frame read from the cloud.
const maxObjectBytes = 16 << 20

// errRelist: the cloud no longer has the resourceVersion the reflector resumes
// from (410, or an ERROR event in the watch): the state must be listed again.
var errRelist = errors.New("resourceVersion expired in the cloud: relisting")

// reflector keeps one resource's watchCache in step with the cloud: list, then
// watch from the list's resourceVersion, re-watch from the last event after a
// watch ends, relist after a 410. It is the resource's only upstream stream.
type reflector struct {
	m   *Multiplexer
	c   *watchCache
	log *slog.Logger
	p   *persister
}

func (r *reflector) run(ctx context.Context) {
	r.p = newPersister(r.m.opts.Store, r.c, r.log)
	defer r.p.close()
	relist := !r.c.isReady()
	failures := 0
	for ctx.Err() == nil {
		var err error
		if r.c.takeRelist() {
			relist = true
		}
		if relist {
			err = r.list(ctx)
			if err == nil {
				relist = false
			}
		} else {
			err = r.watch(ctx)
			if errors.Is(err, errRelist) {
				r.log.Info("multiplexer: the cloud expired the resourceVersion, relisting")
				relist = true
				err = nil
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 || failures%60 == 0 {
			r.log.Info("multiplexer: upstream list/watch failed; local clients are served the last state meanwhile", slog.Any("err", err), slog.Int("attempt", failures))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.m.opts.RetryInterval):
		}
	}
}

// get sends one GET to the cloud.
func (r *reflector) get(ctx context.Context, q url.Values) (*http.Response, error) {
	b := r.m.opts.Backend()
	if b == nil {
		return nil, errors.New("no healthy cloud apiserver")
	}
	u := *b
	u.Path = r.c.res.path()
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", mediaProtobuf+", "+mediaJSON)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := r.m.opts.Transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode == http.StatusGone {
		resp.Body.Close()
		return nil, errRelist
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", u.Redacted(), resp.Status, body)
	}
	return resp, nil
}

// listSink streams a list's items into the cache file's list writer. When the
// file refuses one (a full disk) the writer is dropped and the rest of the list
// is only read, for its resourceVersion.
type listSink struct {
	w   *store.ListWriter
	err error // why the file does not take the list
	n   int
}

func (s *listSink) Add(it *wire.Item) error {
	s.n++
	if s.w == nil {
		return nil
	}
	if err := s.w.Add(it.Object()); err != nil {
		s.w.Abort()
		s.w, s.err = nil, err
	}
	return nil
}

// storeRetryInterval is how long after a failed write to the cache file (a full
// disk) the reflector lists again to rewrite the whole state.
var storeRetryInterval = newDurationKnob(30 * time.Second)

// list reads the whole resource (one request: pool-scope resources are small and
// a paginated list would need its pages stitched consistently), streams it into
// the cache file's view (never held in memory: store.ListWriter spools it and
// commits it in chunks) and, once it is committed, restarts the window at its
// resourceVersion. The window therefore never starts after the file's state
// because of a list: a list served from the file right after a relist is the
// new list, or the old one at a resourceVersion the old window continued from.
// A list the file cannot take (a full disk) still restarts the window (the
// watches follow the cloud), but lists are not served from the file (it is
// marked incomplete) until a later list is committed.
func (r *reflector) list(ctx context.Context) error {
	resp, err := r.get(ctx, url.Values{"resourceVersion": {""}})
	if errors.Is(err, errRelist) {
		return fmt.Errorf("list %s: 410 Gone", r.c.res.name)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var sink listSink
	sink.w, sink.err = r.m.opts.Store.BeginList(ctx, r.c.key)
	var lm wire.ListMeta
	if isProtobuf(resp.Header.Get("Content-Type")) {
		lm, err = wire.DecodeProtoList(resp.Body, false, maxObjectBytes, &sink)
	} else {
		lm, err = wire.DecodeJSONList(resp.Body, false, maxObjectBytes, &sink)
	}
	if err != nil {
		if sink.w != nil {
			sink.w.Abort()
		}
		return fmt.Errorf("list %s: %w", r.c.res.name, err)
	}
	// Events still queued for the file are older than this list.
	r.p.drop()
	storeErr := sink.err
	if sink.w != nil {
		storeErr = sink.w.Commit(lm.RV)
	}
	if storeErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.p.failed(fmt.Sprintf("the multiplexer's list could not be written: %v", storeErr))
	}
	r.c.replace(lm.RV, storeErr == nil)
	r.c.mu.Lock()
	r.c.lists++
	r.c.mu.Unlock()
	r.log.Debug("multiplexer: listed", slog.Int("objects", sink.n), slog.Uint64("resourceVersion", lm.RV), slog.Bool("stored", storeErr == nil))
	return nil
}

// watch follows the cloud from the state's resourceVersion until the watch ends.
func (r *reflector) watch(ctx context.Context) error {
	rv := r.c.currentRV()
	timeout := 300 + rand.IntN(300) // 5-10 minutes, as client-go's reflector
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.c.watching(cancel)
	defer r.c.watching(nil)
	resp, err := r.get(ctx, url.Values{
		"watch":               {"true"},
		"resourceVersion":     {strconv.FormatUint(rv, 10)},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(timeout)},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var dec wire.EventDecoder
	if isProtobuf(resp.Header.Get("Content-Type")) {
		dec = wire.NewProtoWatchDecoder(resp.Body, false, maxObjectBytes)
	} else {
		dec = wire.NewJSONWatchDecoder(resp.Body, false, maxObjectBytes)
	}
	for {
		var ev wire.Event
		if err := dec.Next(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil // the watch timed out (or the hub stops): watch again
			}
			return fmt.Errorf("watch %s from %d: %w", r.c.res.name, rv, err)
		}
		var typ eventType
		switch ev.Type {
		case "ADDED":
			typ = added
		case "MODIFIED":
			typ = modified
		case "DELETED":
			typ = deleted
		case "BOOKMARK":
			typ = bookmark
		case "ERROR":
			// The apiserver ends a watch with an ERROR event for a resourceVersion
			// it no longer has (410 Expired): the state is listed again.
			return errRelist
		default:
			continue
		}
		if typ == bookmark {
			r.c.apply(bookmark, &object{rv: ev.Item.RV}, nil)
			r.p.event(store.Event{Type: store.Bookmark, Object: store.Object{ResourceVersion: ev.Item.RV}})
			continue
		}
		o := newObject(&ev.Item)
		if kept := r.c.apply(typ, o, r.c.previous(o.namespace, o.name)); kept != nil {
			st := store.Modified
			switch kept.typ {
			case added:
				st = store.Added
			case deleted:
				st = store.Deleted
			}
			r.p.event(store.Event{Type: st, Object: o.storeObject()})
		}
	}
}

func isProtobuf(contentType string) bool {
	return len(contentType) >= len(mediaProtobuf) && contentType[:len(mediaProtobuf)] == mediaProtobuf
}

func (o *object) storeObject() store.Object {
	enc := store.EncodingJSON
	if o.proto {
		enc = store.EncodingProtobuf
	}
	return store.Object{Namespace: o.namespace, Name: o.name, ResourceVersion: o.rv, Encoding: enc, Data: o.data}
}

func (c *watchCache) isReady() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready
}

// viewKey is the cache-file view a resource's state is kept under.
func viewKey(res resource) store.ListKey {
	return store.ListKey{Component: Component, Resource: res.storeResource()}
}

// load makes the state stored by an earlier run the one served, if it is a
// complete list: only its resourceVersion is read (the objects stay in the
// file, and lists and initial events are read from it).
func (m *Multiplexer) load(ctx context.Context, c *watchCache) {
	li, err := m.opts.Store.GetListInfo(ctx, c.key)
	switch {
	case errors.Is(err, store.ErrNotSynced):
		return
	case err != nil:
		m.log.Warn("multiplexer: the stored state cannot be read; waiting for the cloud", slog.String("resource", c.res.name), slog.Any("err", err))
		return
	case !li.Complete:
		m.log.Info("multiplexer: the stored state is incomplete; waiting for the cloud", slog.String("resource", c.res.name), slog.String("reason", li.Reason))
		return
	}
	c.replace(li.ResourceVersion, true)
	m.log.Info("multiplexer: serving the stored state until the cloud answers", slog.String("resource", c.res.name),
		slog.Int("objects", li.Count), slog.Uint64("resourceVersion", li.ResourceVersion))
}

// persister applies a resource's events to the cache file behind the stream, in
// batches (whatever piled up while the previous write was in flight); lists are
// written by the reflector itself (list). Serving never waits for it, but a list
// served from the file waits until the file is not older than the window. A hub
// that stops loses at most the batch in flight and resumes from the stored
// resourceVersion (the events after it come again from the cloud).
//
// A write that fails (a full disk) marks the view incomplete, so it is served
// neither by this run nor after a restart, drops the events (applying later ones
// over the gap would make the view look current) and asks the reflector for a
// relist after storeRetryInterval, which rewrites the whole state.
type persister struct {
	st  *store.Store
	c   *watchCache
	key store.ListKey
	log *slog.Logger

	mu     sync.Mutex
	cond   sync.Cond
	events []store.Event
	broken bool // a write failed: events are dropped until the next list
	closed bool
	done   chan struct{}
}

// maxPendingEvents bounds the events waiting for the cache file; past it (a disk
// far slower than the cloud) the file is rewritten by a relist instead.
const maxPendingEvents = 1 << 14

func newPersister(st *store.Store, c *watchCache, log *slog.Logger) *persister {
	p := &persister{st: st, c: c, key: c.key, log: log, done: make(chan struct{})}
	p.cond.L = &p.mu
	go p.run()
	return p
}

// drop forgets the queued events: a list replaces the state.
func (p *persister) drop() {
	p.mu.Lock()
	p.events, p.broken = nil, false
	p.mu.Unlock()
}

func (p *persister) event(ev store.Event) {
	p.mu.Lock()
	if p.broken {
		p.mu.Unlock()
		return
	}
	if len(p.events) >= maxPendingEvents {
		p.mu.Unlock()
		p.failed("the cache file fell behind the cloud by more than the events the multiplexer queues for it")
		return
	}
	p.events = append(p.events, ev)
	p.cond.Signal()
	p.mu.Unlock()
}

// failed: the view cannot follow the cloud any more; mark it incomplete, stop
// applying events, relist later.
func (p *persister) failed(reason string) {
	p.mu.Lock()
	p.broken, p.events = true, nil
	p.mu.Unlock()
	p.c.storeFailed()
	p.log.Warn("multiplexer: the cache file's copy of the state is behind; lists are not served from it until it is written again", slog.String("reason", reason))
	if err := p.st.MarkIncomplete(context.Background(), p.key, reason); err != nil && !errors.Is(err, store.ErrNotSynced) {
		// A full disk may refuse the mark too: this run serves nothing from the
		// view (storeOK), and a restart resumes from the view's resourceVersion,
		// whose state the failed writes never touched.
		p.log.Debug("multiplexer: cannot mark the view incomplete", slog.Any("err", err))
	}
	time.AfterFunc(storeRetryInterval.get(), p.c.requestRelist)
}

func (p *persister) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Signal()
	p.mu.Unlock()
	<-p.done
}

// testHookPersist, when set (tests only), runs before each batch of events is
// written: a test holds the cache file behind the window with it.
var testHookPersist atomic.Pointer[func()]

func (p *persister) run() {
	defer close(p.done)
	ctx := context.Background()
	for {
		p.mu.Lock()
		for len(p.events) == 0 && !p.closed {
			p.cond.Wait()
		}
		evs, closed := p.events, p.closed
		p.events = nil
		p.mu.Unlock()
		if len(evs) > 0 {
			if h := testHookPersist.Load(); h != nil {
				(*h)()
			}
			err := p.st.ApplyEvents(ctx, p.key, evs)
			var stale *store.StaleEventsError
			if err != nil && !errors.As(err, &stale) {
				p.failed(fmt.Sprintf("the multiplexer's events could not be written: %v", err))
			} else {
				p.c.committed(evs)
			}
		}
		if closed && len(evs) == 0 {
			return
		}
	}
}
