// Package healthcheck decides which cloud apiservers (load-balancer backends) are
// healthy, and renews the node's Lease as the hub's heartbeat.
//
// One goroutine per backend:
//
//   - Every ProbeInterval (500ms) while healthy, every RecoverInterval (200ms) while
//     not, it probes the backend with GET /readyz using the hub's own client
//     certificate. A shutting-down apiserver fails /readyz, so it is left before it
//     closes connections.
//   - Every --heartbeat-interval-seconds the probe is instead the heartbeat: the hub
//     renews Lease kube-node-lease/<node> (creating it if missing) through that backend
//     with its own credentials, as OpenYurt does. The heartbeat stops while kubelet has
//     not been seen for --kubelet-health-grace-period (KubeletSeen is called by the
//     proxy for every kubelet request), so a node whose kubelet died goes NotReady.
//   - A backend becomes healthy after --heartbeat-healthy-threshold consecutive
//     successes. A failed probe is retried at once up to --heartbeat-failed-retry
//     times; the backend is unhealthy when all fail. While healthy, every probe and
//     retry is also cut short at LossDeadline (1.5s) after the last success, so a
//     hanging cloud is declared unhealthy within that time of its last good answer.
//   - Only transport errors and 5xx answers count as failures: an apiserver that
//     answers 403 to the Lease is reachable (the error is logged).
//
// With the defaults, a refused connection is noticed within one probe interval
// (~0.5s), a hanging cloud within ~1.5-2s, and recovery within 2 x 200ms plus the
// apiserver's own readiness. The proxy also marks a backend unhealthy at once when a
// request to it fails to connect.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/loadbalancer"
)

// LeaseNamespace is where node leases live.
const LeaseNamespace = "kube-node-lease"

// Defaults for the fast probe (not OpenYurt flags: OpenYurt has no fast probe).
const (
	DefaultProbeInterval   = 500 * time.Millisecond
	DefaultRecoverInterval = 200 * time.Millisecond
	DefaultLossDeadline    = 1500 * time.Millisecond
	DefaultProbeTimeout    = time.Second
	leaseDurationSeconds   = 40
)

// Options configure a Checker. Zero durations take the defaults above.
type Options struct {
	NodeName            string
	HeartbeatInterval   time.Duration // --heartbeat-interval-seconds
	HeartbeatTimeout    time.Duration // --heartbeat-timeout-seconds (Lease requests)
	FailedRetry         int           // --heartbeat-failed-retry
	HealthyThreshold    int           // --heartbeat-healthy-threshold
	KubeletGracePeriod  time.Duration // --kubelet-health-grace-period
	ProbeInterval       time.Duration
	RecoverInterval     time.Duration
	LossDeadline        time.Duration
	ProbeTimeout        time.Duration // per probe attempt; capped by HeartbeatTimeout
	Log                 *slog.Logger
	NewBackendTransport func() http.RoundTripper // default: certs.UpstreamTLS over http.Transport
}

// Checker runs the health checks.
type Checker struct {
	lb   *loadbalancer.Balancer
	src  certs.Source
	opts Options
	log  *slog.Logger

	kubeletSeen atomic.Int64 // unix nanos

	mu         sync.Mutex
	leaseState map[string]string // backend -> last lease result, for logs

	// settled[i] is closed when backend i has its first verdict (healthy, or a failed
	// probe round).
	settled []chan struct{}
}

// New returns a Checker over lb's backends using src's credentials.
func New(lb *loadbalancer.Balancer, src certs.Source, opts Options) *Checker {
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.RecoverInterval <= 0 {
		opts.RecoverInterval = DefaultRecoverInterval
	}
	if opts.LossDeadline <= 0 {
		opts.LossDeadline = DefaultLossDeadline
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	if opts.HeartbeatTimeout > 0 && opts.ProbeTimeout > opts.HeartbeatTimeout {
		opts.ProbeTimeout = opts.HeartbeatTimeout
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = 2 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 10 * time.Second
	}
	if opts.HealthyThreshold <= 0 {
		opts.HealthyThreshold = 1
	}
	if opts.FailedRetry < 0 {
		opts.FailedRetry = 0
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.NewBackendTransport == nil {
		opts.NewBackendTransport = func() http.RoundTripper {
			return &http.Transport{
				TLSClientConfig:     certs.UpstreamTLS(src),
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     90 * time.Second,
			}
		}
	}
	c := &Checker{lb: lb, src: src, opts: opts, log: opts.Log, leaseState: map[string]string{}}
	for range lb.Backends() {
		c.settled = append(c.settled, make(chan struct{}))
	}
	c.kubeletSeen.Store(time.Now().UnixNano())
	return c
}

// Settled blocks until some backend is healthy or every backend has had its first
// verdict, or ctx ends. The daemon waits on it (briefly) before opening the proxy
// ports, so the first requests after a start are not answered locally just because
// no probe has finished yet.
func (c *Checker) Settled(ctx context.Context) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.lb.AnyHealthy() {
			return true
		}
		all := true
		for _, ch := range c.settled {
			select {
			case <-ch:
			default:
				all = false
			}
		}
		if all {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// KubeletSeen records that kubelet sent a request just now.
func (c *Checker) KubeletSeen() { c.kubeletSeen.Store(time.Now().UnixNano()) }

func (c *Checker) kubeletAlive() bool {
	if c.opts.KubeletGracePeriod <= 0 {
		return true
	}
	return time.Since(time.Unix(0, c.kubeletSeen.Load())) < c.opts.KubeletGracePeriod
}

// Run checks every backend until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, b := range c.lb.Backends() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runBackend(ctx, b, c.settled[i])
		}()
	}
	wg.Wait()
}

type backendProber struct {
	c      *Checker
	b      *loadbalancer.Backend
	hc     *http.Client
	leases leaseInterface
	log    *slog.Logger
}

// leaseInterface is the part of a Lease client the heartbeat uses.
type leaseInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error)
	Create(ctx context.Context, l *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error)
	Update(ctx context.Context, l *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error)
}

// leaseClient does what client-go's typed Leases(kube-node-lease) client does, with
// the same requests: protobuf preferred (JSON accepted), the options as query
// parameters.
type leaseClient struct{ c rest.Interface }

// newLeaseClient is a Lease client for cfg (cfg is copied, not changed).
func newLeaseClient(cfg *rest.Config) (*leaseClient, error) {
	c, err := kubescheme.NewRESTClient(cfg, coordinationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &leaseClient{c: c}, nil
}

func (l *leaseClient) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := l.c.Get().UseProtobufAsDefault().Namespace(LeaseNamespace).Resource("leases").Name(name).
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

func (l *leaseClient) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := l.c.Post().UseProtobufAsDefault().Namespace(LeaseNamespace).Resource("leases").
		VersionedParams(&opts, metav1.ParameterCodec).Body(lease).Do(ctx).Into(out)
	return out, err
}

func (l *leaseClient) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := l.c.Put().UseProtobufAsDefault().Namespace(LeaseNamespace).Resource("leases").Name(lease.Name).
		VersionedParams(&opts, metav1.ParameterCodec).Body(lease).Do(ctx).Into(out)
	return out, err
}

func (c *Checker) runBackend(ctx context.Context, b *loadbalancer.Backend, settled chan struct{}) {
	var once sync.Once
	settle := func() { once.Do(func() { close(settled) }) }
	rt := c.opts.NewBackendTransport()
	p := &backendProber{c: c, b: b, hc: &http.Client{Transport: rt}, log: c.log.With(slog.String("server", b.String()))}
	leases, err := newLeaseClient(&rest.Config{Host: b.URL.String(), Transport: rt, UserAgent: "yurthub", QPS: -1})
	if err != nil {
		p.log.Error("health checker: cannot build a client for the backend", slog.Any("err", err))
		return
	}
	p.leases = leases

	var (
		successes   int
		lastSuccess time.Time
		lastLease   time.Time
		lastErr     string // logged once per distinct reason while failing
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		heartbeat := c.kubeletAlive() && b.Healthy() && time.Since(lastLease) >= c.opts.HeartbeatInterval
		// budget bounds each attempt while healthy: nothing may push the verdict past
		// LossDeadline after the last success.
		budget := func() time.Duration {
			if !b.Healthy() || lastSuccess.IsZero() {
				return time.Hour
			}
			return c.opts.LossDeadline - time.Since(lastSuccess)
		}
		err := p.probe(ctx, heartbeat, budget())
		if heartbeat && err == nil {
			lastLease = time.Now()
		}
		for try := 0; err != nil && try < c.opts.FailedRetry && ctx.Err() == nil; try++ {
			left := budget()
			if left <= 0 {
				break // a hanging cloud: no time left for retries
			}
			err = p.probe(ctx, false, left)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes++
			lastSuccess = time.Now()
			lastErr = ""
			if !b.Healthy() && successes >= c.opts.HealthyThreshold {
				b.MarkHealthy(fmt.Sprintf("%d consecutive successful probes", successes))
			}
			if b.Healthy() {
				settle()
			}
		} else {
			successes = 0
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				p.log.Warn("apiserver probe failing", slog.Any("err", err), slog.Bool("was_healthy", b.Healthy()))
			}
			if b.Healthy() {
				b.MarkUnhealthy(fmt.Sprintf("probe failed %d times: %v", c.opts.FailedRetry+1, err))
			}
			settle()
		}
		if b.Healthy() {
			timer.Reset(c.opts.ProbeInterval)
		} else {
			timer.Reset(c.opts.RecoverInterval)
		}
	}
}

// errUnhealthy wraps answers that mean the backend is not serving.
var errUnhealthy = errors.New("backend not serving")

// probe returns nil when the backend is reachable and serving.
func (p *backendProber) probe(ctx context.Context, heartbeat bool, limit time.Duration) error {
	if limit <= 0 {
		return fmt.Errorf("%w: no answer within %s of the last success", errUnhealthy, p.c.opts.LossDeadline)
	}
	ctx, cancelLimit := context.WithTimeout(ctx, limit)
	defer cancelLimit()
	if heartbeat {
		err := p.renewLease(ctx)
		if err == nil || !isReachabilityError(err) {
			p.noteLease(err)
			return nil
		}
		p.noteLease(err)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.opts.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.b.URL.String()+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "yurthub")
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%w: /readyz answered %s", errUnhealthy, resp.Status)
	}
	return nil
}

func (p *backendProber) noteLease(err error) {
	msg := "ok"
	if err != nil {
		msg = err.Error()
	}
	p.c.mu.Lock()
	prev := p.c.leaseState[p.b.String()]
	p.c.leaseState[p.b.String()] = msg
	p.c.mu.Unlock()
	if msg != prev {
		if err != nil {
			p.log.Warn("cannot renew the node lease", slog.String("lease", LeaseNamespace+"/"+p.c.opts.NodeName), slog.Any("err", err))
		} else {
			p.log.Info("renewing the node lease", slog.String("lease", LeaseNamespace+"/"+p.c.opts.NodeName))
		}
	}
}

// isReachabilityError is true for errors that say the backend is not there or not
// serving (transport errors, timeouts, 5xx), false for ordinary API answers.
func isReachabilityError(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= 500 || code == 0
	}
	return true
}

func (p *backendProber) renewLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.c.opts.HeartbeatTimeout)
	defer cancel()
	node := p.c.opts.NodeName
	now := metav1.NewMicroTime(time.Now())
	lease, err := p.leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = p.leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: LeaseNamespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(node),
				LeaseDurationSeconds: ptr.To[int32](leaseDurationSeconds),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create lease %s/%s: %w", LeaseNamespace, node, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s/%s: %w", LeaseNamespace, node, err)
	}
	lease.Spec.RenewTime = &now
	if lease.Spec.HolderIdentity == nil {
		lease.Spec.HolderIdentity = ptr.To(node)
	}
	if lease.Spec.LeaseDurationSeconds == nil {
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDurationSeconds)
	}
	if _, err := p.leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update lease %s/%s: %w", LeaseNamespace, node, err)
	}
	return nil
}
