package filter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// NodePool membership for pool-scoped servicetopology and nodeportisolation.
//
// NodePools watches the NodePool objects of group apps.openyurt.io (v1beta2, or
// v1beta1 when the cluster serves only that) and keeps, in a StaticPool, this
// node's pool and every pool's member nodes (status.nodes). The node's pool is
// --nodepool-name when given, else the pool whose status.nodes lists the node
// (the pool controller keeps that list from the node's apps.openyurt.io/nodepool
// label). The daemon runs it over the hub's own proxy port as component
// "yurthub": the discovery document and the NodePool list are cached like any
// response, so after an offline restart the membership is known again.
//
// A cluster without the NodePool CRD never blocks the hub: the absence is logged
// once, pool-scoped objects stay unfiltered (PoolNodes says unknown), and the
// group is looked for again every PoolRetry.
type NodePools struct {
	NodeName string
	// FlagPool is --nodepool-name ("" = find the node in status.nodes).
	FlagPool string
	Pool     *StaticPool
	Log      *slog.Logger
	// OnChange is called when this node's pool or its members change after the
	// first list (the daemon ends the filtered watches so clients relist).
	OnChange func(reason string)
	// Retry is how often an absent CRD is looked for again (default 1m).
	Retry time.Duration

	mu    sync.Mutex
	pools map[string][]string
}

// NodePoolGroup is the NodePool API group.
const NodePoolGroup = "apps.openyurt.io"

// servedVersion asks discovery for the NodePool version to use: v1beta2, or
// v1beta1; "" when the group is not served.
func servedVersion(ctx context.Context, cfg *rest.Config) (string, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/apis/"+NodePoolGroup, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery /apis/%s: %w", NodePoolGroup, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery /apis/%s: %s", NodePoolGroup, resp.Status)
	}
	var g metav1.APIGroup
	if err := json.Unmarshal(body, &g); err != nil {
		return "", fmt.Errorf("discovery /apis/%s: %w", NodePoolGroup, err)
	}
	var served []string
	for _, v := range g.Versions {
		served = append(served, v.Version)
	}
	for _, want := range []string{"v1beta2", "v1beta1"} {
		if slices.Contains(served, want) {
			return want, nil
		}
	}
	return "", nil
}

// Run finds the served NodePool version and runs the informer until ctx ends.
func (p *NodePools) Run(ctx context.Context, cfg *rest.Config) {
	if p.Retry <= 0 {
		p.Retry = time.Minute
	}
	logged := false
	var version string
	for {
		v, err := servedVersion(ctx, cfg)
		switch {
		case err != nil:
			if !logged {
				p.Log.Warn("nodepool: cannot ask for the NodePool API yet; pool-scoped endpoints stay unfiltered until it answers", slog.Any("err", err))
				logged = true
			}
		case v == "":
			if !logged {
				p.Log.Info("nodepool: the cluster serves no NodePool API (apps.openyurt.io v1beta2/v1beta1); pool-scoped endpoints stay unfiltered")
				logged = true
			}
		default:
			version = v
		}
		if version != "" {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.Retry):
		}
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		p.Log.Warn("nodepool: no client", slog.Any("err", err))
		return
	}
	gvr := schema.GroupVersionResource{Group: NodePoolGroup, Version: version, Resource: "nodepools"}
	p.Log.Info("nodepool: watching NodePools", slog.String("version", version))
	res := dc.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	p.mu.Lock()
	p.pools = map[string][]string{}
	p.mu.Unlock()
	set := func(obj any, gone bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, gone = d.Obj, true
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		nodes, _, _ := unstructured.NestedStringSlice(u.Object, "status", "nodes")
		slices.Sort(nodes)
		p.mu.Lock()
		if gone {
			delete(p.pools, u.GetName())
		} else {
			p.pools[u.GetName()] = nodes
		}
		p.mu.Unlock()
		if inf.HasSynced() {
			p.publish("nodepool " + u.GetName() + " changed")
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o, false) },
		UpdateFunc: func(_, o any) { set(o, false) },
		DeleteFunc: func(o any) { set(o, true) },
	})
	go inf.RunWithContext(ctx)
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		// watches filtered before the membership was known relist now
		p.publish("nodepool membership loaded")
	}
	<-ctx.Done()
}

// publish stores the membership; reason != "" calls OnChange when this node's
// pool or its members changed.
func (p *NodePools) publish(reason string) {
	p.mu.Lock()
	pools := make(map[string][]string, len(p.pools))
	name := p.FlagPool
	for k, v := range p.pools {
		pools[k] = v
		if name == "" && slices.Contains(v, p.NodeName) {
			name = k
		}
	}
	p.mu.Unlock()
	oldName := p.Pool.PoolName()
	oldNodes, oldKnown := p.Pool.PoolNodes(oldName)
	p.Pool.Set(name, pools)
	newNodes, _ := p.Pool.PoolNodes(name)
	changed := oldName != name || !oldKnown || !slices.Equal(oldNodes, newNodes)
	if changed {
		p.Log.Info("nodepool: membership", slog.String("node", p.NodeName), slog.String("pool", name), slog.Any("members", newNodes))
	}
	if reason != "" && changed && p.OnChange != nil {
		p.OnChange(reason)
	}
}
