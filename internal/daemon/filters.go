package daemon

import (
	"context"
	"log/slog"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/filter"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/metrics"
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
