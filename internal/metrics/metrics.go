// Package metrics holds the hub's Prometheus metrics, one registry per daemon, served
// on the hub server's /metrics. Names are OpenYurt YurtHub's (prefix node_yurthub_) so
// existing dashboards keep working, plus what OpenYurt lacks: per-backend health
// transitions and the cache's write latency and queue depth.
//
// Every metric is created by New; packages receive the *Metrics and never register
// their own, so two daemons in one test process do not collide.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	namespace = "node"
	subsystem = "yurthub"
)

// Metrics is the hub's metric set.
type Metrics struct {
	Registry *prometheus.Registry

	// InFlightRequests: requests being proxied, by verb, resource, subresource, client.
	InFlightRequests *prometheus.GaugeVec
	// AggregatedInFlight: requests being proxied, by kind (mutating, readonly, longrunning).
	AggregatedInFlight *prometheus.GaugeVec
	// RejectedRequests: requests answered 429 by the in-flight limiter.
	RejectedRequests prometheus.Counter
	// ClosedRequests: requests whose client went away before the response was complete.
	ClosedRequests *prometheus.CounterVec
	// ProxyTraffic: response bytes sent to clients, by client, verb, resource, subresource.
	ProxyTraffic *prometheus.CounterVec
	// ProxyLatency: time to the response header from the backend.
	ProxyLatency *prometheus.HistogramVec
	// ServerHealthy: 1 when the backend (server label) is healthy, 0 otherwise.
	ServerHealthy *prometheus.GaugeVec
	// BackendTransitions: health changes per backend and direction.
	BackendTransitions *prometheus.CounterVec
	// UpstreamErrors: proxied requests that failed to reach a backend, by server and kind.
	UpstreamErrors *prometheus.CounterVec
	// AnonymousRejected: requests without credentials refused with 403 because they
	// did not come from the node itself, by reason (not_node_address, unknown_source).
	AnonymousRejected *prometheus.CounterVec
}

// New creates and registers every metric, plus the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	opts := func(name, help string) (string, string, string, string) { return namespace, subsystem, name, help }
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		ns, ss, n, h := opts(name, help)
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: ss, Name: n, Help: h}, labels)
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		ns, ss, n, h := opts(name, help)
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: ss, Name: n, Help: h}, labels)
	}
	m := &Metrics{
		Registry:           r,
		InFlightRequests:   gv("in_flight_requests_collector", "collector of in flight requests handling by hub agent", "verb", "resource", "subresource", "client"),
		AggregatedInFlight: gv("aggregated_in_flight_requests_collector", "in flight requests by kind: mutating, readonly, longrunning", "kind"),
		RejectedRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "rejected_requests_counter", Help: "requests rejected with 429 because --max-requests-in-flight was reached"}),
		ClosedRequests: cv("closed_requests_counter", "requests whose client closed the connection before the response ended", "verb", "resource", "subresource", "client"),
		ProxyTraffic:   cv("proxy_traffic_collector", "collector of proxy response traffic by hub agent (unit: byte)", "client", "verb", "resource", "subresource"),
		ProxyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "proxy_latency_collector", Help: "seconds from request to backend response header",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"client", "verb", "resource", "subresource"}),
		ServerHealthy:      gv("server_healthy_status", "healthy status of remote servers. 1: healthy, 0: unhealthy", "server"),
		BackendTransitions: cv("server_health_transitions_total", "backend health changes", "server", "to"),
		UpstreamErrors:     cv("upstream_errors_total", "proxied requests that failed to reach a backend", "server", "kind"),
		AnonymousRejected: cv("proxy_anonymous_rejected_total",
			"requests without credentials (no Authorization header, no client certificate) refused with 403 because they did not come from the node itself", "reason"),
	}
	// Present at 0 from the start, so an alert on any increase needs no special case.
	m.AnonymousRejected.WithLabelValues("not_node_address")
	r.MustRegister(m.InFlightRequests, m.AggregatedInFlight, m.RejectedRequests, m.ClosedRequests,
		m.ProxyTraffic, m.ProxyLatency, m.ServerHealthy, m.BackendTransitions, m.UpstreamErrors, m.AnonymousRejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// CacheStats are the cache manager's counters, read at every scrape.
type CacheStats struct {
	Responses, Objects, Events, StaleEvents int64
	Overflows, Failures                     int64 // streams the cache could not follow
	Writes                                  int64
	WriteSeconds                            float64 // total time in store writes
	QueueHighMark                           int64   // largest tee queue seen, bytes
	ActiveStreams                           int64   // responses being teed now
	DamagedValues                           int64   // cached values that failed their integrity check
	OpaqueRVResources                       int64   // resources not cached: their resourceVersions are not numbers
}

// RegisterCache exports the cache manager's counters: mean write latency is
// cache_write_seconds_total / cache_writes_total; queue depth is the high-water mark
// of the tee queue and the number of streams being teed.
func (m *Metrics) RegisterCache(stats func() CacheStats) {
	counter := func(name, help string, v func(CacheStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help},
			func() float64 { return v(stats()) })
	}
	gauge := func(name, help string, v func(CacheStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help},
			func() float64 { return v(stats()) })
	}
	m.Registry.MustRegister(
		counter("cache_responses_total", "responses teed into the cache", func(s CacheStats) float64 { return float64(s.Responses) }),
		counter("cache_objects_total", "objects written by gets and list items", func(s CacheStats) float64 { return float64(s.Objects) }),
		counter("cache_watch_events_total", "watch events applied to the cache", func(s CacheStats) float64 { return float64(s.Events) }),
		counter("cache_stale_events_total", "watch events refused as older than the cache", func(s CacheStats) float64 { return float64(s.StaleEvents) }),
		counter("cache_overflows_total", "streams whose cache copy was abandoned because the cache fell behind", func(s CacheStats) float64 { return float64(s.Overflows) }),
		counter("cache_failures_total", "streams whose cache copy was abandoned on a decode or store error", func(s CacheStats) float64 { return float64(s.Failures) }),
		counter("cache_writes_total", "store write calls", func(s CacheStats) float64 { return float64(s.Writes) }),
		counter("cache_write_seconds_total", "seconds spent in store writes", func(s CacheStats) float64 { return s.WriteSeconds }),
		gauge("cache_queue_high_water_bytes", "largest tee queue seen, bytes", func(s CacheStats) float64 { return float64(s.QueueHighMark) }),
		counter("cache_damaged_values_total", "cached values found damaged (checksum mismatch): left out of every answer until the cloud replaces them", func(s CacheStats) float64 { return float64(s.DamagedValues) }),
		gauge("cache_active_streams", "responses being teed into the cache now", func(s CacheStats) float64 { return float64(s.ActiveStreams) }),
		gauge("cache_opaque_rv_resources", "resources not cached because their resourceVersions are not numbers (each logged once)", func(s CacheStats) float64 { return float64(s.OpaqueRVResources) }),
	)
}

// RegisterCertificates exports the hub's own certificates (token bootstrap): the
// expiry of the one in use (Unix seconds, 0 while there is none) and how many were
// obtained since start, per kind ("client", "server").
func (m *Metrics) RegisterCertificates(kinds []string, notAfter func(kind string) time.Time, rotations func(kind string) int64) {
	for _, k := range kinds {
		labels := prometheus.Labels{"kind": k}
		m.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: "certificate_expiration_timestamp_seconds",
				Help: "expiry of the hub's certificate in use, Unix seconds (0: none)", ConstLabels: labels},
				func() float64 {
					t := notAfter(k)
					if t.IsZero() {
						return 0
					}
					return float64(t.Unix())
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: "certificate_rotations_total",
				Help: "certificates obtained by CSR since start (the first one included)", ConstLabels: labels},
				func() float64 { return float64(rotations(k)) }),
		)
	}
}

// RegisterPlaceholderTokens exports how many placeholder service-account tokens the
// offline path handed out (localproxy.PlaceholderTokens).
func (m *Metrics) RegisterPlaceholderTokens(n func() int64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "offline_placeholder_tokens_total", Help: "placeholder service-account tokens handed out offline (not signed by the cluster)"},
		func() float64 { return float64(n()) }))
}
