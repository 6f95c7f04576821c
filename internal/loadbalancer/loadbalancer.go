// Package loadbalancer picks the cloud kube-apiserver (backend) for each proxied
// request from --server-addr: rr takes the healthy backends in turn, priority takes the
// first healthy one in the order given.
//
// Health is a flag on each Backend. The health checker (package healthcheck) sets it
// from its probes; the proxy clears it at once when a request to the backend fails to
// connect (MarkUnhealthy), and only the health checker puts a backend back. A change
// is reported to the OnChange hook (metrics, logs, waking the health checker).
package loadbalancer

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yurthub/yurthub/internal/config"
)

// Backend is one apiserver.
type Backend struct {
	URL *url.URL

	lb      *Balancer
	healthy atomic.Bool

	mu        sync.Mutex
	changedAt time.Time
	reason    string
}

// Healthy reports whether the backend takes requests.
func (b *Backend) Healthy() bool { return b.healthy.Load() }

// String is the backend's URL.
func (b *Backend) String() string { return b.URL.String() }

// State returns the health, when it last changed and why.
func (b *Backend) State() (healthy bool, since time.Time, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy.Load(), b.changedAt, b.reason
}

// MarkHealthy puts the backend (back) in rotation. It reports whether that changed it.
func (b *Backend) MarkHealthy(reason string) bool { return b.set(true, reason) }

// MarkUnhealthy takes the backend out of rotation. It reports whether that changed it.
func (b *Backend) MarkUnhealthy(reason string) bool { return b.set(false, reason) }

func (b *Backend) set(healthy bool, reason string) bool {
	b.mu.Lock()
	if b.healthy.Load() == healthy {
		b.mu.Unlock()
		return false
	}
	b.healthy.Store(healthy)
	b.changedAt = time.Now()
	b.reason = reason
	b.mu.Unlock()
	if f := b.lb.onChange; f != nil {
		f(b, healthy, reason)
	}
	return true
}

// Balancer picks backends.
type Balancer struct {
	mode     string
	backends []*Backend
	next     atomic.Uint64
	onChange func(b *Backend, healthy bool, reason string)
}

// Options configure a Balancer.
type Options struct {
	// Mode is config.LBModeRoundRobin or config.LBModePriority.
	Mode string
	// InitiallyHealthy starts every backend healthy (cloud mode, tests); otherwise a
	// backend takes requests only once the health checker has seen it healthy.
	InitiallyHealthy bool
	// OnChange is called after a backend's health changed (outside any lock).
	OnChange func(b *Backend, healthy bool, reason string)
}

// New returns a Balancer over urls, in the order given.
func New(urls []*url.URL, opts Options) (*Balancer, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("load balancer: no apiserver address; give --server-addr")
	}
	switch opts.Mode {
	case config.LBModeRoundRobin, config.LBModePriority:
	default:
		return nil, fmt.Errorf("load balancer: unknown mode %q; use %s or %s", opts.Mode, config.LBModeRoundRobin, config.LBModePriority)
	}
	lb := &Balancer{mode: opts.Mode, onChange: opts.OnChange}
	for _, u := range urls {
		b := &Backend{URL: u, lb: lb, changedAt: time.Now(), reason: "not checked yet"}
		b.healthy.Store(opts.InitiallyHealthy)
		lb.backends = append(lb.backends, b)
	}
	return lb, nil
}

// Backends returns every backend in --server-addr order.
func (lb *Balancer) Backends() []*Backend { return lb.backends }

// Mode is rr or priority.
func (lb *Balancer) Mode() string { return lb.mode }

// Pick returns the backend for the next request, or nil when none is healthy. skip
// lists backends already tried for this request (a retry after a connection error).
func (lb *Balancer) Pick(skip ...*Backend) *Backend {
	n := len(lb.backends)
	if lb.mode == config.LBModePriority {
		for _, b := range lb.backends {
			if b.Healthy() && !contains(skip, b) {
				return b
			}
		}
		return nil
	}
	start := int(lb.next.Add(1)-1) % n
	for i := 0; i < n; i++ {
		b := lb.backends[(start+i)%n]
		if b.Healthy() && !contains(skip, b) {
			return b
		}
	}
	return nil
}

// PickAny is Pick without health gating (cloud mode): a healthy backend when there is
// one, otherwise the next one in turn, so a request is always tried.
func (lb *Balancer) PickAny(skip ...*Backend) *Backend {
	if b := lb.Pick(skip...); b != nil {
		return b
	}
	n := len(lb.backends)
	start := int(lb.next.Add(1)-1) % n
	for i := 0; i < n; i++ {
		if b := lb.backends[(start+i)%n]; !contains(skip, b) {
			return b
		}
	}
	return nil
}

// AnyHealthy reports whether some backend is healthy.
func (lb *Balancer) AnyHealthy() bool {
	for _, b := range lb.backends {
		if b.Healthy() {
			return true
		}
	}
	return false
}

func contains(list []*Backend, b *Backend) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}
