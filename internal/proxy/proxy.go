// Package proxy is the handler behind the hub's proxy ports (10261 HTTP, 10268 TLS, and
// the same ports on the dummy IP):
//
//	request -> classify (requestinfo) -> in-flight limit -> route
//	  edge mode,  a backend healthy  -> reverse proxy; 2xx responses are handed to the
//	                                    Cacher (the cache manager tees them into the store)
//	  edge mode,  no backend healthy -> the Local handler (offline serving; until that
//	                                    lands, 503 with a metav1.Status saying so)
//	  cloud mode                     -> reverse proxy over any backend, nothing cached
//
// Upstream credentials: a request that carries its own Authorization header keeps it
// and goes over a transport that only verifies the apiserver against the cluster CA; any
// other request goes with the hub's own client certificate (certs.Source).
//
// Anonymous requests only from the node (anonymous.go, issue 15 item 9): a request
// without credentials (no Authorization header, and no client certificate verified
// against the cluster CA on the secure port) would reach the apiserver as the node,
// and every pod can reach the proxy on the dummy IP. So such a request is served only
// when its connection's source address is the node's own (Options.NodeAddrs:
// loopback and the addresses of the host's interfaces, i.e. host-network components);
// from anywhere else it gets 403 with a Status saying what to do (send the pod's
// service-account token, or run on the host network), a WARN line once per source per
// 10 minutes and node_yurthub_proxy_anonymous_rejected_total{reason}. This check comes
// before anything else, offline too. A verified client certificate counts as a
// credential but its identity is not forwarded: such requests go upstream as the node,
// as in OpenYurt.
//
// The query parameters of gets, lists and watches are validated as the apiserver does
// (requestinfo.ValidateQuery) before routing, so both paths refuse the same requests.
//
// Streaming: responses are flushed as they arrive (watch, logs -f); upgrade requests
// (exec, attach, port-forward) are passed through as upgrades (HTTP/1.1 to the
// backend); Content-Encoding is passed unchanged (the hub never asks for gzip itself
// and never decompresses).
//
// A request that cannot connect to its backend marks that backend unhealthy at once
// (the health checker puts it back) and, when it has no body, is retried on the next
// healthy backend, so stopping one apiserver of several fails no request. In edge mode
// a get or list that still fails before a response arrived is answered by the Local
// handler (from the cache); once the response has started, the stream just ends.
//
// The in-flight limit (--max-requests-in-flight, 0 = none) counts requests that are not
// long-running, as the kube-apiserver does; past it the answer is 429 with
// Retry-After. Long-running requests (watch, exec, logs, ...) are counted apart, in
// metrics only.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/apistatus"
	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/metrics"
	"github.com/yurthub/yurthub/internal/requestinfo"
)

// Cacher tees proxied responses into the cache. The proxy calls CacheResponse from
// the reverse proxy's ModifyResponse for every 2xx, non-upgrade response in edge mode;
// the cacher decides whether the request is cacheable and, if so, replaces resp.Body
// with a reader that passes the bytes through unchanged. It must not block.
type Cacher interface {
	CacheResponse(info *requestinfo.Info, resp *http.Response)
}

// Multiplexer serves some lists and watches itself. Serve returns false, having
// written nothing, for a request it does not take; the proxy then routes it as
// any other.
type Multiplexer interface {
	Serve(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) bool
}

// Filterer rewrites proxied responses before the cache sees them (the response
// filters, package filter). It replaces resp.Body only when a filter applies to
// the request, and must not block.
type Filterer interface {
	FilterResponse(info *requestinfo.Info, resp *http.Response)
}

// Options configure a Proxy.
type Options struct {
	WorkingMode string // config.WorkingModeEdge or config.WorkingModeCloud
	LB          *loadbalancer.Balancer
	Certs       certs.Source
	// MaxRequestsInFlight limits requests that are not long-running; 0 = no limit.
	MaxRequestsInFlight int
	// Filter runs on 2xx responses, in both modes, before Cacher: the cache holds
	// what the client saw. nil filters nothing.
	Filter Filterer
	// Cacher receives 2xx responses in edge mode; nil caches nothing.
	Cacher Cacher
	// Local answers in edge mode when no backend is healthy; nil answers 503.
	Local http.Handler
	// Multiplexer answers, in edge mode and whether or not the cloud is reachable,
	// the lists and watches it takes (the pool-scope resources, internal/multiplexer)
	// from one shared upstream stream; nil: none.
	Multiplexer Multiplexer
	// NodeAddrs are the node's own addresses (internal/nodeaddr): a request without
	// credentials is answered 403 unless its source is one of them. nil: loopback only.
	NodeAddrs NodeAddrs
	// OnRequest is called for every request after classification (the health
	// checker's KubeletSeen hangs off it). Must be quick.
	OnRequest func(info *requestinfo.Info)
	Metrics   *metrics.Metrics
	Log       *slog.Logger
	// Transports override the upstream transports (tests); nil builds them from Certs.
	CertTransport, TokenTransport http.RoundTripper
}

// Proxy is the proxy handler.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	parser   *requestinfo.Parser
	rp       *httputil.ReverseProxy // short requests: one write to the client per response
	rpLong   *httputil.ReverseProxy // long-running requests: every write goes out at once
	inflight chan struct{}          // nil: no limit
	edge     bool
	up       *upstream
	anon     *anonymousGuard

	// longCtx ends when CloseLongRunning is called: watches and upgraded connections
	// end with it, so a shutdown does not wait for them.
	longCtx   context.Context
	closeLong context.CancelFunc
}

// The bounds on the message of a Status the proxy writes and on each of its details
// (internal/apistatus).
const (
	maxMessage = apistatus.MaxMessage
	maxEcho    = apistatus.MaxEcho
)

func shorten(s string, n int) string { return apistatus.Shorten(s, n) }

// RetryAfterSeconds is the Retry-After of a 429 from the in-flight limiter.
const RetryAfterSeconds = 1

// New returns the proxy handler.
func New(opts Options) (*Proxy, error) {
	if opts.LB == nil {
		return nil, errors.New("proxy: no load balancer")
	}
	if opts.Certs == nil && (opts.CertTransport == nil || opts.TokenTransport == nil) {
		return nil, errors.New("proxy: no credential source")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	p := &Proxy{
		opts:   opts,
		log:    opts.Log,
		parser: requestinfo.New(),
		edge:   opts.WorkingMode != config.WorkingModeCloud,
	}
	p.anon = &anonymousGuard{addrs: opts.NodeAddrs, log: opts.Log, warned: map[netip.Addr]time.Time{}}
	if p.anon.addrs == nil {
		p.anon.addrs = loopbackOnly{}
	}
	p.longCtx, p.closeLong = context.WithCancel(context.Background())
	if opts.MaxRequestsInFlight > 0 {
		p.inflight = make(chan struct{}, opts.MaxRequestsInFlight)
	}
	if opts.Local == nil {
		p.opts.Local = http.HandlerFunc(cloudUnreachable)
	}
	if opts.CertTransport == nil {
		opts.CertTransport = NewUpstreamTransport(certs.UpstreamTLS(opts.Certs))
	}
	if opts.TokenTransport == nil {
		opts.TokenTransport = NewUpstreamTransport(certs.CAOnlyTLS(opts.Certs))
	}
	p.up = &upstream{p: p, cert: opts.CertTransport, token: opts.TokenTransport}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The backend is chosen (and retried) in upstream.RoundTrip; the URL here
			// is a placeholder it replaces.
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = "backend.invalid"
			pr.Out.Host = ""
		},
		Transport: p.up,
		// No flush interval for short requests: a response whose length is known
		// (a GET of one object) then leaves in one write, headers and body together,
		// when the handler returns. With -1 the proxy flushes the headers at once from
		// a timer goroutine and then the body: two writes and two wake-ups of the
		// client per GET. A response without a length (a list, a stream) is flushed
		// as it comes whatever this says (httputil's rule for ContentLength -1).
		FlushInterval:  0,
		BufferPool:     copyBuffers{},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	long := *p.rp
	long.FlushInterval = -1 // watches, logs -f: every event goes out as it arrives
	p.rpLong = &long
	return p, nil
}

// NewUpstreamTransport is the transport the proxy uses towards the apiservers with the
// given TLS config: HTTP/2 where the apiserver offers it (HTTP/1.1 for upgrades),
// compression left to the client, dead connections found by HTTP/2 pings.
func NewUpstreamTransport(tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   5 * time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 5 * time.Second,
			PingTimeout:     2 * time.Second,
		},
	}
}

type ctxKey struct{}

// reqState travels with one proxied request.
type reqState struct {
	info    *requestinfo.Info
	backend *loadbalancer.Backend
	tried   []*loadbalancer.Backend
	start   time.Time
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(ctxKey{}).(*reqState)
	return st
}

// maxKeptBody bounds a request body kept for the cache (requestinfo.WithBody); a
// TokenRequest is a few hundred bytes.
const maxKeptBody = 64 << 10

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// First of all: a request that would borrow the node's identity must come from
	// the node (anonymous.go). Online or offline alike: the cache holds what the
	// node's components read.
	if p.refuseAnonymous(w, r) {
		return
	}
	info, err := p.parser.Parse(r)
	if err != nil {
		p.log.Debug("request not classified, proxying as is", slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	if p.opts.OnRequest != nil {
		p.opts.OnRequest(info)
	}
	// Query parameters are checked here, once, for the proxied and the local path
	// alike: what the apiserver refuses is refused offline too.
	if st := requestinfo.ValidateQuery(r, info); st != nil {
		writeStatus(w, r, st, 0)
		return
	}
	m := p.opts.Metrics
	kind := "readonly"
	switch {
	case info.LongRunning:
		kind = "longrunning"
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		kind = "mutating"
	}
	if p.inflight != nil && !info.LongRunning {
		select {
		case p.inflight <- struct{}{}:
			defer func() { <-p.inflight }()
		default:
			m.RejectedRequests.Inc()
			tooManyRequests(w, r)
			return
		}
	}
	labels := []string{info.Verb, info.Resource, info.Subresource, info.Component}
	m.InFlightRequests.WithLabelValues(labels...).Inc()
	m.AggregatedInFlight.WithLabelValues(kind).Inc()
	defer func() {
		m.InFlightRequests.WithLabelValues(labels...).Dec()
		m.AggregatedInFlight.WithLabelValues(kind).Dec()
	}()

	if p.edge && p.opts.Multiplexer != nil && p.serveMultiplexed(w, r, info) {
		return
	}
	var b *loadbalancer.Backend
	if p.edge {
		b = p.opts.LB.Pick()
		if b == nil {
			p.opts.Local.ServeHTTP(w, r.WithContext(requestinfo.WithInfo(r.Context(), info)))
			return
		}
	} else {
		b = p.opts.LB.PickAny()
	}
	st := &reqState{info: info, backend: b, start: time.Now()}
	ctx := requestinfo.WithInfo(r.Context(), info)
	if info.LongRunning {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(p.longCtx, cancel)
		defer stop()
	}
	ctx = context.WithValue(ctx, ctxKey{}, st)
	if requestinfo.IsTokenRequest(info) && r.Body != nil && r.Body != http.NoBody {
		// Kept for the offline token cache, which files the answer under what was
		// asked (the apiserver fills in its default audiences in the answer).
		body, err := io.ReadAll(io.LimitReader(r.Body, maxKeptBody+1))
		if err != nil {
			writeStatus(w, r, &apierrors.NewBadRequest("yurthub: reading the TokenRequest body: "+err.Error()).ErrStatus, 0)
			return
		}
		if len(body) <= maxKeptBody {
			ctx = requestinfo.WithBody(ctx, body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		} else {
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		}
	}
	cw := &countingWriter{ResponseWriter: w}
	rp := p.rp
	if info.LongRunning {
		rp = p.rpLong
	}
	rp.ServeHTTP(cw, r.WithContext(ctx))
	m.ProxyTraffic.WithLabelValues(info.Component, info.Verb, info.Resource, info.Subresource).Add(float64(cw.n))
	if r.Context().Err() != nil {
		m.ClosedRequests.WithLabelValues(labels...).Inc()
	}
}

// serveMultiplexed hands the request to the multiplexer; its watches end with
// CloseLongRunning like proxied ones.
func (p *Proxy) serveMultiplexed(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) bool {
	ctx := requestinfo.WithInfo(r.Context(), info)
	if info.LongRunning {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(p.longCtx, cancel)
		defer stop()
	}
	return p.opts.Multiplexer.Serve(w, r.WithContext(ctx), info)
}

// CloseLongRunning ends every long-running request (watch, exec, logs -f) now and
// any that starts later; the daemon calls it when shutting down.
func (p *Proxy) CloseLongRunning() { p.closeLong() }

func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := stateFrom(resp.Request.Context())
	if st == nil {
		return nil
	}
	info := st.info
	p.opts.Metrics.ProxyLatency.WithLabelValues(info.Component, info.Verb, info.Resource, info.Subresource).
		Observe(time.Since(st.start).Seconds())
	if p.opts.Filter != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		p.opts.Filter.FilterResponse(info, resp)
	}
	if p.edge && p.opts.Cacher != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		p.opts.Cacher.CacheResponse(info, resp)
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	if r.Context().Err() != nil {
		return // the client went away; counted in ServeHTTP
	}
	server := ""
	if st != nil && st.backend != nil {
		server = st.backend.String()
	}
	if code, ok := requestError(err); ok {
		// The request itself is what the apiserver refuses (HTTP/2 would not even
		// send it): answer as the apiserver would, never from the cache.
		p.log.Info("proxied request refused before it was sent", slog.String("server", server), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("code", code), slog.Any("err", err))
		st := metav1.Status{Code: int32(code), Reason: metav1.StatusReasonBadRequest,
			Message: fmt.Sprintf("yurthub: the request cannot be sent to the apiserver %s as it is: %v", server, err)}
		if code == http.StatusRequestHeaderFieldsTooLarge {
			st.Reason = ""
			st.Message = fmt.Sprintf("yurthub: the request's headers are larger than the apiserver %s accepts (%v); send smaller headers", server, err)
		}
		writeStatus(w, r, &st, 0)
		return
	}
	if p.edge && isConnectError(err) && !p.opts.LB.AnyHealthy() {
		p.log.Info("cloud unreachable, answering locally", slog.String("path", r.URL.Path), slog.Any("err", err))
		p.opts.Local.ServeHTTP(w, r)
		return
	}
	// A get or list that failed before any response arrived falls back to the
	// cache (REFERENCE 3), whatever the state of the other backends.
	if p.edge && st != nil && (st.info.Verb == "get" || st.info.Verb == "list") {
		p.log.Info("proxied read failed, answering locally", slog.String("server", server),
			slog.String("path", r.URL.Path), slog.Any("err", err))
		p.opts.Local.ServeHTTP(w, r)
		return
	}
	p.log.Warn("proxy request failed", slog.String("server", server), slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Any("err", err))
	writeStatus(w, r, &apierrors.NewServiceUnavailable(fmt.Sprintf("yurthub: the request could not reach the apiserver %s: %v", server, err)).ErrStatus, 0)
}

// copyBuffers reuses the proxy's copy buffers (httputil allocates and clears 32 KiB
// per response without a pool).
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// upstream chooses the transport by credentials and the backend by the load
// balancer, retrying requests without a body on the next backend after a connection
// error.
type upstream struct {
	p           *Proxy
	cert, token http.RoundTripper
}

func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	if st == nil {
		return nil, errors.New("proxy: request without routing state")
	}
	rt := u.cert
	if req.Header.Get("Authorization") != "" {
		rt = u.token
	}
	m := u.p.opts.Metrics
	for {
		b := st.backend
		out := req.Clone(req.Context())
		out.URL.Scheme = b.URL.Scheme
		out.URL.Host = b.URL.Host
		out.Host = ""
		resp, err := rt.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		if req.Context().Err() != nil || !isConnectError(err) {
			if req.Context().Err() == nil {
				kind := "other"
				if _, ok := requestError(err); ok {
					kind = "request"
				}
				m.UpstreamErrors.WithLabelValues(b.String(), kind).Inc()
			}
			return nil, err
		}
		m.UpstreamErrors.WithLabelValues(b.String(), "connect").Inc()
		if b.MarkUnhealthy("proxied request could not connect: " + err.Error()) {
			u.p.log.Warn("backend unreachable, taken out of rotation", slog.String("server", b.String()), slog.Any("err", err))
		}
		if !replayable(req) {
			return nil, err
		}
		st.tried = append(st.tried, b)
		var next *loadbalancer.Backend
		if u.p.edge {
			next = u.p.opts.LB.Pick(st.tried...)
		} else {
			next = u.p.opts.LB.PickAny(st.tried...)
		}
		if next == nil {
			return nil, err
		}
		st.backend = next
	}
}

// replayable: nothing of the request can have been sent when the dial failed, but the
// body can only be sent again if there is none.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 && req.Method == http.MethodGet
}

// isConnectError reports errors that mean the backend is not reachable (as opposed to
// an error in the middle of an exchange with a live backend).
func isConnectError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && strings.Contains(err.Error(), "TLS handshake") {
		return true
	}
	return false
}

// requestError reports errors of the upstream transport that are about the request
// itself rather than the backend, with the status the apiserver would answer: the
// same request would fail on every backend and at any time, so it is neither a
// sign of an unreachable cloud nor a reason to answer from the cache.
//
// The transports' errors for these are not exported (net/http's bundled HTTP/2 and
// its HTTP/1.1 writer build them with errors.New/fmt.Errorf), so they are matched by
// their text.
func requestError(err error) (code int, ok bool) {
	if err == nil {
		return 0, false
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "request header list larger than peer's advertised limit"):
		// The apiserver's HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE; over HTTP/1.1 the
		// apiserver itself answers 431.
		return http.StatusRequestHeaderFieldsTooLarge, true
	case strings.Contains(msg, "invalid HTTP header "), // HTTP/2: a header name or value
		strings.Contains(msg, "invalid HTTP trailer "),
		strings.Contains(msg, "net/http: invalid header "), // HTTP/1.1
		strings.Contains(msg, "net/http: invalid trailer "),
		strings.Contains(msg, "invalid header field "),
		strings.Contains(msg, "http: invalid Host header"),
		strings.Contains(msg, "invalid Connection request header"),
		strings.Contains(msg, "invalid Upgrade request header"),
		strings.Contains(msg, "invalid Transfer-Encoding request header"),
		strings.Contains(msg, "can't write control character in Request.URL"),
		strings.Contains(msg, "request body larger than specified content length"),
		strings.Contains(msg, "with Body length"): // http: ContentLength=N with Body length M
		return http.StatusBadRequest, true
	}
	return 0, false
}

// countingWriter counts response bytes; Unwrap keeps Flush and Hijack working through
// http.ResponseController (which the reverse proxy uses).
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) Flush() {
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// cloudUnreachable is the Local handler until offline serving lands.
func cloudUnreachable(w http.ResponseWriter, r *http.Request) {
	writeStatus(w, r, &apierrors.NewServiceUnavailable(
		"yurthub: the cloud kube-apiserver is unreachable (no healthy --server-addr backend) and this request cannot be served from the node").ErrStatus, 0)
}

func tooManyRequests(w http.ResponseWriter, r *http.Request) {
	st := apierrors.NewTooManyRequests("yurthub: too many requests in flight (--max-requests-in-flight), please try again later", RetryAfterSeconds).ErrStatus
	writeStatus(w, r, &st, RetryAfterSeconds)
}

// writeStatus answers with a metav1.Status (apistatus.Write).
func writeStatus(w http.ResponseWriter, r *http.Request, st *metav1.Status, retryAfter int) {
	apistatus.Write(w, r, st, retryAfter)
}
