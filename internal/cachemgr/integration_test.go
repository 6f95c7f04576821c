package cachemgr

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testkube"
	"github.com/yurthub/yurthub/internal/wire"
)

// The integration tests run client-go informers with real components' User-Agents
// THROUGH a hub (the cache manager behind a reverse proxy) against a real
// kube-apiserver, mutate the cluster, and check that every list view the hub cached
// holds exactly the apiserver's objects at the view's stored resourceVersion.
//
// testHub is internal/proxy's handler in edge mode with this package's Manager as
// its Cacher and a store in t.TempDir(), so the test can read the cache directly
// (the full daemon holds the cache file's lock).

type testHub struct {
	srv *httptest.Server
	mgr *Manager
	st  *store.Store

	mu    sync.Mutex
	verbs map[string]int // "list", "watch", "watchlist" (sendInitialEvents=true) requests seen
}

func (h *testHub) seen(verb string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.verbs[verb]
}

func newTestHub(t testing.TB, upstream *rest.Config, opts Options) *testHub {
	t.Helper()
	return newTestHubSync(t, upstream, opts, false)
}

// newTestHubSync is newTestHub with the store fsync'ing (benchmarks) or not (tests).
func newTestHubSync(t testing.TB, upstream *rest.Config, opts Options, fsync bool) *testHub {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{NoSync: !fsync})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mgr := New(st, log, opts)
	rt, err := rest.TransportFor(upstream)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(upstream.Host)
	lb, err := loadbalancer.New([]*url.URL{target}, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: true})
	if err != nil {
		t.Fatal(err)
	}
	// The real proxy handler (internal/proxy) in edge mode, with the admin
	// credentials as the hub's own upstream identity.
	px, err := proxy.New(proxy.Options{WorkingMode: config.WorkingModeEdge, LB: lb, CertTransport: rt, TokenTransport: rt, Cacher: mgr, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	parser := requestinfo.New()
	h := &testHub{mgr: mgr, st: st, verbs: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ := parser.Parse(r)
		h.mu.Lock()
		if info.SendInitialEvents {
			h.verbs["watchlist"]++
		} else {
			h.verbs[info.Verb]++
		}
		h.mu.Unlock()
		px.ServeHTTP(w, r)
	}))
	h.srv = srv
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		mgr.Close()
		st.Close()
	})
	return h
}

// config is a client config through the hub for a component.
func (h *testHub) config(userAgent string, protobuf bool) *rest.Config {
	cfg := &rest.Config{Host: h.srv.URL, UserAgent: userAgent, QPS: 1000, Burst: 1000}
	// Typed clientsets default to protobuf since client-go 1.33: say JSON explicitly.
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	return cfg
}

var (
	gatesOnce     sync.Once
	defaultGates  clientfeatures.Gates
	currentGateMu sync.Mutex
)

func setWatchList(t *testing.T, on bool) {
	gatesOnce.Do(func() { defaultGates = clientfeatures.FeatureGates() })
	currentGateMu.Lock()
	defer currentGateMu.Unlock()
	clientfeatures.ReplaceFeatureGates(fixedGate{on: on, def: defaultGates})
	t.Cleanup(func() { clientfeatures.ReplaceFeatureGates(defaultGates) })
}

type fixedGate struct {
	on  bool
	def clientfeatures.Gates
}

func (g fixedGate) Enabled(f clientfeatures.Feature) bool {
	if f == clientfeatures.WatchListClient {
		return g.on
	}
	return g.def.Enabled(f)
}

var widgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func createWidgetCRD(t *testing.T, cfg *rest.Config) {
	t.Helper()
	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.example.com"},
		"spec": map[string]any{
			"group": "example.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(context.Background(), &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := dyn.Resource(widgetGVR).Namespace("default").List(context.Background(), metav1.ListOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD widgets.example.com never served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// view is one list view an informer makes the hub cache.
type view struct {
	component string
	gvr       schema.GroupVersionResource
	namespace string
	label     string
	field     string
}

func (v view) key() store.ListKey {
	return store.ListKey{Component: v.component, Resource: store.Resource{Group: v.gvr.Group, Version: v.gvr.Version, Resource: v.gvr.Resource},
		Namespace: v.namespace, Selector: cachekey.Selector(v.label, v.field)}
}

func TestInformersThroughHub(t *testing.T) {
	c := testkube.Start(t, testkube.Options{})
	admin := c.AdminConfig()
	createWidgetCRD(t, admin)
	for _, tc := range []struct {
		name      string
		protobuf  bool
		watchList bool
	}{
		{"json", false, false},
		{"json-watchlist", false, true},
		{"protobuf", true, false},
		{"protobuf-watchlist", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runInformerScenario(t, admin, tc.name, tc.protobuf, tc.watchList)
		})
	}
}

func runInformerScenario(t *testing.T, admin *rest.Config, name string, protobuf, watchList bool) {
	setWatchList(t, watchList)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(admin)
	dyn := dynamic.NewForConfigOrDie(admin)
	node := "edge-" + name
	ns := "ns-" + name

	ok := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hub := newTestHub(t, admin, Options{})
	// The CRD's client is not a default component: the cache_agents ConfigMap adds it,
	// watched live through the same upstream.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ConfigMapNamespace, Name: ConfigMapName}, Data: map[string]string{CacheAgentsKey: "widget-agent"}}
	if _, err := cs.CoreV1().ConfigMaps(ConfigMapNamespace).Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		if _, err := cs.CoreV1().ConfigMaps(ConfigMapNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if err := hub.mgr.WatchConfigFromREST(ctx, admin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cache_agents applied", func() bool {
		return hub.mgr.Cacheable(&requestinfo.Info{IsResourceRequest: true, Verb: "list", Resource: "widgets", Component: "widget-agent"})
	})

	// Initial objects.
	ok(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	ok(cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}))
	ok(cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node + "-other"}}, metav1.CreateOptions{}))
	for i := range 5 {
		ok(cs.CoreV1().Pods(ns).Create(ctx, testPod(ns, fmt.Sprintf("p%d", i), node), metav1.CreateOptions{}))
		ok(cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm%d", i)}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}))
		ok(cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}))
		ok(cs.CoreV1().Services(ns).Create(ctx, testService(fmt.Sprintf("svc%d", i)), metav1.CreateOptions{}))
		ok(cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, testSlice(fmt.Sprintf("svc%d-abc", i), fmt.Sprintf("svc%d", i)), metav1.CreateOptions{}))
		ok(dyn.Resource(widgetGVR).Namespace(ns).Create(ctx, testWidget(fmt.Sprintf("w%d", i), i), metav1.CreateOptions{}))
	}
	// A pod on another node and one on no node: not in kubelet's view.
	ok(cs.CoreV1().Pods(ns).Create(ctx, testPod(ns, "elsewhere", node+"-other"), metav1.CreateOptions{}))
	ok(cs.CoreV1().Pods(ns).Create(ctx, testPod(ns, "unscheduled", ""), metav1.CreateOptions{}))

	const proxyLabels = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
	views := []view{
		{"kubelet", corev1.SchemeGroupVersion.WithResource("pods"), "", "", "spec.nodeName=" + node},
		{"kubelet", corev1.SchemeGroupVersion.WithResource("nodes"), "", "", "metadata.name=" + node},
		{"kubelet", corev1.SchemeGroupVersion.WithResource("configmaps"), ns, "", ""},
		{"kubelet", corev1.SchemeGroupVersion.WithResource("secrets"), ns, "", ""},
		{"kube-proxy", corev1.SchemeGroupVersion.WithResource("services"), "", proxyLabels, ""},
		{"kube-proxy", discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), "", proxyLabels, ""},
		{"coredns", corev1.SchemeGroupVersion.WithResource("services"), "", "", ""},
		{"coredns", discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), "", "", ""},
		{"coredns", corev1.SchemeGroupVersion.WithResource("namespaces"), "", "", ""},
		{"widget-agent", widgetGVR, ns, "", ""},
	}
	uas := map[string]string{
		"kubelet":      "kubelet/v1.36.3 (linux/amd64) kubernetes/abcdef0",
		"kube-proxy":   "kube-proxy/v1.36.3 (linux/amd64) kubernetes/abcdef0",
		"coredns":      "coredns/1.12.0 (linux/amd64)",
		"widget-agent": "widget-agent/0.1",
	}
	var informers_ []cache.SharedIndexInformer
	for _, v := range views {
		cfg := hub.config(uas[v.component], protobuf)
		var inf cache.SharedIndexInformer
		tweak := func(o *metav1.ListOptions) { o.LabelSelector, o.FieldSelector = v.label, v.field }
		if v.gvr == widgetGVR {
			f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(cfg), 0, v.namespace, tweak)
			inf = f.ForResource(v.gvr).Informer()
			f.Start(ctx.Done())
		} else {
			f := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(cfg), 0,
				informers.WithNamespace(v.namespace), informers.WithTweakListOptions(tweak))
			gi, err := f.ForResource(v.gvr)
			if err != nil {
				t.Fatal(err)
			}
			inf = gi.Informer()
			f.Start(ctx.Done())
		}
		informers_ = append(informers_, inf)
	}
	for i, inf := range informers_ {
		if !cache.WaitForCacheSync(withTimeout(ctx, 60*time.Second), inf.HasSynced) {
			t.Fatalf("informer %v never synced through the hub", views[i])
		}
	}
	checkAll(t, hub, admin, views, informers_, protobuf)

	// Creates, updates and deletes in the cloud.
	ok(cs.CoreV1().Pods(ns).Create(ctx, testPod(ns, "new", node), metav1.CreateOptions{}))
	noErr(t, cs.CoreV1().Pods(ns).Delete(ctx, "p0", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
	p1, err := cs.CoreV1().Pods(ns).Get(ctx, "p1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1.Labels = map[string]string{"changed": "yes"}
	ok(cs.CoreV1().Pods(ns).Update(ctx, p1, metav1.UpdateOptions{}))
	n, _ := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	n.Labels = map[string]string{"zone": "edge"}
	ok(cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}))
	noErr(t, cs.CoreV1().ConfigMaps(ns).Delete(ctx, "cm1", metav1.DeleteOptions{}))
	ok(cs.CoreV1().ConfigMaps(ns).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm2"}, Data: map[string]string{"k": "changed"}}, metav1.UpdateOptions{}))
	ok(cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s-new"}}, metav1.CreateOptions{}))
	noErr(t, cs.CoreV1().Secrets(ns).Delete(ctx, "s3", metav1.DeleteOptions{}))
	noErr(t, cs.CoreV1().Services(ns).Delete(ctx, "svc4", metav1.DeleteOptions{}))
	headless := testService("headless")
	headless.Labels = map[string]string{"service.kubernetes.io/headless": ""}
	ok(cs.CoreV1().Services(ns).Create(ctx, headless, metav1.CreateOptions{}))
	noErr(t, cs.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "svc4-abc", metav1.DeleteOptions{}))
	ok(cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, testSlice("svc5-abc", "svc5"), metav1.CreateOptions{}))
	noErr(t, dyn.Resource(widgetGVR).Namespace(ns).Delete(ctx, "w0", metav1.DeleteOptions{}))
	w1, err := dyn.Resource(widgetGVR).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(w1.Object, int64(42), "spec", "size")
	ok(dyn.Resource(widgetGVR).Namespace(ns).Update(ctx, w1, metav1.UpdateOptions{}))
	ok(dyn.Resource(widgetGVR).Namespace(ns).Create(ctx, testWidget("w-new", 7), metav1.CreateOptions{}))
	ok(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns + "-2"}}, metav1.CreateOptions{}))

	checkAll(t, hub, admin, views, informers_, protobuf)

	// cache_agents is followed live: dropping widget-agent stops caching it.
	cm.Data[CacheAgentsKey] = "other-agent"
	ok(cs.CoreV1().ConfigMaps(ConfigMapNamespace).Update(ctx, cm, metav1.UpdateOptions{}))
	waitFor(t, "cache_agents change applied", func() bool {
		return !hub.mgr.Cacheable(&requestinfo.Info{IsResourceRequest: true, Verb: "list", Resource: "widgets", Component: "widget-agent"}) &&
			hub.mgr.Cacheable(&requestinfo.Info{IsResourceRequest: true, Verb: "list", Resource: "widgets", Component: "other-agent"})
	})

	s := hub.mgr.Stats()
	if s.Overflows != 0 || s.Failures != 0 || s.Events == 0 {
		t.Errorf("cache stats: %+v", s)
	}
	// The informers really used the mode under test.
	if watchList && (hub.seen("watchlist") < len(views) || hub.seen("list") > 0) {
		t.Errorf("watch-list on: saw %d watch-list and %d list requests", hub.seen("watchlist"), hub.seen("list"))
	}
	if !watchList && (hub.seen("list") < len(views) || hub.seen("watchlist") > 0) {
		t.Errorf("watch-list off: saw %d watch-list and %d list requests", hub.seen("watchlist"), hub.seen("list"))
	}
	t.Logf("stats %+v; requests %v", s, hub.verbs)
}

// checkAll waits until every view is caught up with the apiserver's current state,
// then checks each one exactly against the apiserver at the view's stored RV.
func checkAll(t *testing.T, hub *testHub, admin *rest.Config, views []view, infs []cache.SharedIndexInformer, protobuf bool) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(admin)
	ctx := context.Background()
	for i, v := range views {
		var last string
		deadline := time.Now().Add(30 * time.Second)
		for {
			now, err := dyn.Resource(v.gvr).Namespace(v.namespace).List(ctx, metav1.ListOptions{LabelSelector: v.label, FieldSelector: v.field})
			if err != nil {
				t.Fatalf("%v: direct list: %v", v, err)
			}
			want := objectSet(now.Items)
			// The informer through the hub sees what a direct list sees.
			got := map[string]string{}
			for _, o := range infs[i].GetStore().List() {
				m, _ := meta(o)
				got[m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
			}
			cached, info, err := storedSet(hub.st, v.key(), v.gvr == widgetGVR || !protobuf)
			last = fmt.Sprintf("informer=%v cached=%v (info %+v, err %v) apiserver=%v", got, cached, info, err, want)
			if err == nil && equalSets(got, want) && equalSets(cached, want) && info.Complete {
				// Exactly the apiserver's state at the stored RV.
				at, err := dyn.Resource(v.gvr).Namespace(v.namespace).List(ctx, metav1.ListOptions{LabelSelector: v.label, FieldSelector: v.field,
					ResourceVersion: fmt.Sprint(info.ResourceVersion), ResourceVersionMatch: metav1.ResourceVersionMatchExact})
				if err != nil {
					t.Fatalf("%v: list at stored RV %d: %v", v, info.ResourceVersion, err)
				}
				if exact := objectSet(at.Items); !equalSets(cached, exact) {
					t.Fatalf("%v: cache at RV %d = %v, apiserver at that RV = %v", v, info.ResourceVersion, cached, exact)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: cache never matched the apiserver: %s; stats %+v", v, last, hub.mgr.Stats())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func meta(o any) (metav1.Object, error) {
	type objMeta interface{ GetObjectMeta() metav1.Object }
	if m, ok := o.(objMeta); ok {
		return m.GetObjectMeta(), nil
	}
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u, nil
	}
	return nil, fmt.Errorf("%T has no metadata", o)
}

func objectSet(items []unstructured.Unstructured) map[string]string {
	m := map[string]string{}
	for _, it := range items {
		m[it.GetNamespace()+"/"+it.GetName()] = it.GetResourceVersion()
	}
	return m
}

// storedSet reads a view from the store, checking that every object's bytes decode
// to the name and resourceVersion the store indexes them by, in the expected encoding.
func storedSet(st *store.Store, k store.ListKey, wantJSON bool) (map[string]string, store.ListInfo, error) {
	m := map[string]string{}
	info, err := st.List(context.Background(), k, func(o store.Object) error {
		var it wire.Item
		var err error
		if o.Encoding == store.EncodingJSON {
			if !wantJSON {
				return fmt.Errorf("%s/%s stored as JSON, want protobuf", o.Namespace, o.Name)
			}
			err = wire.ParseJSONItem(o.Data, "", "", false, &it)
			var tm struct{ Kind, APIVersion string }
			if json.Unmarshal(o.Data, &tm); tm.Kind == "" || tm.APIVersion == "" {
				return fmt.Errorf("%s/%s stored without kind/apiVersion", o.Namespace, o.Name)
			}
		} else {
			if wantJSON {
				return fmt.Errorf("%s/%s stored as protobuf, want JSON", o.Namespace, o.Name)
			}
			err = wire.ParseProtoEnvelope(o.Data, false, &it)
		}
		if err != nil {
			return err
		}
		if it.Name != o.Name || it.Namespace != o.Namespace || it.RV != o.ResourceVersion {
			return fmt.Errorf("stored bytes name %s/%s@%d, indexed as %s/%s@%d", it.Namespace, it.Name, it.RV, o.Namespace, o.Name, o.ResourceVersion)
		}
		m[o.Namespace+"/"+o.Name] = fmt.Sprint(o.ResourceVersion)
		return nil
	})
	return m, info, err
}

func equalSets(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func withTimeout(ctx context.Context, d time.Duration) <-chan struct{} {
	c, cancel := context.WithTimeout(ctx, d)
	go func() { <-c.Done(); cancel() }()
	return c.Done()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
}

func testService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func testSlice(name, svc string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
	}
}

func testWidget(name string, size int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"size": int64(size)},
	}}
}
