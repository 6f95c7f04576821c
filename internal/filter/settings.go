package filter

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/requestinfo"
)

// Spec is one filter's registration: the components it applies to without any
// setting and the resources and verbs whose responses it rewrites (OpenYurt
// v1.7's filter-to-component table).
type Spec struct {
	Name              string
	DefaultComponents []string
	ResourceVerbs     map[string][]string
	// NotInCloudMode: the filter only makes sense where the hub proxies pods'
	// traffic (edge mode).
	NotInCloudMode bool
}

// Specs is every filter, in the order a chain runs them (OpenYurt's registration
// order).
var Specs = []Spec{
	{Name: ServiceTopology, DefaultComponents: []string{"kube-proxy", "coredns", "nginx-ingress-controller"},
		ResourceVerbs: map[string][]string{"endpoints": {"list", "watch"}, "endpointslices": {"list", "watch"}}},
	{Name: MasterService, DefaultComponents: []string{"kubelet"},
		ResourceVerbs: map[string][]string{"services": {"list", "watch"}}},
	{Name: DiscardCloudService, DefaultComponents: []string{"kube-proxy"},
		ResourceVerbs: map[string][]string{"services": {"list", "watch"}}, NotInCloudMode: true},
	{Name: InClusterConfig, DefaultComponents: []string{"kubelet"},
		ResourceVerbs: map[string][]string{"configmaps": {"get", "list", "watch"}}},
	{Name: NodePortIsolation, DefaultComponents: []string{"kube-proxy"},
		ResourceVerbs: map[string][]string{"services": {"list", "watch"}}},
	{Name: ForwardKubeSvcTraffic, DefaultComponents: []string{"kube-proxy"},
		ResourceVerbs: map[string][]string{"endpointslices": {"list", "watch"}}, NotInCloudMode: true},
	{Name: ServiceEnvUpdater, DefaultComponents: []string{"kubelet"},
		ResourceVerbs: map[string][]string{"pods": {"list", "watch", "get", "patch"}}, NotInCloudMode: true},
}

// Known reports whether name is one of the seven filters.
func Known(name string) bool {
	for _, s := range Specs {
		if s.Name == name {
			return true
		}
	}
	return false
}

// KnownNames returns the seven filter names, in chain order.
func KnownNames() []string {
	out := make([]string, len(Specs))
	for i, s := range Specs {
		out[i] = s.Name
	}
	return out
}

// legacyKeyPrefix: OpenYurt v1.7 reads a filter's yurt-hub-cfg key as the bare
// filter name; earlier releases documented "filter_<name>". Both are read and
// their components merged.
const legacyKeyPrefix = "filter_"

// Options configure Settings.
type Options struct {
	// Enabled is --enable-resource-filter: false turns every filter off.
	Enabled bool
	// Disabled is --disabled-resource-filters: these filters never run.
	Disabled []string
	// CloudMode drops the filters marked NotInCloudMode.
	CloudMode bool
	Env       Env
	Log       *slog.Logger
	// Count, when set, is called for every object a filter rewrote or dropped
	// (the /metrics counters), and with outcome "failed" when a filter or the
	// decoding failed.
	Count func(filter, outcome string)
}

// Settings is the live filter configuration: which chain applies to which
// (component, verb, resource). The flags fix which filters exist; the filter keys
// of yurt-hub-cfg add components and are applied with Apply while the hub runs.
// ChainFor is lock-free (one atomic load).
type Settings struct {
	opts    Options
	log     *slog.Logger
	filters map[string]Filter // the enabled ones
	mu      sync.Mutex        // serialises Apply
	table   atomic.Pointer[table]
	streams streams
}

type table struct {
	chains map[string]*Chain // component/verb/resource
	extra  map[string][]string
}

// New builds the settings with the default components only. An unknown name in
// Disabled is an error (the command line validates it first).
func New(opts Options) (*Settings, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	for _, d := range opts.Disabled {
		if !Known(d) {
			return nil, fmt.Errorf("filter: --disabled-resource-filters: unknown filter %q (known: %s)", d, strings.Join(KnownNames(), ", "))
		}
	}
	s := &Settings{opts: opts, log: opts.Log, filters: map[string]Filter{}}
	if opts.Enabled {
		for _, sp := range Specs {
			if slices.Contains(opts.Disabled, sp.Name) || opts.CloudMode && sp.NotInCloudMode {
				continue
			}
			s.filters[sp.Name] = newFilter(sp.Name, &s.opts.Env)
		}
	}
	s.table.Store(s.build(nil))
	return s, nil
}

// Env returns the environment the filters read (node, hub address, pool, services).
func (s *Settings) Env() *Env { return &s.opts.Env }

func newFilter(name string, env *Env) Filter {
	switch name {
	case MasterService:
		return &masterService{env: env}
	case ServiceEnvUpdater:
		return &serviceEnvUpdater{env: env}
	case InClusterConfig:
		return inClusterConfig{}
	case ServiceTopology:
		return &serviceTopology{env: env}
	case DiscardCloudService:
		return discardCloudService{}
	case NodePortIsolation:
		return &nodePortIsolation{env: env}
	case ForwardKubeSvcTraffic:
		return &forwardKubeSvcTraffic{env: env}
	}
	panic("filter: no constructor for " + name)
}

func key(component, verb, resource string) string { return component + "/" + verb + "/" + resource }

func (s *Settings) build(extra map[string][]string) *table {
	names := map[string][]string{} // key -> filter names
	for _, sp := range Specs {
		if s.filters[sp.Name] == nil {
			continue
		}
		comps := append(slices.Clone(sp.DefaultComponents), extra[sp.Name]...)
		for _, c := range comps {
			for res, verbs := range sp.ResourceVerbs {
				for _, v := range verbs {
					k := key(c, v, res)
					if !slices.Contains(names[k], sp.Name) {
						names[k] = append(names[k], sp.Name)
					}
				}
			}
		}
	}
	t := &table{chains: map[string]*Chain{}, extra: extra}
	for k, ns := range names {
		c := &Chain{}
		for _, sp := range Specs { // chain order, whatever order the components came in
			if slices.Contains(ns, sp.Name) {
				c.filters = append(c.filters, s.filters[sp.Name])
			}
		}
		if cnt := s.opts.Count; cnt != nil {
			c.count = func(f string, o Outcome) { cnt(f, o.String()) }
			c.countE = func(f string) { cnt(f, "failed") }
		}
		t.chains[k] = c
	}
	return t
}

// Apply applies the data of ConfigMap yurt-hub-cfg: for each filter, the
// comma-separated components in its key (the filter name, or "filter_<name>")
// are added to its default ones. Keys of other settings are ignored; a nil map
// (the ConfigMap deleted) puts the defaults back. Streams already running keep
// the chain they started with.
func (s *Settings) Apply(data map[string]string) {
	extra := map[string][]string{}
	for k, v := range data {
		name := strings.TrimPrefix(k, legacyKeyPrefix)
		if !Known(name) {
			continue
		}
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && !slices.Contains(extra[name], c) {
				extra[name] = append(extra[name], c)
			}
		}
	}
	for _, v := range extra {
		sort.Strings(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if equalExtra(s.table.Load().extra, extra) {
		return
	}
	s.table.Store(s.build(extra))
	s.log.Info("filter settings applied", slog.Any("added_components", extra), slog.Any("enabled", s.Enabled()))
}

func equalExtra(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// Enabled returns the filters that run (after --enable-resource-filter,
// --disabled-resource-filters and the working mode), in chain order.
func (s *Settings) Enabled() []string {
	var out []string
	for _, sp := range Specs {
		if s.filters[sp.Name] != nil {
			out = append(out, sp.Name)
		}
	}
	return out
}

// Components returns, per enabled filter, the components it applies to now
// (defaults plus yurt-hub-cfg), sorted.
func (s *Settings) Components() map[string][]string {
	t := s.table.Load()
	out := map[string][]string{}
	for _, sp := range Specs {
		if s.filters[sp.Name] == nil {
			continue
		}
		c := append(slices.Clone(sp.DefaultComponents), t.extra[sp.Name]...)
		sort.Strings(c)
		out[sp.Name] = slices.Compact(c)
	}
	return out
}

// ChainFor returns the chain for a request of component (a User-Agent or its
// product token) with verb on gvr, or nil when no filter applies. A watch-list
// (list with watch=true and sendInitialEvents) is verb "watch".
func (s *Settings) ChainFor(component, verb string, gvr schema.GroupVersionResource) *Chain {
	if s == nil || newObject(gvr) == nil {
		return nil
	}
	c := s.table.Load().chains[key(componentName(component), verb, gvr.Resource)]
	if c == nil {
		return nil
	}
	out := *c
	out.gvr = gvr
	return &out
}

// componentName accepts a full User-Agent or the product token already cut (the
// cut the cache and requestinfo use).
func componentName(s string) string { return requestinfo.ComponentFromUserAgent(s) }

// Resources lists the resources some filter may rewrite, for callers that want
// to skip everything else cheaply.
func Resources() []schema.GroupVersionResource {
	return []schema.GroupVersionResource{
		corev1.SchemeGroupVersion.WithResource("services"),
		corev1.SchemeGroupVersion.WithResource("endpoints"),
		corev1.SchemeGroupVersion.WithResource("configmaps"),
		corev1.SchemeGroupVersion.WithResource("pods"),
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
	}
}

// streams are the running filtered watches, for EndStreams.
type streams struct {
	mu   sync.Mutex
	next int
	m    map[int]trackedStream
}

type trackedStream struct {
	chain *Chain
	end   chan struct{}
}

// Track registers a running filtered watch. The returned channel is closed when
// the stream must end so that its client relists (EndStreams); done unregisters
// it and must be called when the stream ends.
func (s *Settings) Track(c *Chain) (end <-chan struct{}, done func()) {
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	if s.streams.m == nil {
		s.streams.m = map[int]trackedStream{}
	}
	id := s.streams.next
	s.streams.next++
	ch := make(chan struct{})
	s.streams.m[id] = trackedStream{chain: c, end: ch}
	return ch, func() {
		s.streams.mu.Lock()
		delete(s.streams.m, id)
		s.streams.mu.Unlock()
	}
}

// EndStreams ends every tracked watch whose chain runs filter name, with a 410
// Expired ERROR event, and returns how many. A servicetopology result depends on
// a Service's annotation and on the node's pool, which the endpoint objects do
// not carry: when either changes the right answer for every slice may change at
// once, and the apiserver sends no event for the slices. The 410 makes the client
// (a client-go reflector) relist, and the relist is filtered with the new
// setting; a clean end of the stream would not do (the reflector re-watches from
// its resourceVersion and gets no slice again). Synthesising per-slice events
// instead would need the hub to hold every slice the client has, which a
// streaming filter does not.
func (s *Settings) EndStreams(name, reason string) int {
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	n := 0
	for id, t := range s.streams.m {
		if slices.Contains(t.chain.Names(), name) {
			close(t.end)
			delete(s.streams.m, id)
			n++
		}
	}
	if n > 0 {
		s.log.Info("filtered watches ended so their clients relist", slog.String("filter", name), slog.String("reason", reason), slog.Int("watches", n))
	}
	return n
}
