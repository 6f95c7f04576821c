package localproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/apistatus"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Options configure a Handler.
type Options struct {
	// Store is the cache (required).
	Store *store.Store
	// Log receives one line per refused write and per watch ended (default: discard).
	Log *slog.Logger
	// CloudHealthy reports whether some cloud apiserver is healthy again (the load
	// balancer's AnyHealthy). Local watches end when it turns true, so clients relist
	// against the cloud. nil: the cloud is taken as unreachable (watches end only
	// on timeout, client close or Close). SetCloudHealthy sets it later.
	CloudHealthy func() bool
	// HealthPollInterval is how often a local watch asks CloudHealthy (default 200ms).
	HealthPollInterval time.Duration
	// BookmarkInterval is how often a local watch that allows bookmarks gets one
	// (default 30s; the apiserver sends them about every minute).
	BookmarkInterval time.Duration
	// MinRequestTimeout (--min-request-timeout; default 30m) sets how long a local
	// watch without timeoutSeconds lasts: a random duration in [MinRequestTimeout,
	// 2*MinRequestTimeout), as the apiserver does, so the node's watches do not all
	// expire, and relist, at once. A watch's own timeoutSeconds is kept as given (the
	// apiserver does not cap it either); see watchTimeout.
	MinRequestTimeout time.Duration
	// TokenMinValidity: a cached service-account token is handed out offline only
	// while it stays valid at least this long (default 1m).
	TokenMinValidity time.Duration
	// DiscoveryComponents are asked, after the requesting component, for a cached
	// discovery response (discovery documents are the same for every client).
	// Default: kubelet, kube-proxy, coredns, kubectl, flanneld, yurthub.
	DiscoveryComponents []string
	// Now is the clock (tests).
	Now func() time.Time
	// GCCount counts objects the offline path drops (events beyond the offline
	// cap: kind, "event_cap", n); nil counts nothing.
	GCCount func(kind, reason string, n int)
}

// Handler serves Kubernetes API requests from the cache while the cloud is
// unreachable. See the package documentation for what each verb gets.
type Handler struct {
	st      *store.Store
	log     *slog.Logger
	opts    Options
	parser  *requestinfo.Parser
	healthy atomic.Pointer[func() bool]

	closeOnce sync.Once
	closing   chan struct{}
	watches   sync.WaitGroup
	active    atomic.Int64
	// notify carries objects the offline path changed (endpoint repair) to the
	// local watches.
	notify notifier
	// onLocal is SetOnLocalChange's function.
	onLocal atomic.Pointer[func(store.ObjectKey, store.Object)]
}

// New returns the local handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("localproxy: no cache store")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HealthPollInterval <= 0 {
		opts.HealthPollInterval = 200 * time.Millisecond
	}
	if opts.BookmarkInterval <= 0 {
		opts.BookmarkInterval = 30 * time.Second
	}
	if opts.MinRequestTimeout <= 0 {
		opts.MinRequestTimeout = 30 * time.Minute
	}
	if opts.TokenMinValidity <= 0 {
		opts.TokenMinValidity = time.Minute
	}
	if len(opts.DiscoveryComponents) == 0 {
		opts.DiscoveryComponents = []string{"kubelet", "kube-proxy", "coredns", "kubectl", "flanneld", "yurthub"}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{st: opts.Store, log: opts.Log, opts: opts, parser: requestinfo.New(), closing: make(chan struct{})}
	if opts.CloudHealthy != nil {
		h.SetCloudHealthy(opts.CloudHealthy)
	}
	return h, nil
}

// SetOnLocalChange sets a function told of every object the offline path
// changes in the cache on its own (the EndpointSlice repair): the daemon passes
// the multiplexer's LocalChange, whose state the local watches here do not serve.
func (h *Handler) SetOnLocalChange(f func(key store.ObjectKey, o store.Object)) {
	if f == nil {
		h.onLocal.Store(nil)
		return
	}
	h.onLocal.Store(&f)
}

// SetCloudHealthy sets the function local watches poll to learn that the cloud is
// back (the daemon passes the load balancer's AnyHealthy once it exists).
func (h *Handler) SetCloudHealthy(f func() bool) {
	if f == nil {
		h.healthy.Store(nil)
		return
	}
	h.healthy.Store(&f)
}

func (h *Handler) cloudHealthy() bool {
	if f := h.healthy.Load(); f != nil {
		return (*f)()
	}
	return false
}

// ActiveWatches is the number of local watches open now (metrics, tests).
func (h *Handler) ActiveWatches() int { return int(h.active.Load()) }

// Close ends every local watch now (shutdown) and waits for them.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closing) })
	h.watches.Wait()
}

// ServeHTTP answers one request from the cache. The request's requestinfo.Info is
// taken from its context (the proxy puts it there) or parsed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := requestinfo.From(r.Context())
	if info == nil {
		info, _ = h.parser.Parse(r)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("local proxy: panic serving a request", slog.String("request", info.String()), slog.Any("panic", p))
			writeStatus(w, r, internalError(fmt.Sprintf("yurthub: internal error serving %s from the cache: %v", info, p)))
		}
	}()
	if info.Component == "" {
		writeStatus(w, r, unavailable(info, "the request has no User-Agent; the hub keeps its cache per client (User-Agent), so it cannot tell which cached view to serve"))
		return
	}
	if !info.IsResourceRequest {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isDiscoveryPath(info.Path) {
			h.serveDiscovery(w, r, info)
			return
		}
		writeStatus(w, r, unavailable(info, "only discovery (/version, /api, /apis, /apis/<group>/<version>) is served from the cache"))
		return
	}
	switch info.Verb {
	case "get":
		if info.Subresource != "" && info.Subresource != "status" {
			writeStatus(w, r, unavailable(info, "subresource "+info.Subresource+" is not cached"))
			return
		}
		h.serveGet(w, r, info)
	case "list":
		h.serveList(w, r, info)
	case "watch":
		h.serveWatch(w, r, info)
	case "create":
		h.serveCreate(w, r, info)
	case "update", "patch":
		h.serveWrite(w, r, info)
	case "delete", "deletecollection":
		writeStatus(w, r, unavailable(info, "deletes are not applied offline: the cloud decides what is deleted; retry when it is reachable"))
	default:
		writeStatus(w, r, unavailable(info, "verb "+info.Verb+" is not served from the cache"))
	}
}

// gvrOf is the request's group/version/resource.
func gvrOf(info *requestinfo.Info) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
}

// kindOf resolves the kind of the request's resource: kubescheme.Scheme for
// built-in types, else the component's cached discovery of the group version
// (CRDs), else "" (then the first cached item's kind is used where there is one).
func (h *Handler) kindOf(ctx context.Context, info *requestinfo.Info) (gvk schema.GroupVersionKind, builtin bool) {
	gvr := gvrOf(info)
	gv := gvr.GroupVersion()
	if k, ok := builtinKind(gvr); ok {
		return gv.WithKind(k), true
	}
	path := "/apis/" + gv.String()
	if gv.Group == "" {
		path = "/api/" + gv.Version
	}
	for _, c := range h.discoveryComponents(info.Component) {
		_, body, err := h.st.GetRaw(ctx, c, path)
		if err != nil {
			continue
		}
		var rl metav1.APIResourceList
		if json.Unmarshal(body, &rl) != nil {
			continue
		}
		for _, res := range rl.APIResources {
			if res.Name == gvr.Resource {
				return gv.WithKind(res.Kind), false
			}
		}
	}
	return gv.WithKind(""), false
}

func (h *Handler) discoveryComponents(first string) []string {
	out := []string{first}
	for _, c := range h.opts.DiscoveryComponents {
		if c != first {
			out = append(out, c)
		}
	}
	return out
}

// describe names what a request reads, for error messages. Every part that comes
// from the request is shortened (echo): an error must not repeat unbounded input.
func describe(info *requestinfo.Info) string {
	var b strings.Builder
	b.WriteString(echo(info.Component))
	b.WriteString("'s ")
	b.WriteString(echo(info.Resource))
	if info.APIGroup != "" {
		b.WriteString("." + echo(info.APIGroup))
	}
	if info.Name != "" && info.Verb != "list" && info.Verb != "watch" {
		b.WriteString(" " + echo(info.Name))
	}
	if info.Namespace != "" {
		b.WriteString(" in namespace " + echo(info.Namespace))
	}
	if info.LabelSelector != "" {
		b.WriteString(" labelSelector=" + echo(info.LabelSelector))
	}
	if info.FieldSelector != "" {
		b.WriteString(" fieldSelector=" + echo(info.FieldSelector))
	}
	return b.String()
}

// The bounds on what an error repeats (internal/apistatus).
const (
	maxEcho    = apistatus.MaxEcho
	maxMessage = apistatus.MaxMessage
)

// echo shortens s to at most maxEcho bytes (on a rune boundary), saying how much
// was left out.
func echo(s string) string { return apistatus.Shorten(s, maxEcho) }

func shorten(s string, n int) string { return apistatus.Shorten(s, n) }

// unavailable is the 503 every request gets that the node cannot answer truthfully
// while the cloud is unreachable.
func unavailable(info *requestinfo.Info, why string) *metav1.Status {
	st := apierrors.NewServiceUnavailable(fmt.Sprintf(
		"yurthub: the cloud kube-apiserver is unreachable, so %s %s cannot be served from this node: %s", info.Verb, describeTarget(info), why)).ErrStatus
	return &st
}

func describeTarget(info *requestinfo.Info) string {
	if !info.IsResourceRequest {
		return echo(info.Path)
	}
	s := echo(info.Resource)
	if info.APIGroup != "" {
		s += "." + echo(info.APIGroup)
	}
	if info.Subresource != "" {
		s += "/" + echo(info.Subresource)
	}
	if info.Name != "" {
		s += " " + echo(info.Name)
	}
	if info.Namespace != "" {
		s += " (namespace " + echo(info.Namespace) + ")"
	}
	return s
}

func internalError(msg string) *metav1.Status {
	st := apierrors.NewInternalError(errors.New(msg)).ErrStatus
	st.Message = msg
	return &st
}

// writeStatus answers with a metav1.Status (apistatus.Write), never with
// Retry-After: offline, the answer will not change in seconds.
func writeStatus(w http.ResponseWriter, r *http.Request, st *metav1.Status) {
	apistatus.Write(w, r, st, 0)
}

// storeError maps a store error to a Status.
func storeError(info *requestinfo.Info, err error) *metav1.Status {
	switch {
	case errors.Is(err, store.ErrDamaged):
		// A value failed its integrity check: it is left out, never served, and the
		// answer says what is missing (503: the cloud's next answer repairs it).
		st := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusServiceUnavailable, Reason: metav1.StatusReasonServiceUnavailable,
			Message: fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and the cached copy of %s is incomplete: %v", describe(info), err)}
		return &st
	case errors.Is(err, store.ErrCorrupt):
		return internalError(fmt.Sprintf("yurthub: the cache entry for %s is damaged (%v); it is rebuilt from the cloud when it is reachable", describe(info), err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		st := apierrors.NewTimeoutError("request ended while reading the cache", 1).ErrStatus
		return &st
	case errors.Is(err, store.ErrNoSpace):
		st := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusServiceUnavailable, Reason: metav1.StatusReasonServiceUnavailable,
			Message: fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and this node's disk is full, so %s cannot be kept in the cache: %v", describe(info), err)}
		return &st
	}
	return internalError(fmt.Sprintf("yurthub: reading the cache for %s failed: %v", describe(info), err))
}

func notAcceptable(info *requestinfo.Info, accept string) *metav1.Status {
	st := metav1.Status{Code: http.StatusNotAcceptable, Reason: metav1.StatusReasonNotAcceptable,
		Message: fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and the cache can answer %s only as %s or %s (plain objects, no Table or metadata-only forms), not %q; add application/json to Accept",
			describeTarget(info), mediaJSON, mediaProtobuf, accept)}
	return &st
}
