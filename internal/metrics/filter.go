package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterFilter creates node_yurthub_filter_objects_total{filter,outcome}: objects
// the response filters rewrote or dropped, and those a filter (or the decoding,
// filter="decode") failed on and passed through unchanged (outcome "failed"). It
// returns the function package filter counts with (filter.Options.Count).
func (m *Metrics) RegisterFilter() func(filter, outcome string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "filter_objects_total", Help: "objects the response filters rewrote, dropped or failed on, by filter and outcome"},
		[]string{"filter", "outcome"})
	m.Registry.MustRegister(c)
	return func(filter, outcome string) { c.WithLabelValues(filter, outcome).Inc() }
}
