package localproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
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
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/cachemgr"
	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/healthcheck"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testkube"
)

// e2eHub is the hub's request path assembled from the real parts, as the daemon
// wires them: internal/proxy in edge mode over a load balancer whose health the
// real health checker (internal/healthcheck) keeps, cachemgr as the Cacher (behind
// this package's TokenCacher), this package's Handler as Local, and a bbolt cache
// file the test can close and reopen (a hub restart). Upstream credentials are the
// harness's admin token (the hub's own identity in these tests).
type e2eHub struct {
	t      testing.TB
	srv    *httptest.Server
	st     *store.Store
	mgr    *cachemgr.Manager
	local  *Handler
	lb     *loadbalancer.Balancer
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

func startE2EHub(t testing.TB, c *testkube.Cluster, cachePath string) *e2eHub {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(cachePath, store.Options{NoSync: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &e2eHub{t: t, st: st, done: make(chan struct{})}
	h.mgr = cachemgr.New(st, log, cachemgr.Options{})
	h.mgr.SetCacheAgents("kubectl")
	target, _ := url.Parse(c.URL())
	h.lb, err = loadbalancer.New([]*url.URL{target}, loadbalancer.Options{Mode: config.LBModeRoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM, keyPEM := c.IssueNodeClientCert(testNode)
	clientFile := filepath.Join(dir, "client.pem")
	if err := os.WriteFile(clientFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	src := certs.NewKubeletSource(c.CAFile(), clientFile, dir)
	hc := healthcheck.New(h.lb, src, healthcheck.Options{NodeName: testNode, HeartbeatInterval: 10 * time.Second,
		HeartbeatTimeout: 2 * time.Second, FailedRetry: 3, HealthyThreshold: 2, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		hc.Run(ctx)
	}()
	h.local, err = New(Options{Store: st, CloudHealthy: h.lb.AnyHealthy, Log: log, BookmarkInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{WorkingMode: config.WorkingModeEdge, LB: h.lb, CertTransport: rt, TokenTransport: rt,
		Cacher: h.local.TokenCacher(h.mgr), Local: h.local, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(px)
	t.Cleanup(h.stop)
	return h
}

func (h *e2eHub) stop() {
	if h.closed {
		return
	}
	h.closed = true
	h.srv.CloseClientConnections()
	h.local.Close()
	h.srv.Close()
	h.cancel()
	<-h.done
	h.mgr.Close()
	_ = h.st.Close()
}

func (h *e2eHub) waitHealthy(want bool) {
	h.t.Helper()
	waitFor(h.t, 30*time.Second, fmt.Sprintf("cloud healthy=%v", want), func() bool { return h.lb.AnyHealthy() == want })
}

func (h *e2eHub) config(component string, protobuf bool) *rest.Config {
	cfg := &rest.Config{Host: h.srv.URL, UserAgent: component + "/v1.36.3 (linux/amd64) kubernetes/test", QPS: -1}
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	return cfg
}

// kubeconfig writes a kubeconfig for kubectl pointing at the hub with the admin token.
func (h *e2eHub) kubeconfig(c *testkube.Cluster) string {
	h.t.Helper()
	p := filepath.Join(h.t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster:
    server: %s
contexts:
- name: hub
  context: {cluster: hub, user: admin}
current-context: hub
users:
- name: admin
  user: {token: %s}
`, h.srv.URL, c.AdminToken())
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// kubectl runs the harness's kubectl against the hub; it returns output and error.
func kubectl(t testing.TB, c *testkube.Cluster, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(c.KubectlPath(), append([]string{"--kubeconfig", kubeconfig, "--request-timeout", "20s"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(kubeconfig), "KUBECACHEDIR="+filepath.Join(filepath.Dir(kubeconfig), "cache-"+fmt.Sprint(time.Now().UnixNano())))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	gatesOnce    sync.Once
	defaultGates clientfeatures.Gates
)

// setWatchList turns client-go's WatchListClient feature on or off for informers
// created from now on.
func setWatchList(t testing.TB, on bool) {
	gatesOnce.Do(func() { defaultGates = clientfeatures.FeatureGates() })
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

func createWidgetCRD(t testing.TB, cfg *rest.Config) {
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
	waitFor(t, 60*time.Second, "widgets CRD served", func() bool {
		_, err := dyn.Resource(widgetGVR).Namespace("default").List(context.Background(), metav1.ListOptions{})
		return err == nil
	})
}

func widget(ns, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": ns, "name": name}, "spec": map[string]any{"size": 1}}}
}

func e2ePod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

func e2eService(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
}

func e2eSlice(ns, name, svc string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}, NodeName: ptr.To(testNode)}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(80))}}}
}

// names returns the sorted namespace/name keys of objects.
func names[T any](objs []T, key func(T) string) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, key(o))
	}
	sort.Strings(out)
	return out
}

func objKey(o any) string {
	m, err := metaOf(o)
	if err != nil {
		return fmt.Sprintf("?%T", o)
	}
	return m.GetNamespace() + "/" + m.GetName()
}

func metaOf(o any) (metav1.Object, error) {
	if m, ok := o.(metav1.Object); ok {
		return m, nil
	}
	return nil, fmt.Errorf("%T has no metadata", o)
}

func sameKeys(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

var _ = http.MethodGet
