package metrics

import "github.com/prometheus/client_golang/prometheus"

// MultiplexerState is what the multiplexer reports of one resource.
type MultiplexerState struct {
	Ready    bool  // has a state to serve (listed, or loaded from the cache file)
	Watchers int   // local watches open now
	Lists    int64 // upstream lists since start (a relist after a 410 counts)
}

// RegisterMultiplexer exports the node-level multiplexer's state per pool-scope
// resource (label resource: "/v1/services", as --pool-scope-resources names it).
func (m *Metrics) RegisterMultiplexer(resources []string, state func(resource string) MultiplexerState) {
	for _, r := range resources {
		labels := prometheus.Labels{"resource": r}
		m.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: "multiplexer_ready",
				Help: "1 when the multiplexer has a state of the resource to serve", ConstLabels: labels},
				func() float64 {
					if state(r).Ready {
						return 1
					}
					return 0
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: "multiplexer_watchers",
				Help: "local watches the multiplexer serves now", ConstLabels: labels},
				func() float64 { return float64(state(r).Watchers) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: "multiplexer_upstream_lists_total",
				Help: "lists of the resource the multiplexer made upstream (a relist after a 410 counts)", ConstLabels: labels},
				func() float64 { return float64(state(r).Lists) }),
		)
	}
}
