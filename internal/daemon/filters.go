package daemon

import (
	"context"
	"log/slog"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/filter"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/metrics"
	"github.com/yurthub/yurthub/internal/multiplexer"
	"github.com/yurthub/yurthub/internal/requestinfo"
)

// hubFilters are the response filters and what feeds them.
type hubFilters struct {
	settings  *filter.Settings
	cfg       *config.Config
	services  *filter.ServiceStore
	responses *filter.Responses
	pool      *filter.StaticPool
	log       *slog.Logger
}

// newFilters builds the response filters from the flags (--enable-resource-filter,
// --disabled-resource-filters, the working mode, the hub's address for pods). The
// yurt-hub-cfg keys are applied later, by the cache manager's ConfigMap watch.
func newFilters(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*hubFilters, error) {
	log = log.With(slog.String("part", "filter"))
	host := cfg.BindProxyAddress
	if cfg.EnableDummyIf {
		host = cfg.DummyIfIP.String()
	}
	pool := &filter.StaticPool{}
	pool.Set(cfg.NodePoolName, nil) // membership unknown until the NodePool watch has it
	services := filter.NewServiceStore()
	s, err := filter.New(filter.Options{
		Enabled:   cfg.EnableResourceFilter,
		Disabled:  cfg.DisabledResourceFilters,
		CloudMode: cfg.WorkingMode == config.WorkingModeCloud,
		Env: filter.Env{NodeName: cfg.NodeName, HubHost: host, HubPort: int32(cfg.ProxySecurePort),
			PoolTopology: cfg.EnablePoolServiceTopology || cfg.EnableNodePool, Pool: pool, Services: services},
		Log:   log,
		Count: m.RegisterFilter(),
	})
	if err != nil {
		return nil, err
	}
	log.Info("response filters", slog.Any("enabled", s.Enabled()), slog.String("hub_address", host),
		slog.Int("hub_port", cfg.ProxySecurePort), slog.String("nodepool", cfg.NodePoolName))
	spool := cfg.RootDir
	if fi, err := os.Stat(spool); err != nil || !fi.IsDir() {
		spool = ""
	}
	return &hubFilters{settings: s, cfg: cfg, services: services, pool: pool, log: log,
		responses: &filter.Responses{Settings: s, SpoolDir: spool, Log: log}}, nil
}

// watch starts what the filters read from the cluster, through the hub's own
// proxy port as component "yurthub" (so it is cached and known after an offline
// restart): the Services, for servicetopology, and the NodePools (with
// --enable-node-pool or --enable-pool-service-topology).
func (f *hubFilters) watch(ctx context.Context, self *rest.Config) {
	if len(f.settings.Enabled()) == 0 {
		return
	}
	if f.settings.Env().PoolTopology {
		np := &filter.NodePools{NodeName: f.cfg.NodeName, FlagPool: f.cfg.NodePoolName, Pool: f.pool, Log: f.log,
			OnChange: func(reason string) {
				f.settings.EndStreams(filter.ServiceTopology, reason)
				f.settings.EndStreams(filter.NodePortIsolation, reason)
			}}
		go np.Run(ctx, rest.CopyConfig(self))
	}
	c, err := kubescheme.NewRESTClient(self, corev1.SchemeGroupVersion)
	if err != nil {
		f.log.Warn("filters: no client for the Service watch; servicetopology leaves endpoints unfiltered", slog.Any("err", err))
		return
	}
	f.services.Start(ctx, c, f.log, func(ns, name string) {
		f.settings.EndStreams(filter.ServiceTopology, "service "+ns+"/"+name+" topology changed")
	})
}

// forMultiplexer is the multiplexer's filter hook (multiplexer.Filters): the
// chain of the response filters that applies to one client's list or watch of a
// multiplexed resource, applied to that client's objects only. nil (a plain nil,
// not a typed one) when no filter applies.
func (f *hubFilters) forMultiplexer(info *requestinfo.Info) multiplexer.ClientFilter {
	c := f.settings.ChainFor(info.Component, info.Verb, schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource})
	if c == nil {
		return nil
	}
	return muxChain{c: c, s: f.settings}
}

// muxChain adapts a filter.Chain to multiplexer.ClientFilter.
type muxChain struct {
	c *filter.Chain
	s *filter.Settings
}

func encodingOf(proto bool) filter.Encoding {
	if proto {
		return filter.Protobuf
	}
	return filter.JSON
}

func (m muxChain) Object(data []byte, proto bool) ([]byte, bool, error) {
	return m.c.Bytes(data, encodingOf(proto))
}

// NewWatch tracks the watch with the filter settings, so that a change the
// objects do not show (a Service's topology annotation, the node's pool) ends it
// with 410 and its client relists, as a proxied filtered watch is ended.
func (m muxChain) NewWatch() multiplexer.WatchFilter {
	end, done := m.s.Track(m.c)
	return &muxWatch{w: m.c.NewWatch(), end: end, done: done}
}

// muxWatch adapts a filter.Watch to multiplexer.WatchFilter and multiplexer.Ender.
type muxWatch struct {
	w    *filter.Watch
	end  <-chan struct{}
	done func()
}

func (w *muxWatch) Event(typ string, data []byte, proto bool) (string, []byte, bool, error) {
	return w.w.Event(typ, data, encodingOf(proto))
}

func (w *muxWatch) End() <-chan struct{} { return w.end }
func (w *muxWatch) Close()               { w.done() }
