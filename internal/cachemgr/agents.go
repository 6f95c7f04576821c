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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/yurthub/yurthub/internal/kubescheme"
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

// WatchConfigFromREST is WatchConfig with a client built from cfg (the hub's own
// upstream connection).
func (m *Manager) WatchConfigFromREST(ctx context.Context, cfg *rest.Config) error {
	c, err := kubescheme.NewRESTClient(cfg, corev1.SchemeGroupVersion)
	if err != nil {
		return fmt.Errorf("cache agents: client for the %s/%s ConfigMap watch: %w", m.opts.ConfigNamespace, ConfigMapName, err)
	}
	m.WatchConfig(ctx, c)
	return nil
}

// configMapListWatch lists and watches ConfigMap <namespace>/yurt-hub-cfg alone
// (field selector on its name) with the requests client-go's ConfigMap informer
// makes: protobuf preferred, JSON accepted.
func configMapListWatch(c rest.Interface, namespace string) cache.ListerWatcher {
	tweak := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
	}
	timeout := func(o *metav1.ListOptions) time.Duration {
		if o.TimeoutSeconds != nil {
			return time.Duration(*o.TimeoutSeconds) * time.Second
		}
		return 0
	}
	list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		tweak(&o)
		out := &corev1.ConfigMapList{}
		err := c.Get().UseProtobufAsDefault().Namespace(namespace).Resource("configmaps").
			VersionedParams(&o, metav1.ParameterCodec).Timeout(timeout(&o)).Do(ctx).Into(out)
		return out, err
	}
	watchFn := func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		tweak(&o)
		o.Watch = true
		return c.Get().UseProtobufAsDefault().Namespace(namespace).Resource("configmaps").
			VersionedParams(&o, metav1.ParameterCodec).Timeout(timeout(&o)).Watch(ctx)
	}
	// (ListWatch's context-less List and Watch fall back to these.)
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}, c)
}

// WatchConfig starts an informer on ConfigMap yurt-hub-cfg in Options.ConfigNamespace
// (--namespace, default kube-system) and applies
// its cache_agents key live (and hands the whole data to Options.OnConfig); a deleted ConfigMap puts the defaults back. It returns
// at once; the informer stops with ctx. The informer relists and rewatches on its
// own after errors (with backoff), and resyncs every 10 minutes. While the cloud is
// unreachable the setting last seen stays in force.
func (m *Manager) WatchConfig(ctx context.Context, c rest.Interface) {
	inf := cache.NewSharedIndexInformerWithOptions(configMapListWatch(c, m.opts.ConfigNamespace), &corev1.ConfigMap{},
		cache.SharedIndexInformerOptions{ResyncPeriod: 10 * time.Minute})
	apply := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != ConfigMapName {
			return
		}
		m.SetCacheAgents(cm.Data[CacheAgentsKey])
		if m.opts.OnConfig != nil {
			m.opts.OnConfig(cm.Data)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    apply,
		UpdateFunc: func(_, obj any) { apply(obj) },
		DeleteFunc: func(any) {
			m.SetCacheAgents("")
			if m.opts.OnConfig != nil {
				m.opts.OnConfig(nil)
			}
		},
	})
	go inf.RunWithContext(ctx)
}
