package multiplexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/metrics"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Component is the cache-file component the multiplexer's views are kept under
// (hubctl inspect shows it beside the clients').
const Component = "yurthub-multiplexer"

// UserAgent is what the multiplexer's own requests to the cloud say.
const UserAgent = "yurthub-multiplexer"

// Options configure a Multiplexer.
type Options struct {
	// Resources are --pool-scope-resources: "group/version/resource", the core
	// group written "/v1/services" (OpenYurt's format).
	Resources []string
	// Store holds each resource's objects (required): the view
	// {Component, Resource} is the state lists are read from, and it survives
	// restarts.
	Store *store.Store
	// Backend returns the cloud apiserver to ask now, nil when none is healthy.
	Backend func() *url.URL
	// Transport carries the multiplexer's requests with the hub's own credentials.
	Transport http.RoundTripper
	// Filters, when set, gives each client's response filters (see Filters).
	Filters Filters
	// WindowSize and WindowBytes bound the recent events kept per resource for
	// watches that resume (defaults DefaultWindowSize, DefaultWindowBytes).
	WindowSize  int
	WindowBytes int
	// BookmarkInterval is how often a watch that allows bookmarks gets one
	// (default 1m, as the apiserver).
	BookmarkInterval time.Duration
	// MinRequestTimeout is --min-request-timeout (default 30m): a watch without
	// timeoutSeconds lasts a random time in [it, 2*it), as the apiserver's
	// (requestinfo.WatchTimeout).
	MinRequestTimeout time.Duration
	// CloudHealthy reports whether a cloud apiserver is reachable (nil: always).
	// Offline, a request for a transformed form (as=Table) that also accepts the
	// plain form is answered with the plain form instead of being declined.
	CloudHealthy func() bool
	// RetryInterval is the wait between two failed upstream attempts (default 1s).
	RetryInterval time.Duration
	Log           *slog.Logger
}

// resource is one multiplexed resource.
type resource struct {
	name string // as configured: "/v1/services"
	gvr  schema.GroupVersionResource
	kind string // the object kind (its list kind is kind+"List")
}

func (r resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }

// path is the resource's collection URL path (all namespaces).
func (r resource) path() string {
	if r.gvr.Group == "" {
		return "/api/" + r.gvr.Version + "/" + r.gvr.Resource
	}
	return "/apis/" + r.gvr.Group + "/" + r.gvr.Version + "/" + r.gvr.Resource
}

func (r resource) storeResource() store.Resource {
	return store.Resource{Group: r.gvr.Group, Version: r.gvr.Version, Resource: r.gvr.Resource}
}

// ParseResource reads one --pool-scope-resources entry ("/v1/services",
// "discovery.k8s.io/v1/endpointslices"). Only built-in resources can be
// multiplexed: the kind and protobuf form must be known.
func ParseResource(s string) (schema.GroupVersionResource, string, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return schema.GroupVersionResource{}, "", fmt.Errorf("pool-scope resource %q: want group/version/resource (the core group empty: /v1/services)", s)
	}
	gvr := schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}
	kind, ok := builtinKind(gvr)
	if !ok {
		return gvr, "", fmt.Errorf("pool-scope resource %q: not a built-in resource of this hub's scheme, so it cannot be multiplexed", s)
	}
	return gvr, kind, nil
}

var (
	kindsOnce sync.Once
	kinds     map[schema.GroupVersionResource]string
)

func builtinKind(gvr schema.GroupVersionResource) (string, bool) {
	kindsOnce.Do(func() {
		kinds = map[schema.GroupVersionResource]string{}
		for gvk := range kubescheme.Scheme.AllKnownTypes() {
			if strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") {
				continue
			}
			plural, _ := meta.UnsafeGuessKindToResource(gvk)
			if _, dup := kinds[plural]; !dup {
				kinds[plural] = gvk.Kind
			}
		}
	})
	k, ok := kinds[gvr]
	return k, ok
}

// Multiplexer serves the local lists and watches of the pool-scope resources from
// one upstream list/watch per resource.
type Multiplexer struct {
	opts   Options
	log    *slog.Logger
	caches map[schema.GroupVersionResource]*watchCache

	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  stats
}

// New checks the resources and returns a multiplexer; Start runs it.
func New(opts Options) (*Multiplexer, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.WindowSize <= 0 {
		opts.WindowSize = DefaultWindowSize
	}
	if opts.WindowBytes <= 0 {
		opts.WindowBytes = DefaultWindowBytes
	}
	if opts.BookmarkInterval <= 0 {
		opts.BookmarkInterval = time.Minute
	}
	if opts.MinRequestTimeout <= 0 {
		opts.MinRequestTimeout = 30 * time.Minute
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Backend == nil || opts.Transport == nil {
		return nil, errors.New("multiplexer: no upstream (Backend and Transport are required)")
	}
	if opts.Store == nil {
		return nil, errors.New("multiplexer: no cache file (Store is required: the objects are kept there)")
	}
	m := &Multiplexer{opts: opts, log: opts.Log, caches: map[schema.GroupVersionResource]*watchCache{}}
	for _, s := range opts.Resources {
		gvr, kind, err := ParseResource(s)
		if err != nil {
			return nil, err
		}
		m.caches[gvr] = newWatchCache(resource{name: s, gvr: gvr, kind: kind}, opts.WindowSize, opts.WindowBytes, opts.Store)
	}
	return m, nil
}

// Start loads each resource's stored state (so the hub serves it from its first
// request, offline too) and starts its reflector. It returns at once.
func (m *Multiplexer) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	for _, c := range m.caches {
		m.load(ctx, c)
		r := &reflector{m: m, c: c, log: m.log.With(slog.String("resource", c.res.name))}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.run(ctx)
		}()
	}
}

// Stop ends the reflectors and every local watch, and waits for the reflectors
// and their pending cache writes.
func (m *Multiplexer) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	for _, c := range m.caches {
		c.mu.Lock()
		for w := range c.watchers {
			w.stop()
			delete(c.watchers, w)
		}
		c.mu.Unlock()
	}
	m.wg.Wait()
}

// Handles reports whether the request is a list or watch of a multiplexed
// resource (a GET of one object is not).
func (m *Multiplexer) Handles(info *requestinfo.Info) bool {
	if m == nil || info == nil || !info.IsResourceRequest || info.Subresource != "" {
		return false
	}
	if info.Verb != "list" && info.Verb != "watch" {
		return false
	}
	_, ok := m.caches[schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}]
	return ok
}

// WaitReady waits until every resource has a state to serve (listed, or loaded
// from the cache file), at most timeout; it reports whether they all have. The
// hub's own informers of multiplexed resources (the filters' Services) start
// after it, so that their watches are served here instead of becoming upstream
// watches of their own.
func (m *Multiplexer) WaitReady(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ready := true
		for _, c := range m.caches {
			ready = ready && c.isReady()
		}
		if ready {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Resources are the multiplexed resources as configured ("/v1/services").
func (m *Multiplexer) Resources() []string { return append([]string(nil), m.opts.Resources...) }

// State reports one resource (as configured: "/v1/services") for metrics and tests.
func (m *Multiplexer) State(res string) metrics.MultiplexerState {
	gvr, _, err := ParseResource(res)
	c := m.caches[gvr]
	if err != nil || c == nil {
		return metrics.MultiplexerState{}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return metrics.MultiplexerState{Ready: c.ready, Watchers: len(c.watchers), Lists: c.lists}
}

// stats are the multiplexer's counters.
type stats struct {
	lists, watches, events atomic.Int64
}

// LocalChange tells the multiplexed state an object the offline path changed in
// its view of the cache file (key.Component is Component): its watchers get it
// as MODIFIED, new lists and watches read it from the file, and the resource is
// relisted from the cloud at the next contact so the cloud's copy wins (see
// watchCache.applyLocal). Other keys are ignored.
func (m *Multiplexer) LocalChange(key store.ObjectKey, o store.Object) {
	if key.Component != Component {
		return
	}
	c := m.caches[schema.GroupVersionResource{Group: key.Resource.Group, Version: key.Resource.Version, Resource: key.Resource.Resource}]
	if c == nil {
		return
	}
	obj := &object{namespace: o.Namespace, name: o.Name, rv: o.ResourceVersion, proto: o.Encoding == store.EncodingProtobuf,
		data: append([]byte(nil), o.Data...)}
	if c.applyLocal(obj) {
		m.log.Info("multiplexer: a local change served to its watchers; the resource is relisted when the cloud is back",
			slog.String("resource", c.res.name), slog.String("object", o.Namespace+"/"+o.Name))
	}
}
