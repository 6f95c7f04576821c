package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

const kubeProxyConf = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nmode: iptables\n"

// componentClient is a client through the hub's plain proxy port with the
// User-Agent of a real node component (product/version (os/arch) kubernetes/commit),
// protobuf as client-go's typed clients of kube-proxy and kubelet ask.
func componentClient(c *testkube.Cluster, port int, product string) kubernetes.Interface {
	ua := strings.Replace(c.KubeletUserAgent(), "kubelet/", product+"/", 1)
	rc := &rest.Config{Host: fmt.Sprintf("http://127.0.0.1:%d", port), UserAgent: ua, QPS: -1}
	rc.ContentType, rc.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf+","+runtime.ContentTypeJSON
	return kubernetes.NewForConfigOrDie(rc)
}

// proxyView is kube-proxy's view: real informers on services and endpointslices,
// recording the events their handlers get.
type proxyView struct {
	factory informers.SharedInformerFactory
	stop    chan struct{}
	mu      sync.Mutex
	events  []string // "ADD svc default/x", "DELETE slice default/y", ...
}

func startProxyView(t *testing.T, cs kubernetes.Interface) *proxyView {
	t.Helper()
	v := &proxyView{factory: informers.NewSharedInformerFactory(cs, 0), stop: make(chan struct{})}
	rec := func(kind string) cache.ResourceEventHandler {
		add := func(op string, obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			m, _ := obj.(metav1.Object)
			if m == nil {
				return
			}
			v.mu.Lock()
			v.events = append(v.events, op+" "+kind+" "+m.GetNamespace()+"/"+m.GetName())
			v.mu.Unlock()
		}
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { add("ADD", o) },
			UpdateFunc: func(_, o any) { add("UPDATE", o) },
			DeleteFunc: func(o any) { add("DELETE", o) },
		}
	}
	_, _ = v.factory.Core().V1().Services().Informer().AddEventHandler(rec("svc"))
	_, _ = v.factory.Discovery().V1().EndpointSlices().Informer().AddEventHandler(rec("slice"))
	v.factory.Start(v.stop)
	for typ, ok := range v.factory.WaitForCacheSync(v.stop) {
		if !ok {
			t.Fatalf("informer %v not synced", typ)
		}
	}
	t.Cleanup(func() { close(v.stop); v.factory.Shutdown() })
	return v
}

func (v *proxyView) service(ns, name string) *corev1.Service {
	o, ok, _ := v.factory.Core().V1().Services().Informer().GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*corev1.Service)
}

func (v *proxyView) slice(ns, name string) *discoveryv1.EndpointSlice {
	o, ok, _ := v.factory.Discovery().V1().EndpointSlices().Informer().GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*discoveryv1.EndpointSlice)
}

func (v *proxyView) saw(ev string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Contains(v.events, ev)
}

func sliceAddrs(s *discoveryv1.EndpointSlice) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, e := range s.Endpoints {
		out = append(out, e.Addresses...)
	}
	slices.Sort(out)
	return out
}

// kubernetesSlice is the apiserver's own EndpointSlice of default/kubernetes.
const kubernetesSlice = "kubernetes"

// TestFiltersThroughHub: real kube-proxy and kubelet clients (client-go informers,
// their User-Agents, protobuf) through the hub against a real apiserver see the
// seven filters' rewrites; a change of a Service makes the watch deliver the
// right DELETED/ADDED; a topology annotation change ends kube-proxy's slice watch
// so it relists filtered anew; yurt-hub-cfg adds a component live; offline, a new
// kube-proxy informer sees the same filtered state from the cache.
func TestFiltersThroughHub(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node, "edge-2"}})
	c.GrantNodeReadAll(t, node)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()
	mustCreate := func(_ any, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	svc := func(name string, typ corev1.ServiceType, ann map[string]string) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec: corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		return s
	}
	mustCreate(admin.CoreV1().Services("default").Create(ctx, svc("web", corev1.ServiceTypeClusterIP, map[string]string{"openyurt.io/topologyKeys": "kubernetes.io/hostname"}), metav1.CreateOptions{}))
	mustCreate(admin.CoreV1().Services("default").Create(ctx, svc("lb", corev1.ServiceTypeLoadBalancer, map[string]string{"svc.openyurt.io/discard": "true"}), metav1.CreateOptions{}))
	mustCreate(admin.CoreV1().Services("default").Create(ctx, svc("np-other-pool", corev1.ServiceTypeNodePort, map[string]string{"nodeport.openyurt.io/listen": "pool-b"}), metav1.CreateOptions{}))
	mustCreate(admin.CoreV1().Services("default").Create(ctx, svc("np-here", corev1.ServiceTypeNodePort, map[string]string{"nodeport.openyurt.io/listen": "pool-a"}), metav1.CreateOptions{}))
	ready := true
	ep := func(ip, n string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
	}
	port := int32(80)
	mustCreate(admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep("10.1.0.1", node), ep("10.1.0.2", "edge-2")},
		Ports: []discoveryv1.EndpointPort{{Port: &port}}}, metav1.CreateOptions{}))
	// the harness runs the apiserver with --endpoint-reconciler-type=none: write
	// the slice its reconciler would
	https, apiPort := "https", int32(c.APIServer().Port())
	mustCreate(admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: kubernetesSlice, Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &https, Port: &apiPort}}}, metav1.CreateOptions{}))
	mustCreate(admin.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy"},
		Data: map[string]string{"config.conf": kubeProxyConf}}, metav1.CreateOptions{}))
	mustCreate(admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Env: []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "10.0.0.1"}, {Name: "KUBERNETES_SERVICE_PORT", Value: "6443"}}}}}}, metav1.CreateOptions{}))

	// NodePool: the CRD as OpenYurt installs it, pool-a = {edge-1, edge-3}, and a
	// pool-scoped Service whose slice has endpoints in and out of the pool
	c.Kubectl(t, "apply", "-f", filepath.Join(testenv.RepoRoot(t), "testdata", "openyurt", "nodepools.apps.openyurt.io.yaml"))
	c.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd/nodepools.apps.openyurt.io")
	npFile := filepath.Join(t.TempDir(), "pool-a.yaml")
	if err := os.WriteFile(npFile, []byte("apiVersion: apps.openyurt.io/v1beta2\nkind: NodePool\nmetadata:\n  name: pool-a\nspec:\n  type: Edge\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Kubectl(t, "apply", "-f", npFile)
	c.Kubectl(t, "patch", "nodepools.apps.openyurt.io", "pool-a", "--subresource=status", "--type=merge", "-p", `{"status":{"nodes":["edge-1","edge-3"]}}`)
	mustCreate(admin.CoreV1().Services("default").Create(ctx, svc("pooled", corev1.ServiceTypeClusterIP, map[string]string{"openyurt.io/topologyKeys": "openyurt.io/nodepool"}), metav1.CreateOptions{}))
	mustCreate(admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "pooled-1", Labels: map[string]string{discoveryv1.LabelServiceName: "pooled"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep("10.2.0.1", node), ep("10.2.0.2", "edge-2"), ep("10.2.0.3", "edge-3")},
		Ports: []discoveryv1.EndpointPort{{Port: &port}}}, metav1.CreateOptions{}))

	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	cfg.NodePoolName = "pool-a"
	logs, stop := runHub(t, cfg)
	defer stop()
	hubPort := int32(cfg.ProxySecurePort)

	// kube-proxy
	kp := startProxyView(t, componentClient(c, cfg.ProxyPort, "kube-proxy"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := kp.slice("default", kubernetesSlice)
		if s != nil && slices.Equal(sliceAddrs(s), []string{cfg.BindProxyAddress}) && s.Ports[0].Port != nil && *s.Ports[0].Port == hubPort {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-proxy's default/kubernetes slice does not point at the hub %s:%d: %+v\n%s", cfg.BindProxyAddress, hubPort, s, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := sliceAddrs(kp.slice("default", "web-1")); !slices.Equal(got, []string{"10.1.0.1"}) {
		t.Fatalf("kube-proxy's web-1 slice: %v, want only this node's 10.1.0.1", got)
	}
	waitUntilTrue(t, 15*time.Second, "kube-proxy's pooled-1 slice to hold pool-a's endpoints only", func() bool {
		return slices.Equal(sliceAddrs(kp.slice("default", "pooled-1")), []string{"10.2.0.1", "10.2.0.3"})
	})
	t.Logf("kube-proxy: pooled-1 (pool-a = edge-1, edge-3 by NodePool) %v", sliceAddrs(kp.slice("default", "pooled-1")))
	// the pool gains edge-2: kube-proxy's slice watch ends, the relist has it
	c.Kubectl(t, "patch", "nodepools.apps.openyurt.io", "pool-a", "--subresource=status", "--type=merge", "-p", `{"status":{"nodes":["edge-1","edge-2","edge-3"]}}`)
	waitUntilTrue(t, 15*time.Second, "kube-proxy's pooled-1 to follow the pool's new member", func() bool {
		return slices.Equal(sliceAddrs(kp.slice("default", "pooled-1")), []string{"10.2.0.1", "10.2.0.2", "10.2.0.3"})
	})
	c.Kubectl(t, "patch", "nodepools.apps.openyurt.io", "pool-a", "--subresource=status", "--type=merge", "-p", `{"status":{"nodes":["edge-1","edge-3"]}}`)
	waitUntilTrue(t, 15*time.Second, "kube-proxy's pooled-1 to lose edge-2 again", func() bool {
		return slices.Equal(sliceAddrs(kp.slice("default", "pooled-1")), []string{"10.2.0.1", "10.2.0.3"})
	})
	for _, gone := range []string{"lb", "np-other-pool"} {
		if kp.service("default", gone) != nil {
			t.Fatalf("kube-proxy sees service %s", gone)
		}
	}
	if kp.service("default", "np-here") == nil || kp.service("default", "kubernetes") == nil {
		t.Fatal("kube-proxy lost a service it must see")
	}
	if s := kp.service("default", "kubernetes"); s.Spec.ClusterIP == cfg.BindProxyAddress {
		t.Fatal("masterservice applied to kube-proxy (it is kubelet's)")
	}
	t.Logf("kube-proxy: kubernetes slice %v:%d, web-1 %v, services lb and np-other-pool absent",
		sliceAddrs(kp.slice("default", kubernetesSlice)), hubPort, sliceAddrs(kp.slice("default", "web-1")))

	// kubelet
	kl := componentClient(c, cfg.ProxyPort, "kubelet")
	svcs, err := kl.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kube *corev1.Service
	for i := range svcs.Items {
		if svcs.Items[i].Namespace == "default" && svcs.Items[i].Name == "kubernetes" {
			kube = &svcs.Items[i]
		}
	}
	if kube == nil || kube.Spec.ClusterIP != cfg.BindProxyAddress || kube.Spec.Ports[0].Port != hubPort {
		t.Fatalf("kubelet's default/kubernetes: %+v", kube)
	}
	cm, err := kl.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.conf"], "#kubeconfig:") {
		t.Fatalf("kubelet's kube-proxy ConfigMap: %q", cm.Data["config.conf"])
	}
	pods, err := kl.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Spec.Containers[0].Env[0].Value != cfg.BindProxyAddress ||
		pods.Items[0].Spec.Containers[0].Env[1].Value != fmt.Sprint(hubPort) {
		t.Fatalf("kubelet's pod env: %+v", pods.Items)
	}
	t.Logf("kubelet: default/kubernetes %s:%d, kube-proxy config.conf kubeconfig commented, pod env %s=%s",
		kube.Spec.ClusterIP, kube.Spec.Ports[0].Port, pods.Items[0].Spec.Containers[0].Env[0].Name, pods.Items[0].Spec.Containers[0].Env[0].Value)

	// a Service that starts passing arrives as ADDED, one that stops as DELETED
	patch := func(name, ann string) {
		t.Helper()
		p := fmt.Sprintf(`{"metadata":{"annotations":{"svc.openyurt.io/discard":%q}}}`, ann)
		if _, err := admin.CoreV1().Services("default").Patch(ctx, name, types.MergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch("lb", "false")
	waitUntilTrue(t, 10*time.Second, "kube-proxy to get lb ADDED", func() bool { return kp.saw("ADD svc default/lb") })
	patch("lb", "true")
	waitUntilTrue(t, 10*time.Second, "kube-proxy to get lb DELETED", func() bool { return kp.saw("DELETE svc default/lb") })
	if kp.service("default", "lb") != nil {
		t.Fatal("lb still in kube-proxy's store")
	}

	// the topology annotation goes: kube-proxy's slice watch ends, it relists, and
	// web-1 has both endpoints again
	if _, err := admin.CoreV1().Services("default").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"openyurt.io/topologyKeys":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntilTrue(t, 15*time.Second, "kube-proxy's web-1 to have both endpoints after the annotation went", func() bool {
		return slices.Equal(sliceAddrs(kp.slice("default", "web-1")), []string{"10.1.0.1", "10.1.0.2"})
	})
	if _, err := admin.CoreV1().Services("default").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"openyurt.io/topologyKeys":"kubernetes.io/hostname"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntilTrue(t, 15*time.Second, "kube-proxy's web-1 to be this node's only again", func() bool {
		return slices.Equal(sliceAddrs(kp.slice("default", "web-1")), []string{"10.1.0.1"})
	})

	// yurt-hub-cfg: servicetopology for one more component, live
	other := componentClient(c, cfg.ProxyPort, "my-proxy")
	webFor := func(cs kubernetes.Interface) []string {
		l, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil || len(l.Items) != 1 {
			return nil
		}
		return sliceAddrs(&l.Items[0])
	}
	if got := webFor(other); len(got) != 2 {
		t.Fatalf("my-proxy before yurt-hub-cfg: %v, want both endpoints", got)
	}
	mustCreate(admin.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "yurt-hub-cfg"},
		Data: map[string]string{"servicetopology": "my-proxy"}}, metav1.CreateOptions{}))
	waitUntilTrue(t, 15*time.Second, "my-proxy to be filtered after yurt-hub-cfg names it", func() bool {
		return slices.Equal(webFor(other), []string{"10.1.0.1"})
	})

	// offline: a new kube-proxy informer gets the same filtered state from the cache
	c.APIServer().Stop(t)
	kp2 := startProxyView(t, componentClient(c, cfg.ProxyPort, "kube-proxy"))
	if got := sliceAddrs(kp2.slice("default", "web-1")); !slices.Equal(got, []string{"10.1.0.1"}) {
		t.Fatalf("offline web-1: %v", got)
	}
	if got := sliceAddrs(kp2.slice("default", "pooled-1")); !slices.Equal(got, []string{"10.2.0.1", "10.2.0.3"}) {
		t.Fatalf("offline pooled-1: %v", got)
	}
	if got := sliceAddrs(kp2.slice("default", kubernetesSlice)); !slices.Equal(got, []string{cfg.BindProxyAddress}) {
		t.Fatalf("offline kubernetes slice: %v", got)
	}
	if kp2.service("default", "lb") != nil || kp2.service("default", "np-other-pool") != nil {
		t.Fatal("offline: a dropped service is served")
	}
	t.Logf("offline: web-1 %v, kubernetes slice %v, lb and np-other-pool absent", sliceAddrs(kp2.slice("default", "web-1")),
		sliceAddrs(kp2.slice("default", kubernetesSlice)))

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`node_yurthub_filter_objects_total{filter="discardcloudservice",outcome="dropped"}`,
		`node_yurthub_filter_objects_total{filter="servicetopology",outcome="rewritten"}`,
		`node_yurthub_filter_objects_total{filter="masterservice",outcome="rewritten"}`} {
		if grepLines(string(m), want) == "" {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	t.Logf("/metrics:\n%s", grepLines(string(m), "node_yurthub_filter_objects_total{"))
}

// runHubDebug is runHub with DEBUG logging (the local watches log when they
// start).
func runHubDebug(t *testing.T, cfg *config.Config) (*testenv.LogBuffer, func()) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the hub did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	waitHubReady(t, cfg)
	return logs, stop
}

// TestEndpointRepairOffline (openyurtio/openyurt#2810): offline, kubelet reports a
// pod's new IP (PATCH pods/x/status, kubelet's User-Agent); kube-proxy's running
// informer on endpointslices gets the slice with the new address as MODIFIED
// within 1 s; readiness false takes the endpoint out of ready; when the cloud is
// back, kube-proxy relists and the cloud's slice wins.
func TestEndpointRepairOffline(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	c.GrantNodeReadAll(t, node)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()
	const oldIP, newIP = "10.244.1.5", "10.244.1.9"

	if _, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-0", Labels: map[string]string{"app": "app"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: oldIP, PodIPs: []corev1.PodIP{{IP: oldIP}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if pod, err = admin.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, port, n := true, int32(80), node
	if _, err := admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "app-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{oldIP}, NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: pod.UID}},
			{Addresses: []string{"10.244.2.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "elsewhere", UID: "other-uid"}}},
		Ports: []discoveryv1.EndpointPort{{Port: &port}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	logs, stop := runHubDebug(t, cfg)
	defer stop()

	// no NodePool CRD in this cluster: said once, and the hub is ready all the same
	waitUntilTrue(t, 10*time.Second, "the hub to say the cluster has no NodePool API", func() bool {
		return grepLines(logs.String(), "serves no NodePool API") != ""
	})

	// kubelet has its pods cached (its pod list), kube-proxy its slices (informer)
	kl := componentClient(c, cfg.ProxyPort, "kubelet")
	if l, err := kl.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node}); err != nil || len(l.Items) != 1 {
		t.Fatalf("kubelet's pod list: %v", err)
	}
	kp := startProxyView(t, componentClient(c, cfg.ProxyPort, "kube-proxy"))
	addrOf := func() (string, bool) {
		s := kp.slice("default", "app-abc")
		if s == nil {
			return "", false
		}
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && e.TargetRef.Name == "app-0" {
				return strings.Join(e.Addresses, ","), e.Conditions.Ready != nil && *e.Conditions.Ready
			}
		}
		return "", false
	}
	if a, r := addrOf(); a != oldIP || !r {
		t.Fatalf("online: kube-proxy sees %s ready=%v", a, r)
	}

	// the cloud goes. With the default --pool-scope-resources kube-proxy's slices
	// come from the multiplexer, whose watch stays open across the outage (the
	// repair reaches it through Multiplexer.LocalChange); otherwise its watch moves
	// to the hub's local watch.
	multiplexed := slices.Contains(cfg.PoolScopeResources, "discovery.k8s.io/v1/endpointslices")
	c.APIServer().Stop(t)
	waitUntilTrue(t, 30*time.Second, "the hub to serve kube-proxy's endpointslices watch offline", func() bool {
		if multiplexed {
			return grepLines(logs.String(), `msg="apiserver probe failing"`) != ""
		}
		return strings.Contains(grepLines(logs.String(), `msg="local watch started"`), "endpointslices")
	})
	t.Logf("kube-proxy's endpointslices served by the multiplexer: %v", multiplexed)
	var mu sync.Mutex
	var got []time.Time
	var gotAddr []string
	_, _ = kp.factory.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) {
			s := o.(*discoveryv1.EndpointSlice)
			if s.Name != "app-abc" {
				return
			}
			mu.Lock()
			got = append(got, time.Now())
			gotAddr = append(gotAddr, strings.Join(sliceAddrs(s), ","))
			mu.Unlock()
		},
	})

	// kubelet's status manager patches with a two-way strategic merge patch from
	// the status it last wrote to the new one (podutil.PatchPodStatus)
	last := pod.Status
	patchStatus := func(ip string, readyNow corev1.ConditionStatus) time.Time {
		t.Helper()
		next := *last.DeepCopy()
		next.PodIP, next.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		next.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: readyNow}}
		o, _ := json.Marshal(corev1.Pod{Status: last})
		m, _ := json.Marshal(corev1.Pod{Status: next})
		p, err := strategicpatch.CreateTwoWayMergePatch(o, m, corev1.Pod{})
		if err != nil {
			t.Fatal(err)
		}
		last = next
		sent := time.Now()
		if _, err := kl.CoreV1().Pods("default").Patch(ctx, "app-0", types.StrategicMergePatchType, p, metav1.PatchOptions{}, "status"); err != nil {
			t.Fatalf("kubelet's offline status patch: %v", err)
		}
		return sent
	}
	sent := patchStatus(newIP, corev1.ConditionTrue)
	deadline := sent.Add(time.Second)
	for {
		if a, r := addrOf(); a == newIP && r {
			break
		}
		if time.Now().After(deadline) {
			a, r := addrOf()
			t.Fatalf("no MODIFIED slice with the new address within 1 s: kube-proxy sees %s ready=%v\n%s", a, r, grepLines(logs.String(), "repair"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The lister shows the change before the informer's handlers have run: wait for
	// the handler's record too (reading got[0] at once panicked, with mu held, and
	// the informer's shutdown then waited forever for this handler).
	var took time.Duration
	waitUntilTrue(t, 5*time.Second, "kube-proxy's informer handler to see the repaired slice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return false
		}
		took = got[0].Sub(sent)
		return true
	})
	t.Logf("endpoint repair: old IP %s, new IP %s, MODIFIED event at kube-proxy's informer %s after kubelet's PATCH", oldIP, newIP, took.Round(100*time.Microsecond))
	t.Logf("hub: %s", grepLines(logs.String(), "endpoints repaired offline"))
	if a := sliceAddrs(kp.slice("default", "app-abc")); !slices.Contains(a, "10.244.2.3") {
		t.Fatalf("the other pod's endpoint was touched: %v", a)
	}

	patchStatus(newIP, corev1.ConditionFalse)
	waitUntilTrue(t, time.Second, "the endpoint to be not ready", func() bool {
		a, r := addrOf()
		return a == newIP && !r
	})
	t.Logf("readiness false: kube-proxy's endpoint %s ready=false", newIP)

	// the cloud comes back: the local watch ends with 410, kube-proxy relists, the
	// cloud's slice (which never heard of the new IP) wins
	c.APIServer().Start(t)
	waitUntilTrue(t, 60*time.Second, "kube-proxy to hold the cloud's slice again", func() bool {
		a, r := addrOf()
		return a == oldIP && r
	})
	t.Logf("cloud back: kube-proxy's endpoint is the cloud's %s again", oldIP)
	if n := strings.Count(logs.String(), "serves no NodePool API"); n != 1 {
		t.Errorf("the absent NodePool API logged %d times, want once", n)
	}
}
