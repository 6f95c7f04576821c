package cachemgr

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// DefaultCacheAgents are the components cached without any setting (OpenYurt's list).
var DefaultCacheAgents = []string{"kubelet", "kube-proxy", "flanneld", "coredns", "raven-agent-ds", "yurttunnel-agent", "yurthub"}

// The ConfigMap whose cache_agents key adds components ("*" = every component).
const (
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "yurt-hub-cfg"
	CacheAgentsKey     = "cache_agents"
)

type agentSet struct {
	all   bool
	names map[string]bool
}

func (s *agentSet) has(c string) bool { return s.all || s.names[c] }

// parseAgents is the defaults plus the comma-separated cache_agents value.
func parseAgents(v string) *agentSet {
	s := &agentSet{names: map[string]bool{}}
	for _, c := range DefaultCacheAgents {
		s.names[c] = true
	}
	for _, c := range strings.Split(v, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "":
		case "*":
			s.all = true
		default:
			s.names[c] = true
		}
	}
	return s
}

// CacheAgents returns the components cached now ("*" when all are).
func (m *Manager) CacheAgents() []string {
	s := m.agents.Load()
	if s.all {
		return []string{"*"}
	}
	out := make([]string, 0, len(s.names))
	for c := range s.names {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// SetCacheAgents applies a cache_agents value (what the ConfigMap watch calls).
func (m *Manager) SetCacheAgents(value string) {
	m.agents.Store(parseAgents(value))
	m.log.Info("cache agents set", slog.String(CacheAgentsKey, value), slog.Any("components", m.CacheAgents()))
}

// WatchConfigFromREST is WatchConfig with a clientset built from cfg (the hub's own
// upstream connection).
func (m *Manager) WatchConfigFromREST(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return fmt.Errorf("cache agents: client for the %s/%s ConfigMap watch: %w", ConfigMapNamespace, ConfigMapName, err)
	}
	m.WatchConfig(ctx, cs)
	return nil
}

// WatchConfig starts an informer on ConfigMap kube-system/yurt-hub-cfg and applies
// its cache_agents key live; a deleted ConfigMap puts the defaults back. It returns
// at once; the informer stops with ctx. While the cloud is unreachable the setting
// last seen stays in force.
func (m *Manager) WatchConfig(ctx context.Context, cs kubernetes.Interface) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute,
		informers.WithNamespace(ConfigMapNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		}))
	inf := f.Core().V1().ConfigMaps().Informer()
	apply := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != ConfigMapName {
			return
		}
		m.SetCacheAgents(cm.Data[CacheAgentsKey])
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    apply,
		UpdateFunc: func(_, obj any) { apply(obj) },
		DeleteFunc: func(any) { m.SetCacheAgents("") },
	})
	f.Start(ctx.Done())
}
