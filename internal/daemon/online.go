package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/connrotation"

	"github.com/yurthub/yurthub/internal/cachemgr"
	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/healthcheck"
	"github.com/yurthub/yurthub/internal/hubserver"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/metrics"
	"github.com/yurthub/yurthub/internal/multiplexer"
	"github.com/yurthub/yurthub/internal/nodeaddr"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Listener names, as logged and as returned by online.addr.
const (
	listenProxy            = "proxy"
	listenProxySecure      = "proxy-secure"
	listenProxyDummy       = "proxy-dummy"
	listenProxySecureDummy = "proxy-secure-dummy"
)

// onlineDeps are parts built elsewhere that the online path uses.
type onlineDeps struct {
	// Store is the open cache (edge mode); the online path runs the cache manager
	// over it. nil caches nothing.
	Store *store.Store
	// Local answers in edge mode when no backend is healthy (offline serving); nil
	// answers 503.
	Local http.Handler
}

// online is the online path: credentials, load balancer, health checker, proxy
// handler and its listeners, and the metrics and debug handlers on the hub server.
type online struct {
	log       *slog.Logger
	certs     certs.Source
	certMgr   *certs.Manager // token bootstrap; nil with kubelet's certificate
	dialer    *connrotation.Dialer
	metrics   *metrics.Metrics
	lb        *loadbalancer.Balancer
	health    *healthcheck.Checker
	proxy     *proxy.Proxy
	listeners *proxy.Listeners
	cache     *cachemgr.Manager        // nil in cloud mode
	mux       *multiplexer.Multiplexer // nil in cloud mode or without a cache
	nodeAddrs *nodeaddr.Set
	cancel    context.CancelFunc
	done      chan struct{}
	addrsDone chan struct{}
}

// credentialSource picks the certs.Source for --bootstrap-mode: kubelet's files, or
// the hub's own certificates by CSR (token bootstrap). servers lists the apiservers
// to ask for certificates, healthy first; onRotate runs when a new certificate of
// the hub is in use.
func credentialSource(cfg *config.Config, log *slog.Logger, servers func() []string, onRotate func(kind string, old, new *x509.Certificate)) (certs.Source, *certs.Manager, *certs.Bootstrap) {
	if cfg.BootstrapMode == config.BootstrapModeKubeletCertificate {
		return certs.NewKubeletSource(cfg.KubeletCAFile, cfg.KubeletClientCertificate, cfg.PKIDir()), nil, nil
	}
	b := &certs.Bootstrap{
		File:      cfg.BootstrapFile,
		JoinToken: cfg.JoinToken,
		Pins:      cfg.DiscoveryTokenCACertHashes,
		SkipPin:   cfg.DiscoveryTokenUnsafeSkipCAVerification,
		TokenFile: cfg.JoinTokenFile(),
	}
	nodeIP := cfg.NodeIP
	if nodeIP == nil {
		var err error
		if nodeIP, err = defaultRouteIPv4(); err != nil {
			log.Warn("no --node-ip and no default-route IPv4 address: the serving certificate names only the local addresses", slog.Any("err", err))
		}
	}
	var ips []net.IP
	for _, ip := range []net.IP{cfg.DummyIfIP, net.ParseIP(cfg.BindProxyAddress), nodeIP, net.IPv4(127, 0, 0, 1)} {
		if ip != nil && !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	m := certs.NewManager(certs.ManagerOptions{
		PKIDir:        cfg.PKIDir(),
		NodeName:      cfg.NodeName,
		Organizations: cfg.HubCertOrganizations,
		ServingIPs:    ips,
		Servers:       servers,
		Bootstrap:     b,
		Log:           log.With(slog.String("part", "certs")),
		OnRotate:      onRotate,
	})
	return m, m, b
}

func startOnline(ctx context.Context, cfg *config.Config, log *slog.Logger, hub *hubserver.Server, errc chan<- error, deps onlineDeps) (*online, error) {
	o := &online{log: log, metrics: metrics.New(), done: make(chan struct{})}
	// Connections made with the hub's client certificate are closed when a new one
	// is in use (as kubelet does), so none goes on with an identity that is replaced.
	o.dialer = connrotation.NewDialer((&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	servers := func() []string {
		var healthy, rest []string
		if o.lb == nil {
			for _, u := range cfg.ServerAddrs {
				rest = append(rest, u.String())
			}
			return rest
		}
		for _, b := range o.lb.Backends() {
			if b.Healthy() {
				healthy = append(healthy, b.String())
			} else {
				rest = append(rest, b.String())
			}
		}
		return append(healthy, rest...)
	}
	var bootstrap *certs.Bootstrap
	o.certs, o.certMgr, bootstrap = credentialSource(cfg, log, servers, func(kind string, old, _ *x509.Certificate) {
		if kind == certs.KindClient && old != nil {
			o.dialer.CloseAll()
			log.Info("connections made with the previous client certificate closed", slog.String("old_serial", old.SerialNumber.Text(16)))
		}
	})
	if err := o.certs.Ready(); err != nil {
		switch {
		case o.certMgr != nil && bootstrap.Present():
			log.Info("the hub has no usable client certificate yet: it requests one by CSR (token bootstrap); the proxy answers 503, or from the cache offline, until then",
				slog.String("state", err.Error()))
		case o.certMgr != nil:
			log.Error("the hub has no usable client certificate and no bootstrap credentials: give --bootstrap-file, or --join-token with --discovery-token-ca-cert-hash "+
				"(or POST /v1/token), or run with --bootstrap-mode=kubeletcertificate. The hub server runs; the proxy answers 503 until then",
				slog.String("state", err.Error()))
		default:
			log.Error("the hub's client credentials are not usable; the proxy answers 503 until they are", slog.Any("err", err))
		}
	}
	if o.certMgr != nil {
		o.metrics.RegisterCertificates([]string{certs.KindClient, certs.KindServer}, o.certMgr.NotAfter, o.certMgr.Rotations)
		hub.Handle("/v1/token", hubserver.TokenHandler(log, config.ValidJoinToken, func(token string) error {
			if err := bootstrap.SetJoinToken(token); err != nil {
				return err
			}
			o.certMgr.Retry()
			return nil
		}))
	} else {
		hub.Handle("/v1/token", hubserver.TokenHandler(log, config.ValidJoinToken, func(string) error {
			return errors.New("this hub runs with --bootstrap-mode=kubeletcertificate: it uses kubelet's certificate and keeps no join token")
		}))
	}
	hub.AddReadyCheck(hubserver.ReadyCheck{Name: "certificates", Check: o.certs.Ready})
	var proxyOpen atomic.Bool
	hub.AddReadyCheck(hubserver.ReadyCheck{Name: "proxy", Check: func() error {
		if !proxyOpen.Load() {
			return errors.New("the proxy port is not open yet")
		}
		return nil
	}})

	var err error
	o.lb, err = loadbalancer.New(cfg.ServerAddrs, loadbalancer.Options{
		Mode:             cfg.LBMode,
		InitiallyHealthy: cfg.WorkingMode == config.WorkingModeCloud,
		OnChange: func(b *loadbalancer.Backend, healthy bool, reason string) {
			v, to := 0.0, "unhealthy"
			if healthy {
				v, to = 1, "healthy"
			}
			o.metrics.ServerHealthy.WithLabelValues(b.String()).Set(v)
			o.metrics.BackendTransitions.WithLabelValues(b.String(), to).Inc()
			log.Info("apiserver "+to, slog.String("server", b.String()), slog.String("reason", reason))
		},
	})
	if err != nil {
		return nil, err
	}
	for _, b := range o.lb.Backends() {
		v := 0.0
		if b.Healthy() {
			v = 1
		}
		o.metrics.ServerHealthy.WithLabelValues(b.String()).Set(v)
	}
	o.health = healthcheck.New(o.lb, o.certs, healthcheck.Options{
		// healthcheck's own transport, dialled through the rotation dialer.
		NewBackendTransport: func() http.RoundTripper {
			return &http.Transport{
				DialContext:         o.dialer.DialContext,
				TLSClientConfig:     certs.UpstreamTLS(o.certs),
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     90 * time.Second,
			}
		},
		NodeName:           cfg.NodeName,
		HeartbeatInterval:  cfg.HeartbeatInterval,
		HeartbeatTimeout:   cfg.HeartbeatTimeout,
		FailedRetry:        cfg.HeartbeatFailedRetry,
		HealthyThreshold:   cfg.HeartbeatHealthyThreshold,
		KubeletGracePeriod: cfg.KubeletHealthGracePeriod,
		Log:                log.With(slog.String("part", "healthcheck")),
	})
	filters, err := newFilters(cfg, log, o.metrics)
	if err != nil {
		return nil, err
	}
	var cacher proxy.Cacher
	if cfg.WorkingMode == config.WorkingModeEdge && deps.Store != nil {
		o.cache = cachemgr.New(deps.Store, log.With(slog.String("part", "cache")), cachemgr.Options{ConfigNamespace: cfg.Namespace,
			OnConfig: filters.settings.Apply})
		cacher = o.cache
		o.metrics.RegisterCache(func() metrics.CacheStats {
			s := o.cache.Stats()
			return metrics.CacheStats{Responses: s.Responses, Objects: s.Objects, Events: s.Events, StaleEvents: s.StaleEvents,
				Overflows: s.Overflows, Failures: s.Failures, Writes: s.Writes, WriteSeconds: s.WriteSeconds,
				QueueHighMark: s.QueueHighMark, ActiveStreams: s.ActiveStreams, DamagedValues: deps.Store.DamagedValues(),
				OpaqueRVResources: s.OpaqueRVResources,
				TeedBytes:         s.TeedBytes, TeedBytesHigh: s.TeedBytesHigh}
		})
	}
	// The node's own addresses: the only sources a request without credentials is
	// taken from, since it goes upstream as the node (internal/proxy, anonymous.go).
	o.nodeAddrs = nodeaddr.New(log.With(slog.String("part", "nodeaddr")))
	certTransport := proxy.NewUpstreamTransport(certs.UpstreamTLS(o.certs))
	certTransport.DialContext = o.dialer.DialContext
	var mux proxy.Multiplexer
	if o.cache != nil && len(cfg.PoolScopeResources) > 0 {
		// --pool-scope-resources: one upstream list/watch per resource, as the hub
		// itself, serving every local list and watch of it (internal/multiplexer).
		o.mux, err = multiplexer.New(multiplexer.Options{
			Resources: cfg.PoolScopeResources,
			Store:     deps.Store,
			Backend: func() *url.URL {
				if b := o.lb.Pick(); b != nil {
					return b.URL
				}
				return nil
			},
			Transport:         certTransport,
			MinRequestTimeout: cfg.MinRequestTimeout,
			Filters:           filters.forMultiplexer,
			CloudHealthy:      o.lb.AnyHealthy,
			Log:               log.With(slog.String("part", "multiplexer")),
		})
		if err != nil {
			return nil, err
		}
		mux = o.mux
		o.metrics.RegisterMultiplexer(o.mux.Resources(), o.mux.State)
	}
	o.proxy, err = proxy.New(proxy.Options{
		WorkingMode:         cfg.WorkingMode,
		LB:                  o.lb,
		Certs:               o.certs,
		CertTransport:       certTransport,
		MaxRequestsInFlight: cfg.MaxRequestsInFlight,
		Filter:              filters.responses,
		Cacher:              withTokenCacher(deps.Local, cacher),
		Local:               deps.Local,
		Multiplexer:         mux,
		NodeAddrs:           o.nodeAddrs,
		OnRequest: func(info *requestinfo.Info) {
			if info.Component == "kubelet" {
				o.health.KubeletSeen()
			}
		},
		Metrics: o.metrics,
		Log:     log.With(slog.String("part", "proxy")),
	})
	if err != nil {
		return nil, err
	}

	hctx, cancel := context.WithCancel(ctx)
	o.cancel = cancel
	if o.certMgr != nil {
		o.certMgr.Start(hctx)
	}
	go func() {
		defer close(o.done)
		o.health.Run(hctx)
	}()
	o.addrsDone = make(chan struct{})
	go func() {
		defer close(o.addrsDone)
		o.nodeAddrs.Run(hctx)
	}()

	// Give the health checker a moment for its first verdict (a reachable apiserver
	// is healthy after HealthyThreshold probes, ~200ms apart; a refused one fails at
	// once), so the first requests are not answered locally for want of a probe.
	began := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	settled := o.health.Settled(wctx)
	wcancel()
	if o.mux != nil {
		o.mux.Start(hctx) // after the first verdict, so its first list goes out at once
	}
	log.Info("first health verdict", slog.Bool("settled", settled), slog.Bool("cloud_reachable", o.lb.AnyHealthy()),
		slog.Duration("waited", time.Since(began).Round(time.Millisecond)))

	o.listeners = proxy.NewListeners(o.proxy, log.With(slog.String("part", "proxy")), errc)
	if err := o.listeners.Listen(proxy.Spec{Name: listenProxy, Addr: cfg.ProxyAddr()}); err != nil {
		o.stop(context.Background())
		return nil, err
	}
	proxyOpen.Store(true)
	_, _, servingFile := certFiles(o.certs)
	servingReady := func() error {
		if _, err := o.certs.ServingCertificate(); err != nil {
			return fmt.Errorf("no serving certificate for the secure port (%s): %w", servingFile, err)
		}
		if _, err := o.certs.CAPool(); err != nil {
			return fmt.Errorf("no cluster CA to verify clients of the secure port: %w", err)
		}
		return nil
	}
	tlsCfg := certs.ServingTLS(o.certs)
	o.listeners.ListenWhenPossible(proxy.Spec{Name: listenProxySecure, Addr: cfg.ProxySecureAddr(), TLS: tlsCfg, Precondition: servingReady})
	if cfg.EnableDummyIf && !cfg.DummyIfIP.Equal(net.ParseIP(cfg.BindProxyAddress)) {
		dummy := cfg.DummyIfIP.String()
		o.listeners.ListenWhenPossible(proxy.Spec{Name: listenProxyDummy, Addr: net.JoinHostPort(dummy, strconv.Itoa(cfg.ProxyPort))})
		o.listeners.ListenWhenPossible(proxy.Spec{Name: listenProxySecureDummy, Addr: net.JoinHostPort(dummy, strconv.Itoa(cfg.ProxySecurePort)), TLS: tlsCfg, Precondition: servingReady})
	}

	if o.cache != nil {
		// cache_agents of ConfigMap <namespace>/yurt-hub-cfg, read through the hub's
		// own proxy port as component "yurthub", so it is cached like any response.
		self := &rest.Config{Host: "http://" + cfg.ProxyAddr(), UserAgent: "yurthub", QPS: -1}
		watch := func() {
			if err := o.cache.WatchConfigFromREST(hctx, self); err != nil {
				log.Warn("cache agents: not watching the hub config map", slog.Any("err", err))
			}
			if o.mux == nil {
				filters.watch(hctx, self)
				return
			}
			// The filters' Service informer is served by the multiplexer once it has
			// a state; started earlier, its watch would be one more upstream watch
			// of services for as long as it lasts.
			go func() {
				if !o.mux.WaitReady(hctx, 10*time.Second) {
					log.Info("multiplexer not ready after 10s; the filters' informers start anyway")
				}
				filters.watch(hctx, self)
			}()
		}
		hasCert := func() bool { return o.certMgr.NotAfter(certs.KindClient).After(time.Time{}) }
		if o.certMgr == nil || hasCert() {
			watch() // offline with an expired certificate too: the cached setting applies
		} else {
			// A first join: until the hub has a certificate, a watch would only log
			// failures saying the cloud is unreachable. Start it once the hub has its
			// certificate and the health checker has seen the cloud with it (or 5 s
			// later).
			go func() {
				var readySince time.Time
				for {
					select {
					case <-hctx.Done():
						return
					case <-time.After(200 * time.Millisecond):
					}
					if !hasCert() {
						continue
					}
					if readySince.IsZero() {
						readySince = time.Now()
					}
					if o.lb.AnyHealthy() || time.Since(readySince) > 5*time.Second {
						watch()
						return
					}
				}
			}()
		}
	}

	if o.cache == nil {
		// cloud mode: no cache and no yurt-hub-cfg watch, but servicetopology still
		// needs the Services and the NodePools
		filters.watch(hctx, &rest.Config{Host: "http://" + cfg.ProxyAddr(), UserAgent: "yurthub", QPS: -1})
	}

	hub.Handle("GET /metrics", o.metrics.Handler())
	if cfg.Profiling {
		hub.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
		hub.Handle("/debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
		hub.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		hub.Handle("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
		hub.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	return o, nil
}

func certFiles(src certs.Source) (ca, client, server string) {
	if f, ok := src.(interface {
		Files() (string, string, string)
	}); ok {
		return f.Files()
	}
	return "", "", ""
}

// stop ends long-running requests, closes the listeners (in-flight requests get until
// ctx ends) and stops the health checker.
func (o *online) stop(ctx context.Context) {
	o.proxy.CloseLongRunning()
	if o.listeners != nil {
		if err := o.listeners.Shutdown(ctx); err != nil {
			o.log.Warn("proxy listeners did not stop cleanly", slog.Any("err", err))
		}
	}
	o.cancel()
	<-o.done
	if o.addrsDone != nil {
		<-o.addrsDone
	}
	if o.mux != nil {
		o.mux.Stop()
	}
	if o.certMgr != nil {
		o.certMgr.Wait()
	}
	if o.cache != nil {
		o.cache.Close()
	}
}
