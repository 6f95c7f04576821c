package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterGC creates node_yurthub_gc_objects_total{kind,reason}: objects the cache's
// garbage collection dropped, by kind ("pods", "events.events.k8s.io", ...) and
// reason (deleted_in_cloud, event_expired, not_refreshed, event_cap; see package
// gc). It returns the function the collectors count with.
func (m *Metrics) RegisterGC() func(kind, reason string, n int) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "gc_objects_total", Help: "objects dropped from the cache by garbage collection, by kind and reason"},
		[]string{"kind", "reason"})
	m.Registry.MustRegister(c)
	return func(kind, reason string, n int) {
		if n > 0 {
			c.WithLabelValues(kind, reason).Add(float64(n))
		}
	}
}
