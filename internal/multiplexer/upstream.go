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
	if r.m.opts.Store != nil {
		r.p = newPersister(r.m.opts.Store, r.c, r.log)
		defer r.p.close()
	}
	relist := !r.c.isReady()
	failures := 0
	for ctx.Err() == nil {
		var err error
		if r.c.takeLocal() {
			// The offline path changed objects of this state: the cloud's copies
			// must replace them, and a resumed watch would not resend them.
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

// objectSink collects a list's items.
type objectSink struct{ objs []*object }

func (s *objectSink) Add(it *wire.Item) error {
	s.objs = append(s.objs, newObject(it))
	return nil
}

// list reads the whole resource (one request: pool-scope resources are small and
// a paginated list would need its pages stitched consistently) and replaces the
// state.
func (r *reflector) list(ctx context.Context) error {
	resp, err := r.get(ctx, url.Values{"resourceVersion": {""}})
	if errors.Is(err, errRelist) {
		return fmt.Errorf("list %s: 410 Gone", r.c.res.name)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var sink objectSink
	var lm wire.ListMeta
	if isProtobuf(resp.Header.Get("Content-Type")) {
		lm, err = wire.DecodeProtoList(resp.Body, false, maxObjectBytes, &sink)
	} else {
		lm, err = wire.DecodeJSONList(resp.Body, false, maxObjectBytes, &sink)
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", r.c.res.name, err)
	}
	r.c.replace(sink.objs, lm.RV)
	r.c.mu.Lock()
	r.c.lists++
	r.c.mu.Unlock()
	r.log.Debug("multiplexer: listed", slog.Int("objects", len(sink.objs)), slog.Uint64("resourceVersion", lm.RV))
	if r.p != nil {
		r.p.replaced()
	}
	return nil
}

// watch follows the cloud from the state's resourceVersion until the watch ends.
func (r *reflector) watch(ctx context.Context) error {
	rv := r.c.currentRV()
	timeout := 300 + rand.IntN(300) // 5-10 minutes, as client-go's reflector
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
			r.c.apply(bookmark, &object{rv: ev.Item.RV})
			if r.p != nil {
				r.p.event(store.Event{Type: store.Bookmark, Object: store.Object{ResourceVersion: ev.Item.RV}})
			}
			continue
		}
		o := newObject(&ev.Item)
		if kept := r.c.apply(typ, o); kept != nil && r.p != nil {
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

// load installs the state stored by an earlier run, if it is a complete list.
func (m *Multiplexer) load(ctx context.Context, c *watchCache) {
	if m.opts.Store == nil {
		return
	}
	var objs []*object
	li, err := m.opts.Store.List(ctx, viewKey(c.res), func(o store.Object) error {
		objs = append(objs, &object{namespace: o.Namespace, name: o.Name, rv: o.ResourceVersion,
			proto: o.Encoding == store.EncodingProtobuf, data: append([]byte(nil), o.Data...)})
		return nil
	})
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
	c.replace(objs, li.ResourceVersion)
	m.log.Info("multiplexer: serving the stored state until the cloud answers", slog.String("resource", c.res.name),
		slog.Int("objects", len(objs)), slog.Uint64("resourceVersion", li.ResourceVersion))
}

// persister writes a resource's state to the cache file behind the stream: after
// a list (or when the file fell behind) the whole state, taken from memory,
// replaces the view; events are applied in batches (whatever piled up while the
// previous write was in flight). Serving never waits for it; a hub that stops
// loses at most the batch in flight and resumes from the stored resourceVersion
// (the events after it come again from the cloud).
type persister struct {
	st  *store.Store
	c   *watchCache
	key store.ListKey
	log *slog.Logger

	mu     sync.Mutex
	cond   sync.Cond
	full   bool // write the whole state (a list, or events dropped)
	events []store.Event
	closed bool
	done   chan struct{}
}

// maxPendingEvents bounds the events waiting for the cache file; past it (a disk
// far slower than the cloud) they are dropped and the whole state is written
// instead.
const maxPendingEvents = 1 << 14

func newPersister(st *store.Store, c *watchCache, log *slog.Logger) *persister {
	p := &persister{st: st, c: c, key: viewKey(c.res), log: log, done: make(chan struct{})}
	p.cond.L = &p.mu
	go p.run()
	return p
}

// replaced: the state was listed again; write it whole.
func (p *persister) replaced() {
	p.mu.Lock()
	p.full, p.events = true, nil
	p.cond.Signal()
	p.mu.Unlock()
}

func (p *persister) event(ev store.Event) {
	p.mu.Lock()
	if p.full {
		p.mu.Unlock()
		return // the coming full write includes it
	}
	if len(p.events) >= maxPendingEvents {
		p.full, p.events = true, nil
		p.log.Warn("multiplexer: the cache file fell behind the cloud; writing the whole state instead of the events")
	} else {
		p.events = append(p.events, ev)
	}
	p.cond.Signal()
	p.mu.Unlock()
}

func (p *persister) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Signal()
	p.mu.Unlock()
	<-p.done
}

func (p *persister) run() {
	defer close(p.done)
	ctx := context.Background()
	for {
		p.mu.Lock()
		for !p.full && len(p.events) == 0 && !p.closed {
			p.cond.Wait()
		}
		full, evs, closed := p.full, p.events, p.closed
		p.full, p.events = false, nil
		var snap snapshot
		if full {
			// Taken under p.mu: an event applied after this snapshot is queued
			// after it (the reflector applies to the cache before queueing).
			snap, _ = p.c.list()
		}
		p.mu.Unlock()
		if full {
			objs := make([]store.Object, len(snap.objects))
			for i, o := range snap.objects {
				objs[i] = o.storeObject()
			}
			if err := p.st.ReplaceList(ctx, p.key, snap.rv, objs); err != nil {
				p.log.Warn("multiplexer: storing the state failed", slog.Any("err", err))
			}
		}
		if len(evs) > 0 {
			err := p.st.ApplyEvents(ctx, p.key, evs)
			var stale *store.StaleEventsError
			if err != nil && !errors.As(err, &stale) {
				p.log.Warn("multiplexer: storing events failed; writing the whole state next", slog.Any("err", err))
				p.mu.Lock()
				p.full, p.events = true, nil
				p.mu.Unlock()
				time.Sleep(time.Second) // a full disk: do not spin
			}
		}
		if closed && !full && len(evs) == 0 {
			return
		}
	}
}
