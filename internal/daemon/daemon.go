// Package daemon runs the hub: it takes a validated config.Config and one logger,
// starts every part in order, reports readiness to systemd, and shuts everything
// down in reverse order when its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/hubserver"
	"github.com/yurthub/yurthub/internal/localproxy"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/sdnotify"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/version"
)

// ShutdownTimeout bounds a graceful shutdown: in-flight requests get this long.
const ShutdownTimeout = 10 * time.Second

// Run runs the hub until ctx is cancelled (SIGTERM/SIGINT) or a part fails.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	log.Info("starting yurthub",
		slog.String("version", version.Version),
		slog.String("node", cfg.NodeName),
		slog.String("mode", cfg.WorkingMode),
		slog.Int("servers", len(cfg.ServerAddrs)))
	for _, in := range cfg.Inert() {
		log.Warn("flag accepted but it has no effect yet: its feature is not built in this hub",
			slog.String("flag", "--"+in.Flag), slog.String("value", in.Value))
	}

	if err := os.MkdirAll(cfg.RootDir, 0o700); err != nil {
		return fmt.Errorf("create --root-dir %s: %w", cfg.RootDir, err)
	}
	securePermissions(cfg.RootDir, log)

	errc := make(chan error, 4)
	// Edge mode: the cache file (migrated on open, incl. the one-time OpenYurt
	// import) and the admin socket hubctl asks while the file is locked.
	var cache *store.Store
	if cfg.WorkingMode == config.WorkingModeEdge {
		compactAtStart(cfg, log) // house.go
		var err error
		cache, err = store.Open(cfg.CacheFile(), store.Options{OpenYurtCacheDir: cfg.DiskCachePath, Log: log,
			// A large list leaves its buffers free in the Go heap; the runtime's
			// scavenger returns them to the OS over minutes. Once the node is idle
			// again, give them back at once (one forced GC, a few ms for a heap of
			// this size): the 10k-pod bench measured 11 MiB of such free heap
			// still resident 6 s after its lists.
			AfterIdleDrop: debug.FreeOSMemory})
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNoSpace):
			// A full disk must not take the node's proxy down (systemd would only
			// restart it into the same failure): run as a plain proxy, say so.
			log.Error("the cache cannot be opened because the disk is full: running as a plain proxy with no cache and no offline path; free space and restart yurthub",
				slog.Any("err", err))
			cache = nil
		default:
			return fmt.Errorf("open the cache: %w", err)
		}
	}
	if cache != nil {
		defer cache.Close()
		adm, err := admin.Listen(cfg.AdminSocket(), cache, log, errc)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			_ = adm.Shutdown(sctx)
		}()
	}
	// The node network (network.go): dummy interface and iptables rules, ensured
	// before the listeners that bind the dummy IP; never fatal.
	netw := startNetwork(ctx, cfg, log)
	hub := hubserver.New(log)
	if err := hub.Serve(cfg.ServeAddr(), errc); err != nil {
		return err
	}
	// The online path (online.go): proxy ports, load balancer, health checker,
	// /metrics. It starts whether or not the cloud answers.
	// The offline path (internal/localproxy) answers from the cache when no backend
	// is healthy; its watches end once one is healthy again.
	deps := onlineDeps{Store: cache}
	var local *localproxy.Handler
	gcCount := &gcCounter{}
	if cache != nil {
		var err error
		local, err = localproxy.New(localproxy.Options{Store: cache, Log: log.With(slog.String("part", "localproxy")), MinRequestTimeout: cfg.MinRequestTimeout, GCCount: gcCount.Count})
		if err != nil {
			return fmt.Errorf("offline path: %w", err)
		}
		deps.Local = local
	}
	on, err := startOnline(ctx, cfg, log, hub, errc, deps)
	if err != nil {
		_ = hub.Shutdown(context.Background())
		netw.stop(false)
		return err
	}
	netw.register(on.metrics.Registry)
	if local != nil {
		local.SetCloudHealthy(on.lb.AnyHealthy)
		if on.mux != nil {
			// The offline EndpointSlice repair reaches the multiplexed state too.
			local.SetOnLocalChange(on.mux.LocalChange)
		}
		on.metrics.RegisterPlaceholderTokens(localproxy.PlaceholderTokens)
	}
	// /pods, OTA, the start-up pod GC and the periodic GC (house.go).
	gcCount.set(on.metrics.RegisterGC())
	house := startHousekeeping(ctx, cfg, log, hub, on, cache, gcCount.Count)
	defer house.stop()

	if sent, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("cannot tell systemd the hub is ready", slog.Any("err", err))
	} else if sent {
		log.Info("told systemd the hub is ready")
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", slog.Duration("deadline", ShutdownTimeout))
	case runErr = <-errc:
		log.Error("a part of the hub failed, shutting down", slog.Any("err", runErr))
	}
	_, _ = sdnotify.Notify(sdnotify.Stopping)

	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if local != nil {
		local.Close() // local watches end now rather than holding the listeners' shutdown
	}
	on.stop(sctx)
	if err := hub.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("hub server did not stop cleanly", slog.Any("err", err))
	}
	netw.stop(runErr == nil) // undo only on a clean shutdown (SIGTERM/SIGINT)
	log.Info("stopped")
	return runErr
}

// withTokenCacher puts the offline path's recorder of service-account token
// responses (localproxy.Handler.TokenCacher) in front of the cache manager, so a pod
// restarting offline can get the last token the cloud issued. No cache manager
// (cloud mode) or no local handler: c unchanged.
func withTokenCacher(local http.Handler, c proxy.Cacher) proxy.Cacher {
	if l, ok := local.(*localproxy.Handler); ok && l != nil && c != nil {
		return l.TokenCacher(c)
	}
	return c
}
