package gc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// FewPods: a cloud answer that would remove every cached pod of this node is
// applied only when the cache holds at most this many (a node whose last pods were
// really deleted); above it the answer is distrusted and logged.
const FewPods = 3

// PodsResource is core/v1 pods.
var PodsResource = store.Resource{Version: "v1", Resource: "pods"}

// CloudPods lists the pods the cloud has bound to this node (fieldSelector
// spec.nodeName=<node>), as "namespace/name".
type CloudPods func(ctx context.Context) (map[string]bool, error)

// PodGC is the start-up GC of this node's pods.
type PodGC struct {
	Store *store.Store
	Node  string
	List  CloudPods
	// Timeout bounds the cloud's list (default 30s).
	Timeout time.Duration
	Log     *slog.Logger
	// Count receives the objects dropped, by kind and reason (may be nil).
	Count func(kind, reason string, n int)
}

// Result says what one run did.
type Result struct {
	Cached, InCloud, Dropped int
	Skipped                  string // why nothing was dropped, if so
}

// Run lists this node's pods from the cloud and drops from every component's cache
// the pods of this node the cloud no longer has. See the package doc for when it
// drops nothing.
func (g *PodGC) Run(ctx context.Context) (Result, error) {
	var res Result
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	log := g.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("part", "gc"), slog.String("node", g.Node))

	// What the cache holds first: a node with nothing cached needs no cloud call.
	type cached struct {
		key store.ObjectKey
		rv  uint64
	}
	var mine []cached
	nodePods := map[string]bool{}
	err := g.Store.WalkCoverage(ctx, store.Filter{Resource: PodsResource}, func(k store.ObjectKey, o store.Object, _ bool) error {
		if k.Resource != PodsResource {
			return nil
		}
		p, err := DecodePod(o)
		if err != nil {
			log.Warn("gc: a cached pod does not decode; left as it is", slog.String("key", k.String()), slog.Any("err", err))
			return nil
		}
		if p.Spec.NodeName != g.Node {
			return nil
		}
		mine = append(mine, cached{key: k, rv: o.ResourceVersion})
		nodePods[k.Namespace+"/"+k.Name] = true
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gc: read the cached pods: %w", err)
	}
	res.Cached = len(nodePods)
	if len(mine) == 0 {
		res.Skipped = "no pods of this node cached"
		log.Info("gc: start-up pod GC: no pods of this node cached, nothing to compare")
		return res, nil
	}

	lctx, cancel := context.WithTimeout(ctx, timeout)
	inCloud, err := g.List(lctx)
	cancel()
	if err != nil {
		res.Skipped = "the cloud's pod list failed"
		log.Warn("gc: start-up pod GC skipped: listing this node's pods from the cloud failed; nothing dropped",
			slog.Int("cached_pods", res.Cached), slog.Any("err", err))
		return res, nil
	}
	res.InCloud = len(inCloud)
	var gone []store.ObjectKey
	var goneRVs []uint64
	goneNames := map[string]bool{}
	for _, c := range mine {
		nn := c.key.Namespace + "/" + c.key.Name
		if !inCloud[nn] {
			gone = append(gone, c.key)
			goneRVs = append(goneRVs, c.rv)
			goneNames[nn] = true
		}
	}
	if len(goneNames) == 0 {
		log.Info("gc: start-up pod GC: every cached pod of this node still exists in the cloud", slog.Int("cached_pods", res.Cached))
		return res, nil
	}
	if len(goneNames) == res.Cached && res.Cached > FewPods {
		res.Skipped = "the answer would remove every cached pod"
		log.Warn("gc: start-up pod GC skipped: the cloud's answer would remove every cached pod of this node; not trusted, nothing dropped",
			slog.Int("cached_pods", res.Cached), slog.Int("cloud_pods", res.InCloud), slog.Int("few", FewPods))
		return res, nil
	}
	// Only copies unchanged since the walk: one the cloud sent meanwhile (a pod
	// recreated under the same name) is newer than the list and stays.
	removed, err := g.Store.DeleteObjectsAt(ctx, gone, goneRVs)
	if err != nil {
		return res, fmt.Errorf("gc: drop pods deleted in the cloud: %w", err)
	}
	n := len(removed)
	dropped := map[string]bool{}
	for _, k := range removed {
		dropped[k.Namespace+"/"+k.Name] = true
		log.Info("gc: dropped a pod deleted in the cloud", slog.String("component", k.Component), slog.String("pod", k.Namespace+"/"+k.Name))
	}
	res.Dropped = len(dropped)
	if n < len(gone) {
		log.Info("gc: cached pods changed while the GC ran were kept", slog.Int("kept", len(gone)-n))
	}
	if g.Count != nil {
		g.Count(Kind(PodsResource), "deleted_in_cloud", n)
	}
	log.Info("gc: start-up pod GC done", slog.Int("cached_pods", res.Cached), slog.Int("cloud_pods", res.InCloud),
		slog.Int("pods_dropped", res.Dropped), slog.Int("objects_dropped", n))
	return res, nil
}
