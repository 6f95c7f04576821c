package cachemgr

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// Options tune a Manager. The zero value is usable.
type Options struct {
	// QueueBytes bounds the bytes queued between one response's tee and its cache
	// decoder (default 32 MiB). Past it the response keeps streaming to the client
	// and its cache copy is abandoned (list marked incomplete).
	QueueBytes int
	// MaxObjectBytes bounds one object, one GET or discovery body (default 16 MiB).
	MaxObjectBytes int
	// MaxPendingEvents bounds decoded watch events waiting for the store (default 65536).
	MaxPendingEvents int
	// TeedBytes bounds the bytes held for all streams together: tee queues and
	// decoded watch events waiting for the store (default 64 MiB). A stream that
	// would pass it is abandoned like one past QueueBytes (its client is unaffected).
	TeedBytes int
	// PageTimeout is how long a paginated list waits for its next page (default 2m).
	PageTimeout time.Duration
	// ConfigNamespace is where WatchConfig reads the yurt-hub-cfg ConfigMap
	// (--namespace; default ConfigMapNamespace, kube-system).
	ConfigNamespace string
	// OnConfig, when set, also receives the whole data of yurt-hub-cfg on every
	// change (nil when it is deleted): the response filters read their keys from
	// the same watch.
	OnConfig func(data map[string]string)
}

func (o *Options) defaults() {
	if o.ConfigNamespace == "" {
		o.ConfigNamespace = ConfigMapNamespace
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 32 << 20
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 16 << 20
	}
	if o.MaxPendingEvents <= 0 {
		o.MaxPendingEvents = 65536
	}
	if o.TeedBytes <= 0 {
		o.TeedBytes = 64 << 20
	}
	if o.PageTimeout <= 0 {
		o.PageTimeout = 2 * time.Minute
	}
}

// Stats are the manager's counters (exported as metrics by the caller).
type Stats struct {
	Responses     int64 // responses teed into the cache
	Objects       int64 // objects written by GET and list items
	Events        int64 // watch events applied
	StaleEvents   int64 // watch events refused as older than the cache
	Overflows     int64 // streams abandoned because the cache fell behind
	Failures      int64 // streams abandoned on a decode or store error
	WriteSeconds  float64
	Writes        int64 // store write calls (for the mean latency)
	QueueHighMark int64 // largest tee queue seen, bytes
	ActiveStreams int64
	// OpaqueRVResources are the resources no longer cached because their server
	// hands out resourceVersions that are not numbers (noteOpaqueRV).
	OpaqueRVResources int64
	TeedBytes         int64 // bytes held now for all streams (Options.TeedBytes bounds it)
	TeedBytesHigh     int64 // the most held at once
	// SharedEvents are watch events not decoded or not written because an
	// identical watch of the same view had claimed them (onewriter.go).
	SharedEvents int64
}

// Manager decides what is cached and tees responses into the store.
type Manager struct {
	st   *store.Store
	log  *slog.Logger
	opts Options

	agents atomic.Pointer[agentSet]

	ctx    context.Context // store writes outlive the request that caused them
	cancel context.CancelFunc
	wg     sync.WaitGroup

	order viewOrder

	pagesMu sync.Mutex
	pages   map[pageKey]*pendingList // view and continue token => list being paged in
	lists   map[store.ListKey]int    // list streams in flight per view

	stats struct {
		responses, objects, events, stale, overflows, failures, writes, writeNanos, queueHigh, active, opaque, shared atomic.Int64
	}
	claims   claims        // identical watches: each event decoded and written once (onewriter.go)
	opaqueRV sync.Map      // store.Resource => struct{}: not cached, see noteOpaqueRV
	budget   byteBudget    // Options.TeedBytes across every stream (tee.go)
	disk     diskFull      // the filesystem under the cache is full (diskfull.go)
	unmarked unmarkedViews // views owed an incomplete mark that could not be written
}

// New returns a Manager writing into st. Caching starts with the default
// components; WatchConfig (or SetCacheAgents) adds the cache_agents setting.
func New(st *store.Store, log *slog.Logger, opts Options) *Manager {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{st: st, log: log, opts: opts, pages: map[pageKey]*pendingList{}, lists: map[store.ListKey]int{}}
	m.budget.limit = int64(opts.TeedBytes)
	m.disk.now, m.disk.logEvery = time.Now, diskFullLogEvery
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.claims.m = m
	m.agents.Store(parseAgents(""))
	return m
}

// Close stops every cache stream in flight (their lists are aborted) and waits for
// them. The store stays open (its owner closes it).
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
	m.pagesMu.Lock()
	for k, p := range m.pages {
		p.w.Abort()
		p.timer.Stop()
		delete(m.pages, k)
	}
	m.pagesMu.Unlock()
}

// Wait blocks until every cache stream started so far has finished writing
// (tests, graceful shutdown).
func (m *Manager) Wait() { m.wg.Wait() }

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{
		Responses:     m.stats.responses.Load(),
		Objects:       m.stats.objects.Load(),
		Events:        m.stats.events.Load(),
		StaleEvents:   m.stats.stale.Load(),
		Overflows:     m.stats.overflows.Load(),
		Failures:      m.stats.failures.Load(),
		Writes:        m.stats.writes.Load(),
		WriteSeconds:  float64(m.stats.writeNanos.Load()) / 1e9,
		QueueHighMark: m.stats.queueHigh.Load(),
		ActiveStreams: m.stats.active.Load(),
		TeedBytes:     m.budget.used.Load(),
		TeedBytesHigh: m.budget.high.Load(),

		OpaqueRVResources: m.stats.opaque.Load(),
		SharedEvents:      m.stats.shared.Load(),
	}
}

// notCachedResources are never cached, whoever asks (REFERENCE section 5).
var notCachedResources = map[string]bool{
	"certificatesigningrequests": true,
	"subjectaccessreviews":       true,
	"selfsubjectaccessreviews":   true,
	"localsubjectaccessreviews":  true,
	"selfsubjectrulesreviews":    true,
	"tokenreviews":               true,
	"selfsubjectreviews":         true,
}

// Cacheable reports whether the response to this request is written to the cache:
// a component the cache_agents setting covers, a get/list/watch of a resource or the
// object a create/update/patch returns (status is the only subresource cached; events
// only as read), or a GET of a discovery path.
func (m *Manager) Cacheable(info *requestinfo.Info) bool {
	if info == nil || info.Component == "" || !m.agents.Load().has(info.Component) {
		return false
	}
	if !info.IsResourceRequest {
		return info.Verb == "get" && cachekey.IsDiscovery(info.Path)
	}
	if notCachedResources[info.Resource] || info.Resource == "" {
		return false
	}
	switch info.Verb {
	case "get":
		return info.Name != "" && (info.Subresource == "" || info.Subresource == "status")
	case "create", "update", "patch":
		// The object a write returns is the object as the cloud now holds it: kept
		// like a GET's, so a client that created or updated an object and never read
		// it (kubelet's node Lease and CSINode, created on first start) finds it
		// offline. Events are the exception: they are written constantly, read by
		// nobody on the node, and kept offline only when created there.
		if isEvents(info) {
			return false
		}
		return info.Subresource == "" || info.Subresource == "status" && info.Name != ""
	case "list", "watch":
		// The deprecated /watch/ path form takes selectors the apiserver's rules do
		// not record, so its view could not be named: not cached.
		if strings.HasPrefix(strings.Trim(info.Path, "/"), info.APIPrefix+"/"+groupVersion(info)+"/watch/") {
			return false
		}
		return info.Subresource == ""
	}
	return false
}

func isEvents(info *requestinfo.Info) bool {
	return info.Resource == "events" && (info.APIGroup == "" || info.APIGroup == "events.k8s.io")
}

func groupVersion(info *requestinfo.Info) string {
	if info.APIGroup == "" {
		return info.APIVersion
	}
	return info.APIGroup + "/" + info.APIVersion
}

// CacheResponse tees a 2xx response to a cacheable request into the store. It
// replaces resp.Body with a reader that hands the client exactly the upstream bytes,
// as they arrive, and queues a copy for a decoder goroutine; it never blocks the
// client on the cache. Call it from the reverse proxy's ModifyResponse; it does
// nothing for requests Cacheable refuses, non-2xx responses, HEAD, transformed
// responses (as=Table, PartialObjectMetadata) and unknown content types.
func (m *Manager) CacheResponse(info *requestinfo.Info, resp *http.Response) {
	if resp == nil || resp.Body == nil || resp.StatusCode < 200 || resp.StatusCode > 299 || !m.Cacheable(info) {
		return
	}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return
	}
	if info.Verb == "create" || info.Verb == "update" || info.Verb == "patch" {
		if resp.Request != nil && resp.Request.URL.Query().Get("dryRun") != "" {
			return // a dry run changed nothing
		}
	}
	if m.ctx.Err() != nil {
		return
	}
	ctype := resp.Header.Get("Content-Type")
	mediaType, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		return
	}
	gz := strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip")
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !gz {
		return
	}

	var run func(r io.Reader) error
	single := false // one object: recorded whole when small (recordBody)
	log := m.log.With(slog.String("component", info.Component), slog.String("request", info.String()))
	if !info.IsResourceRequest {
		if !strings.Contains(mediaType, "json") {
			return
		}
		path := cachekey.Raw(info.Path, ctype)
		run = func(r io.Reader) error {
			body, err := readCapped(r, m.opts.MaxObjectBytes)
			if err != nil {
				return err
			}
			return m.write(func(ctx context.Context) error { return m.st.PutRaw(ctx, info.Component, path, ctype, body) })
		}
	} else {
		if transformed(resp.Header) {
			return
		}
		if _, opaque := m.opaqueRV.Load(cachekey.Resource(info)); opaque {
			return // its resourceVersions cannot be ordered; logged once (noteOpaqueRV)
		}
		var enc store.Encoding
		switch mediaType {
		case "application/json":
			enc = store.EncodingJSON
		case "application/vnd.kubernetes.protobuf":
			enc = store.EncodingProtobuf
		case "application/vnd.kubernetes.protobuf;stream=watch", "application/json;stream=watch":
			// never seen as a media type (the parameter is split off), kept for clarity
		default:
			if strings.HasPrefix(mediaType, "application/vnd.kubernetes.protobuf") {
				enc = store.EncodingProtobuf
			} else if strings.HasSuffix(mediaType, "json") {
				enc = store.EncodingJSON
			} else {
				return
			}
		}
		pod := info.APIGroup == "" && info.Resource == "pods"
		switch info.Verb {
		case "get", "create", "update", "patch":
			key := cachekey.Object(info) // a create names no object: cacheGet takes the response's name
			run = func(r io.Reader) error { return m.cacheGet(r, key, enc, pod) }
			single = true
		case "list":
			var cont string
			if resp.Request != nil {
				q := resp.Request.URL.Query()
				if q.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
					return // a past state: it must not replace the view
				}
				cont = q.Get("continue")
			}
			key := cachekey.List(info)
			prev, release := m.order.ticket(key, true)
			m.pagesMu.Lock()
			m.lists[key]++
			m.pagesMu.Unlock()
			run = func(r io.Reader) error {
				defer release()
				defer func() {
					m.pagesMu.Lock()
					if m.lists[key]--; m.lists[key] == 0 {
						delete(m.lists, key)
					}
					m.pagesMu.Unlock()
				}()
				w, err := m.listWriter(key, cont)
				if err != nil || w == nil {
					return err // w == nil: a later page of a list not cached
				}
				return m.cacheList(r, key, w, enc, pod, prev)
			}
		case "watch":
			key := cachekey.List(info)
			prev, release := m.order.ticket(key, info.SendInitialEvents)
			run = func(r io.Reader) error {
				defer release()
				return m.cacheWatch(r, key, enc, pod, info.SendInitialEvents, prev, release, log)
			}
		default:
			return
		}
	}

	if single && !gz && resp.ContentLength > 0 && resp.ContentLength <= smallBody {
		// One small object of known size (a GET, a write's response): recorded as
		// it passes and cached once the client has it all, with no queue and no
		// goroutine waiting on the response (the GET's latency is the hub's most
		// watched figure).
		m.stats.responses.Add(1)
		m.stats.active.Add(1)
		m.wg.Add(1)
		resp.Body = &recordBody{src: resp.Body, buf: make([]byte, 0, resp.ContentLength), done: func(body []byte, err error) {
			if err != nil {
				m.stats.active.Add(-1)
				m.wg.Done()
				m.noteRun(errClientClosed, info, log)
				return
			}
			go func() {
				defer m.wg.Done()
				defer m.stats.active.Add(-1)
				m.noteRun(run(bytes.NewReader(body)), info, log)
			}()
		}}
		return
	}

	q := newByteQueue(m.opts.QueueBytes, &m.budget)
	resp.Body = &teeBody{src: resp.Body, q: q}
	m.stats.responses.Add(1)
	m.stats.active.Add(1)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.stats.active.Add(-1)
		var r io.Reader = q
		var err error
		if gz {
			zr, zerr := gzip.NewReader(q)
			if zerr != nil {
				r = errReader{zerr} // run still runs, so it cleans up after itself
			} else {
				r = zr
			}
		}
		err = run(r)
		q.abandon()
		q.mu.Lock()
		high := int64(q.maxSeen)
		q.mu.Unlock()
		for {
			old := m.stats.queueHigh.Load()
			if high <= old || m.stats.queueHigh.CompareAndSwap(old, high) {
				break
			}
		}
		m.noteRun(err, info, log)
	}()
}

// smallBody bounds the responses recorded whole (recordBody) rather than teed.
const smallBody = 256 << 10

// noteRun counts and logs how caching one response ended.
func (m *Manager) noteRun(err error, info *requestinfo.Info, log *slog.Logger) {
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNoSpace):
		m.stats.failures.Add(1)
		m.disk.refused(m.log, err)
	case errors.Is(err, errOverflow), errors.Is(err, errPendingOverflow):
		m.stats.overflows.Add(1)
		log.Warn("cache fell behind the client; cache copy of this response abandoned, its view marked incomplete",
			slog.Int("queueBytes", m.opts.QueueBytes), slog.Int("maxPendingEvents", m.opts.MaxPendingEvents), slog.Any("err", err))
	case errors.Is(err, wire.ErrOpaqueRV):
		m.noteOpaqueRV(info, err, log)
	case errors.Is(err, errClientClosed), errors.Is(err, context.Canceled):
		log.Debug("cache stream ended early", slog.Any("err", err))
	default:
		m.stats.failures.Add(1)
		log.Warn("cache write failed", slog.Any("err", err))
	}
}

// recordBody passes a response body through and keeps a copy; done gets the copy
// once the body has been read to its end, or the error (the client closed it
// before, or the upstream failed): a partial body is never cached.
type recordBody struct {
	src  io.ReadCloser
	buf  []byte
	done func([]byte, error)
	once sync.Once
}

func (b *recordBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	if n > 0 {
		if len(b.buf)+n > cap(b.buf) {
			// more than the Content-Length announced: not a body to trust
			b.finish(nil, fmt.Errorf("response body longer than its Content-Length (%d)", cap(b.buf)))
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		if len(b.buf) == cap(b.buf) {
			b.finish(b.buf, nil)
		} else {
			b.finish(nil, io.ErrUnexpectedEOF)
		}
	} else if err != nil {
		b.finish(nil, err)
	}
	return n, err
}

func (b *recordBody) Close() error {
	err := b.src.Close()
	b.finish(nil, errClientClosed)
	return err
}

func (b *recordBody) finish(body []byte, err error) { b.once.Do(func() { b.done(body, err) }) }

// noteOpaqueRV stops caching a resource whose server hands out resourceVersions
// that are not numbers (wire.ErrOpaqueRV), logging it once and counting it.
//
// resourceVersion is opaque by API convention, but the cache is built on ordering
// it: a view's resourceVersion, refusing an event or a GET older than the stored
// copy, a list that does not undo a newer watch event, the offline watch's 410 for
// a client behind the cache, the local-write compare-and-swap. Kept without order,
// a late GET could overwrite a newer object, and an offline watch could not tell a
// client whether it is current; a cache that may be silently wrong is worse than
// none. So such a resource (per group, version and resource: the ordering is a
// property of the server that serves it) is not cached at all: its responses still
// stream to the client untouched, and offline it is answered as never cached (503
// saying so). Only aggregated API servers with their own storage do this; none of
// the components a node runs offline (kubelet, kube-proxy, CNI, CoreDNS) depend on
// one. The set lives in memory: a restarted hub logs it once again.
func (m *Manager) noteOpaqueRV(info *requestinfo.Info, err error, log *slog.Logger) {
	r := cachekey.Resource(info)
	if _, seen := m.opaqueRV.LoadOrStore(r, struct{}{}); seen {
		return // a response teed before the first one was refused
	}
	m.stats.opaque.Add(1)
	log.Warn("not caching this resource: its server hands out resourceVersions that are not numbers, and the cache orders objects, lists and watch events by resourceVersion; "+
		"clients are still served from the cloud, but not from the cache while it is unreachable (logged once per resource)",
		slog.String("resource", r.String()), slog.Any("err", err))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// write runs one store write with the manager's context, timing it.
func (m *Manager) write(fn func(ctx context.Context) error) error {
	start := time.Now()
	err := fn(m.ctx)
	m.stats.writes.Add(1)
	m.stats.writeNanos.Add(int64(time.Since(start)))
	return err
}

func readCapped(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("body larger than the %d-byte limit (Options.MaxObjectBytes)", max)
	}
	return b, nil
}

func (m *Manager) cacheGet(r io.Reader, key store.ObjectKey, enc store.Encoding, pod bool) error {
	body, err := readCapped(r, m.opts.MaxObjectBytes)
	if err != nil {
		return err
	}
	var it wire.Item
	if enc == store.EncodingProtobuf {
		err = wire.ParseProtoEnvelope(body, pod, &it)
	} else {
		err = wire.ParseJSONItem(body, "", "", pod, &it)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if pod && it.NodeName == "" {
		return nil
	}
	if key.Name == "" {
		key.Name = it.Name // the response to a create
		if key.Namespace == "" {
			key.Namespace = it.Namespace
		}
	}
	if it.Name != key.Name || it.Name == "" {
		return fmt.Errorf("%s: response names %q", key, it.Name)
	}
	err = m.write(func(ctx context.Context) error { return m.st.PutObject(ctx, key, it.Object()) })
	if errors.Is(err, store.ErrStale) {
		return nil
	}
	if err == nil {
		m.stats.objects.Add(1)
	}
	return err
}

// pageKey names a paginated list between two pages: the view and the continue token
// its next page asks with. The token alone is not enough: two components paging the
// same resource at the same revision are handed the same token.
type pageKey struct {
	view store.ListKey
	cont string
}

// pendingList is a paginated list between two pages.
type pendingList struct {
	key   store.ListKey
	w     *store.ListWriter
	timer *time.Timer
}

// listWriter returns the writer a list response goes to: a new one for a first
// page; for a later page the one its previous page parked (waiting up to
// pageWait for it, since the client may ask for the next page before the
// previous page's decoder has finished), or nil when that list was not cached.
func (m *Manager) listWriter(key store.ListKey, cont string) (*store.ListWriter, error) {
	if cont == "" {
		return m.st.BeginList(m.ctx, key)
	}
	deadline := time.Now().Add(pageWait)
	for {
		m.pagesMu.Lock()
		pk := pageKey{key, cont}
		p := m.pages[pk]
		if p != nil {
			delete(m.pages, pk)
			p.timer.Stop()
			m.pagesMu.Unlock()
			return p.w, nil
		}
		others := m.lists[key] > 1 // another list stream of this view (the previous page?) is running
		m.pagesMu.Unlock()
		if !others || time.Now().After(deadline) || m.ctx.Err() != nil {
			return nil, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pageWait bounds how long a later page's decoder waits for its previous page.
const pageWait = 5 * time.Second

// listSinkFunc adapts the store's ListWriter.
type writerSink struct {
	m   *Manager
	w   *store.ListWriter
	pod bool
}

func (s writerSink) Add(it *wire.Item) error {
	if s.pod && it.NodeName == "" {
		return nil // pods not bound to a node are not cached
	}
	if err := s.w.Add(it.Object()); err != nil {
		return err
	}
	s.m.stats.objects.Add(1)
	return nil
}

// A list that is not committed (undecodable, cut, refused by the store, or the hub
// shutting down) leaves its view at the previous list, older than what the client
// now holds and will watch on from: the view is marked incomplete.
func (m *Manager) cacheList(r io.Reader, key store.ListKey, w *store.ListWriter, enc store.Encoding, pod bool, prev <-chan struct{}) (err error) {
	defer func() {
		if err != nil {
			m.markIncomplete(key, "list response not fully cached: "+err.Error())
		}
	}()
	sink := writerSink{m: m, w: w, pod: pod}
	var lm wire.ListMeta
	if enc == store.EncodingProtobuf {
		lm, err = wire.DecodeProtoList(r, pod, uint64(m.opts.MaxObjectBytes), sink)
	} else {
		lm, err = wire.DecodeJSONList(r, pod, m.opts.MaxObjectBytes, sink)
	}
	if err == nil {
		// Drain what follows the document (nothing, normally) so EOF is seen.
		_, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("list %s: %w", key, err)
	}
	if lm.Continue != "" {
		pk := pageKey{key, lm.Continue}
		m.pagesMu.Lock()
		p := &pendingList{key: key, w: w}
		p.timer = time.AfterFunc(m.opts.PageTimeout, func() {
			m.pagesMu.Lock()
			if m.pages[pk] == p {
				delete(m.pages, pk)
				w.Abort()
			}
			m.pagesMu.Unlock()
		})
		if old := m.pages[pk]; old != nil {
			// The same view paged twice at once (two clients of one component): the
			// later list wins; the earlier writer is aborted, not left to a finalizer.
			old.timer.Stop()
			old.w.Abort()
		}
		m.pages[pk] = p
		m.pagesMu.Unlock()
		return nil
	}
	if err := wait(m.ctx, prev); err != nil {
		w.Abort()
		return err
	}
	if err := m.write(func(context.Context) error { return w.Commit(lm.RV) }); err != nil {
		return fmt.Errorf("list %s: commit: %w", key, err)
	}
	m.unmarked.remove(key) // the view is a complete list again
	m.disk.succeeded(m.log)
	return nil
}

// markIncomplete marks view key incomplete, or leaves the mark owed (markPending)
// when the store cannot write it. It is written even while the manager is closing:
// events lost to the shutdown are a gap like any other.
func (m *Manager) markIncomplete(key store.ListKey, reason string) {
	err := m.st.MarkIncomplete(context.WithoutCancel(m.ctx), key, reason)
	switch {
	case err == nil, errors.Is(err, store.ErrNotSynced):
	case errors.Is(err, store.ErrNoSpace):
		// Owed until it can be written (markPending) or a new list replaces the view;
		// the full disk itself is reported once, by CacheResponse.
		m.unmarked.add(key, reason)
	default:
		m.log.Warn("cache: mark list incomplete", slog.String("list", key.String()), slog.Any("err", err))
	}
}

// cacheWatch decodes a watch stream and applies its events. With
// sendInitialEvents (watch-list), the events before the initial-events-end bookmark
// are the complete state: they are streamed into a list replacement committed at
// the bookmark's resourceVersion. Later events go to an applier goroutine that
// passes everything decoded while its previous ApplyEvents call was in flight in
// one call (the store group-commits them).
//
// Only a clean end leaves the view as it is: the stream ended or was cut (by the
// network, the client or the apiserver) and every event before that point was
// applied, so the view is at a resourceVersion the client's next watch continues
// from. Every other exit lost events the client received (events dropped past
// MaxPendingEvents, a queue overflow, an undecodable event, a store error, a
// watch-list whose initial state could not be written, the hub shutting down with
// events still pending) and marks the view incomplete with the reason, or leaves
// the mark owed when the store cannot write it (markIncomplete). Without the mark a
// later watch would apply events on top of the gap and the offline path would serve
// the view as complete.
func (m *Manager) cacheWatch(r io.Reader, key store.ListKey, enc store.Encoding, pod bool, initial bool, prev <-chan struct{}, release func(), log *slog.Logger) (err error) {
	var initialDone bool // the watch-list's initial state is committed (or there is none)
	defer func() {
		if err == nil {
			return
		}
		what := "watch stream not fully cached"
		if initial && !initialDone {
			what = "watch-list initial state not cached"
		} else if errors.Is(err, errPendingOverflow) {
			what = "watch events dropped"
		}
		m.markIncomplete(key, what+": "+err.Error())
	}()
	var lw *store.ListWriter
	var dec wire.EventDecoder
	var framed uint64 // the claim of the frame being decoded (onewriter.go)
	if enc == store.EncodingProtobuf {
		// A frame another identical watch claimed is passed over undecoded.
		dec = wire.NewProtoWatchDecoderSkipping(r, pod, m.opts.MaxObjectBytes, func(frame []byte) bool {
			if lw != nil {
				return true // the initial state of a watch-list claims nothing
			}
			seq, ok := m.claims.frame(key, frame)
			if !ok {
				m.stats.shared.Add(1)
				return false
			}
			framed = seq
			return true
		})
	} else {
		dec = wire.NewJSONWatchDecoder(r, pod, m.opts.MaxObjectBytes)
	}

	if initial {
		var err error
		if lw, err = m.st.BeginList(m.ctx, key); err != nil {
			return fmt.Errorf("watch-list %s: %w", key, err)
		}
		defer func() {
			if lw != nil {
				lw.Abort()
			}
		}()
	} else {
		initialDone = true
	}
	// Identical watches of this view decode and write each event once
	// (onewriter.go); the stream leaves after its events are written (defers run
	// last-in first-out).
	defer m.claims.open(key)()
	// Without watch-list, the first event waits for the list this watch follows;
	// with it, the initial state's commit waits for earlier replacements.
	ap := newApplier(m, key, log, prev)
	if initial {
		ap = newApplier(m, key, log, nil)
	}
	defer ap.close()

	for {
		var ev wire.Event
		err := dec.Next(&ev)
		seq := framed
		framed = 0
		// Every claim is finished, written or not, or the view's later events wait.
		drop := func() { m.claims.finish(key, seq) }
		if err != nil {
			drop()
			// close flushes what is pending; its error means events were not applied.
			cerr := ap.close()
			var ue *upstreamError
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errClientClosed) || errors.Is(err, context.Canceled) || errors.As(err, &ue) {
				return cerr // a cut: clean if every event before it was applied
			}
			if cerr != nil {
				return cerr
			}
			return fmt.Errorf("watch %s: %w", key, err)
		}
		if ev.Type == "ERROR" {
			drop()
			continue
		}
		if lw != nil {
			switch ev.Type {
			case "ADDED", "MODIFIED":
				if err := (writerSink{m: m, w: lw, pod: pod}).Add(&ev.Item); err != nil {
					return fmt.Errorf("watch-list %s: %w", key, err)
				}
			case "BOOKMARK":
				if ev.Item.InitialEnd {
					w := lw
					lw = nil
					if err := wait(m.ctx, prev); err != nil {
						w.Abort()
						return err
					}
					err := m.write(func(context.Context) error { return w.Commit(ev.Item.RV) })
					release()
					if err != nil {
						return fmt.Errorf("watch-list %s: commit initial state: %w", key, err)
					}
					initialDone = true
					m.unmarked.remove(key)
					m.disk.succeeded(m.log)
				}
			}
			continue
		}
		var t store.EventType
		switch ev.Type {
		case "ADDED":
			t = store.Added
		case "MODIFIED":
			t = store.Modified
		case "DELETED":
			t = store.Deleted
		case "BOOKMARK":
			t = store.Bookmark
		default:
			drop()
			continue
		}
		if pod && t != store.Deleted && t != store.Bookmark && ev.Item.NodeName == "" {
			drop()
			continue
		}
		sev := store.Event{Type: t, Object: ev.Item.Object()}
		if seq == 0 {
			var ok bool
			if seq, ok = m.claims.event(key, sev); !ok {
				m.stats.shared.Add(1) // another identical watch delivered it
				continue
			}
		} else if !m.claims.also(key, sev) {
			drop() // delivered first by an identical watch in the other encoding
			m.stats.shared.Add(1)
			continue
		}
		if err := ap.push(sev, seq); err != nil {
			// Flush what was accepted before the drop, so the view's resourceVersion
			// is the last event actually applied when the mark is written.
			ap.close()
			return err
		}
	}
}

// applier hands one watch stream's events to its view's writer (onewriter.go),
// which applies the events of every identical watch of the view in claim order,
// batching what piles up while its previous write is in flight.
type applier struct {
	m     *Manager
	key   store.ListKey
	log   *slog.Logger
	prev  <-chan struct{} // the list this watch follows; its events are written after it
	first uint64          // the stream's oldest claim
	last  uint64          // and its newest
	err   error
}

func newApplier(m *Manager, key store.ListKey, log *slog.Logger, prev <-chan struct{}) *applier {
	return &applier{m: m, key: key, log: log, prev: prev}
}

// push queues an event the stream claimed as seq. It fails once events of the
// view from this stream's first on could not be applied (the view is then marked
// incomplete already), or when MaxPendingEvents wait for the store.
func (a *applier) push(ev store.Event, seq uint64) error {
	if a.err == nil && a.first > 0 {
		a.err = a.m.claims.failed(a.key, a.first)
	}
	if a.err != nil {
		a.m.claims.finish(a.key, seq)
		return a.err
	}
	if err := a.m.claims.fill(a.key, seq, ev, a.prev); err != nil {
		a.err = err
		return err
	}
	if a.first == 0 {
		a.first = seq
	}
	a.last = max(a.last, seq)
	return nil
}

// close waits until the stream's events are written (or abandoned) and returns
// the error of a write that failed with some of them.
func (a *applier) close() error {
	if a.last > 0 {
		if err := a.m.claims.waitWritten(a.key, a.last); err != nil && a.err == nil {
			a.err = err
		}
	}
	if a.err == nil && a.first > 0 {
		a.err = a.m.claims.failed(a.key, a.first)
	}
	return a.err
}
