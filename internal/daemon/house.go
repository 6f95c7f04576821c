package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/gc"
	"github.com/yurthub/yurthub/internal/hubserver"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/ota"
	"github.com/yurthub/yurthub/internal/store"
)

// The cache's housekeeping and the hub server's node endpoints (issue 17):
// compaction before the cache opens, GET /pods and the OTA endpoints, the start-up
// pod GC once the cloud is reachable, and the periodic GC.

// compactAtStart compacts the cache file before it is opened when its free pages
// exceed half the file and 64 MiB (store.ShouldCompact). A failure is logged and
// the file used as it is.
func compactAtStart(cfg *config.Config, log *slog.Logger) {
	res, err := store.Compact(cfg.CacheFile(), store.CompactOptions{})
	switch {
	case err != nil:
		log.Warn("cache compaction at start failed; the cache is used as it is", slog.Any("err", err))
	case res.Compacted:
		log.Info("cache compacted at start", slog.String("cache", cfg.CacheFile()),
			slog.Int64("size_before", res.SizeBefore), slog.Int64("size_after", res.SizeAfter),
			slog.Int64("reclaimed", res.SizeBefore-res.SizeAfter), slog.Duration("took", res.Took.Round(time.Millisecond)))
	case res.Reason != "no cache file":
		log.Debug("cache not compacted at start", slog.String("reason", res.Reason))
	}
}

// gcCounter lets the offline path count before the metrics exist (they are made
// by the online path, after it).
type gcCounter struct {
	fn atomic.Pointer[func(kind, reason string, n int)]
}

func (c *gcCounter) set(fn func(kind, reason string, n int)) { c.fn.Store(&fn) }

func (c *gcCounter) Count(kind, reason string, n int) {
	if fn := c.fn.Load(); fn != nil {
		(*fn)(kind, reason, n)
	}
}

// cloudClient returns a core/v1 client to a healthy cloud apiserver, made as the
// hub itself (its client certificate), never through its own proxy (whose answers
// would be cached, or served from the cache offline).
func cloudClient(on *online) func() (*rest.RESTClient, error) {
	tr := &http.Transport{TLSClientConfig: certs.UpstreamTLS(on.certs), ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}
	return func() (*rest.RESTClient, error) {
		b := on.lb.Pick()
		if b == nil {
			return nil, fmt.Errorf("%w (no healthy apiserver among %d)", ota.ErrOffline, len(on.lb.Backends()))
		}
		return kubescheme.NewRESTClient(&rest.Config{Host: b.URL.String(), Transport: tr, UserAgent: "yurthub", QPS: -1, Timeout: time.Minute},
			corev1.SchemeGroupVersion)
	}
}

// listNodePods lists the node's pods in the cloud, 500 at a time.
func listNodePods(cloud func() (*rest.RESTClient, error), node string) gc.CloudPods {
	return func(ctx context.Context) (map[string]bool, error) {
		c, err := cloud()
		if err != nil {
			return nil, err
		}
		out := map[string]bool{}
		cont := ""
		for {
			var l corev1.PodList
			req := c.Get().Resource("pods").Param("fieldSelector", "spec.nodeName="+node).Param("limit", "500")
			if cont != "" {
				req = req.Param("continue", cont)
			}
			if err := req.Do(ctx).Into(&l); err != nil {
				return nil, fmt.Errorf("list pods of node %s: %w", node, err)
			}
			for _, p := range l.Items {
				out[p.Namespace+"/"+p.Name] = true
			}
			if cont = l.Continue; cont == "" {
				return out, nil
			}
		}
	}
}

// housekeeping is the GC goroutines.
type housekeeping struct {
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// startHousekeeping registers /pods and the OTA endpoints and, with a cache,
// starts the start-up pod GC (once the cloud is reachable) and the periodic GC.
func startHousekeeping(ctx context.Context, cfg *config.Config, log *slog.Logger, hub *hubserver.Server, on *online, cache *store.Store, count func(kind, reason string, n int)) *housekeeping {
	cloud := cloudClient(on)
	ota.Register(hub, ota.Options{Store: cache, Node: cfg.NodeName, Cloud: cloud,
		BackupDir: filepath.Join(cfg.RootDir, "ota-backup"), Log: log})
	ctx, cancel := context.WithCancel(ctx)
	h := &housekeeping{cancel: cancel}
	if cache == nil {
		return h
	}
	glog := log.With(slog.String("part", "gc"))
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for !on.lb.AnyHealthy() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		g := &gc.PodGC{Store: cache, Node: cfg.NodeName, List: listNodePods(cloud, cfg.NodeName), Log: log, Count: count}
		if _, err := g.Run(ctx); err != nil && ctx.Err() == nil {
			glog.Warn("gc: start-up pod GC failed", slog.Any("err", err))
		}
	}()
	go func() {
		defer h.wg.Done()
		(&gc.Collector{Store: cache, Frequency: cfg.GCFrequency, Online: on.lb.AnyHealthy, Log: log, Count: count}).Run(ctx)
	}()
	return h
}

func (h *housekeeping) stop() {
	h.cancel()
	h.wg.Wait()
}
