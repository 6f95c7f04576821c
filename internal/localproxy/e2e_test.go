package localproxy

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testkube"
)

const appNS = "apps"

// informerSet is one component's informers through the hub.
type informerSet struct {
	name string
	infs map[string]cache.SharedIndexInformer
	stop chan struct{}
}

func (s *informerSet) keys(res string) []string {
	return names(s.infs[res].GetStore().List(), objKey)
}

func (s *informerSet) close() { close(s.stop) }

// startComponent starts the informers a component runs: kubelet (its pods, its
// node, configmaps and secrets), kube-proxy and coredns (services, endpointslices).
func startComponent(t *testing.T, hub *e2eHub, component string, protobuf bool) *informerSet {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(hub.config(component, protobuf))
	s := &informerSet{name: component, infs: map[string]cache.SharedIndexInformer{}, stop: make(chan struct{})}
	switch component {
	case "kubelet":
		pods := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", testNode).String()
		}))
		nodes := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", testNode).String()
		}))
		nsd := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(appNS))
		s.infs["pods"] = pods.Core().V1().Pods().Informer()
		s.infs["nodes"] = nodes.Core().V1().Nodes().Informer()
		s.infs["configmaps"] = nsd.Core().V1().ConfigMaps().Informer()
		s.infs["secrets"] = nsd.Core().V1().Secrets().Informer()
		pods.Start(s.stop)
		nodes.Start(s.stop)
		nsd.Start(s.stop)
	default:
		f := informers.NewSharedInformerFactory(cs, 0)
		s.infs["services"] = f.Core().V1().Services().Informer()
		s.infs["endpointslices"] = f.Discovery().V1().EndpointSlices().Informer()
		f.Start(s.stop)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for res, inf := range s.infs {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			s.close()
			t.Fatalf("%s %s informer did not sync through the hub", component, res)
		}
	}
	return s
}

// cloudKeys lists what each informer should hold, from the apiserver directly.
func cloudKeys(t *testing.T, cs kubernetes.Interface) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
	must(t, err)
	out["pods"] = names(pods.Items, func(p corev1.Pod) string { return p.Namespace + "/" + p.Name })
	out["nodes"] = []string{"/" + testNode}
	cms, err := cs.CoreV1().ConfigMaps(appNS).List(ctx, metav1.ListOptions{})
	must(t, err)
	out["configmaps"] = names(cms.Items, func(p corev1.ConfigMap) string { return p.Namespace + "/" + p.Name })
	secs, err := cs.CoreV1().Secrets(appNS).List(ctx, metav1.ListOptions{})
	must(t, err)
	out["secrets"] = names(secs.Items, func(p corev1.Secret) string { return p.Namespace + "/" + p.Name })
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	must(t, err)
	out["services"] = names(svcs.Items, func(p corev1.Service) string { return p.Namespace + "/" + p.Name })
	sl, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	must(t, err)
	out["endpointslices"] = nil
	for _, e := range sl.Items {
		out["endpointslices"] = append(out["endpointslices"], e.Namespace+"/"+e.Name)
	}
	out["endpointslices"] = names(out["endpointslices"], func(s string) string { return s })
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkSet fails unless every informer of s holds exactly want's keys.
func checkSet(t *testing.T, s *informerSet, want map[string][]string, when string) {
	t.Helper()
	for res := range s.infs {
		if got := s.keys(res); !sameKeys(got, want[res]) {
			t.Errorf("%s: %s %s informer holds %v, want %v", when, s.name, res, got, want[res])
		}
	}
}

func eventually(s *informerSet, want map[string][]string) func() bool {
	return func() bool {
		for res := range s.infs {
			if !sameKeys(s.keys(res), want[res]) {
				return false
			}
		}
		return true
	}
}

// TestOffline runs kubelet-, kube-proxy- and coredns-shaped informers and kubectl
// through the hub against a real kube-apiserver, stops the apiserver, and checks
// every offline behaviour of REFERENCE section 4 end to end.
func TestOffline(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	dyn := dynamic.NewForConfigOrDie(c.AdminConfig())

	_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}, metav1.CreateOptions{})
	must(t, err)
	for _, n := range []string{"web-0", "web-1", "web-2", "web-3"} {
		_, err = admin.CoreV1().Pods(appNS).Create(ctx, e2ePod(appNS, n), metav1.CreateOptions{})
		must(t, err)
	}
	other := e2ePod(appNS, "elsewhere")
	other.Spec.NodeName = "other-node"
	_, err = admin.CoreV1().Pods(appNS).Create(ctx, other, metav1.CreateOptions{})
	must(t, err)
	for _, n := range []string{"svc-a", "svc-b"} {
		_, err = admin.CoreV1().Services(appNS).Create(ctx, e2eService(appNS, n), metav1.CreateOptions{})
		must(t, err)
		_, err = admin.DiscoveryV1().EndpointSlices(appNS).Create(ctx, e2eSlice(appNS, n+"-x", n), metav1.CreateOptions{})
		must(t, err)
	}
	_, err = admin.CoreV1().ConfigMaps(appNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().Secrets(appNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().ServiceAccounts(appNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	must(t, err)
	createWidgetCRD(t, c.AdminConfig())
	for _, n := range []string{"w-0", "w-1"} {
		_, err = dyn.Resource(widgetGVR).Namespace(appNS).Create(ctx, widget(appNS, n), metav1.CreateOptions{})
		must(t, err)
	}

	cachePath := filepath.Join(t.TempDir(), "cache.db")
	hub := startE2EHub(t, c, cachePath)
	hub.waitHealthy(true)

	// Online: the components start (watch-list on, as client-go >= 1.32 does), kubectl
	// reads (-o json: kubectl's Table reads are not cached, plain ones are), and kubelet
	// gets a service-account token.
	setWatchList(t, true)
	kubelet := startComponent(t, hub, "kubelet", true)
	defer kubelet.close()
	kubeProxy := startComponent(t, hub, "kube-proxy", false)
	defer kubeProxy.close()
	coredns := startComponent(t, hub, "coredns", false)
	defer coredns.close()
	want := cloudKeys(t, admin)
	for _, s := range []*informerSet{kubelet, kubeProxy, coredns} {
		checkSet(t, s, want, "online")
	}
	kc := hub.kubeconfig(c)
	for _, args := range [][]string{{"get", "pods", "-A"}, {"get", "configmaps", "-n", appNS}, {"get", "pods", "-A", "-o", "json"}, {"get", "services", "-A", "-o", "json"}, {"get", "widgets", "-A", "-o", "json"}} {
		if out, err := kubectl(t, c, kc, args...); err != nil {
			t.Fatalf("kubectl %v online: %v\n%s", args, err, out)
		}
	}
	kubeletCS := kubernetes.NewForConfigOrDie(hub.config("kubelet", true))
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{"https://kubernetes.default.svc"}, ExpirationSeconds: ptr.To(int64(3600))}}
	onlineToken, err := kubeletCS.CoreV1().ServiceAccounts(appNS).CreateToken(ctx, "app", tr, metav1.CreateOptions{})
	must(t, err)
	// What kubelet asks for a kube-api-access volume: no audiences. The apiserver
	// answers with its default audiences filled in; offline the same question must
	// find the token (it was filed under the answer's audiences only, once).
	trDefault := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3607))}}
	defaultToken, err := kubeletCS.CoreV1().ServiceAccounts(appNS).CreateToken(ctx, "app", trDefault, metav1.CreateOptions{})
	must(t, err)
	if len(defaultToken.Spec.Audiences) == 0 {
		t.Fatalf("the apiserver answered a TokenRequest without audiences with none filled in: %+v", defaultToken.Spec)
	}
	time.Sleep(2 * time.Second) // let the cache manager commit what it teed (Wait would wait for the open watches)

	// Cut the cloud.
	c.APIServer().Stop(t)
	cut := time.Now()
	hub.waitHealthy(false)
	t.Logf("cloud loss noticed after %s", time.Since(cut))

	t.Run("running informers keep their state", func(t *testing.T) {
		waitFor(t, 10*time.Second, "informers re-watching locally", func() bool { return hub.local.ActiveWatches() >= 8 })
		time.Sleep(2 * time.Second)
		for _, s := range []*informerSet{kubelet, kubeProxy, coredns} {
			checkSet(t, s, want, "offline")
		}
	})

	t.Run("new informers sync from the cache", func(t *testing.T) {
		for _, wl := range []bool{false, true} {
			setWatchList(t, wl)
			for _, proto := range []bool{false, true} {
				for _, comp := range []string{"kubelet", "kube-proxy", "coredns"} {
					s := startComponent(t, hub, comp, proto)
					checkSet(t, s, want, comp+" started offline")
					s.close()
				}
			}
		}
	})

	t.Run("kubectl lists pods, services and a CRD", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"get", "pods", "-A"}, []string{"web-0", "web-3", "elsewhere"}},
			{[]string{"get", "pods", "-n", appNS, "-o", "name"}, []string{"pod/web-1"}},
			{[]string{"get", "services", "-A"}, []string{"svc-a", "svc-b"}},
			{[]string{"get", "widgets", "-A"}, []string{"w-0", "w-1"}},
		} {
			out, err := kubectl(t, c, kc, tc.args...)
			if err != nil {
				t.Errorf("kubectl %v offline: %v\n%s", tc.args, err, out)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("kubectl %v offline: no %q in\n%s", tc.args, w, out)
				}
			}
		}
		// kubectl read configmaps only as a Table (not cached): a clear error, not
		// "No resources found".
		if out, err := kubectl(t, c, kc, "get", "configmaps", "-n", appNS); err == nil || !strings.Contains(out, "never listed") {
			t.Errorf("kubectl get configmaps offline (only Table reads online): want a clear error, got %v\n%s", err, out)
		}
		if out, err := kubectl(t, c, kc, "delete", "pod", "-n", appNS, "web-0", "--wait=false"); err == nil || !strings.Contains(out, "unreachable") {
			t.Errorf("kubectl delete offline: want a clear refusal, got %v\n%s", err, out)
		}
	})

	t.Run("offline writes", func(t *testing.T) {
		p, err := kubeletCS.CoreV1().Pods(appNS).Patch(ctx, "web-1", types.StrategicMergePatchType,
			[]byte(`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`), metav1.PatchOptions{}, "status")
		if err != nil || p.Status.Phase != corev1.PodRunning {
			t.Fatalf("kubelet pod status patch: %v", err)
		}
		if p, err = kubeletCS.CoreV1().Pods(appNS).Get(ctx, "web-1", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
			t.Fatalf("pod status after the offline patch: %v %v", err, p.Status.Phase)
		}
		n, err := kubeletCS.CoreV1().Nodes().Patch(ctx, testNode, types.StrategicMergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}`), metav1.PatchOptions{}, "status")
		if err != nil || len(n.Status.Conditions) != 1 {
			t.Fatalf("kubelet node status patch: %v", err)
		}
		ev, err := kubeletCS.CoreV1().Events(appNS).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-1."},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: appNS, Name: "web-1"}, Reason: "Offline", Type: "Normal"}, metav1.CreateOptions{})
		if err != nil || !strings.HasPrefix(ev.Name, "web-1.") {
			t.Fatalf("event create: %v", err)
		}
		if _, err := kubeletCS.CoreV1().Pods(appNS).Create(ctx, e2ePod(appNS, "new"), metav1.CreateOptions{}); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("pod create offline: want 503, got %v", err)
		}
		if err := kubeletCS.CoreV1().Pods(appNS).Delete(ctx, "web-0", metav1.DeleteOptions{}); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("pod delete offline: want 503, got %v", err)
		}
		got, err := kubeletCS.CoreV1().ServiceAccounts(appNS).CreateToken(ctx, "app", tr, metav1.CreateOptions{})
		if err != nil || got.Status.Token != onlineToken.Status.Token {
			t.Fatalf("token request offline: want the token seen online, got %v", err)
		}
		got, err = kubeletCS.CoreV1().ServiceAccounts(appNS).CreateToken(ctx, "app", trDefault, metav1.CreateOptions{})
		if err != nil || got.Status.Token != defaultToken.Status.Token {
			t.Fatalf("token request without audiences offline (kubelet's kube-api-access volume): want the token seen online for the same request, got %v", err)
		}
		tr2 := tr.DeepCopy()
		tr2.Spec.Audiences = []string{"other"}
		// No token seen for these audiences: a placeholder (placeholder_token.go).
		ph, err := kubeletCS.CoreV1().ServiceAccounts(appNS).CreateToken(ctx, "app", tr2, metav1.CreateOptions{})
		checkPlaceholder(t, "token request for unseen audiences offline", ph, err, time.Now())
	})

	t.Run("cloud changes during the outage converge on return", func(t *testing.T) {
		// Change the cluster through a second apiserver on the same etcd: the hub only
		// knows the stopped one.
		extra := c.StartExtraAPIServer(t)
		xcfg := rest.CopyConfig(c.AdminConfig())
		xcfg.Host = extra.URL()
		x := kubernetes.NewForConfigOrDie(xcfg)
		must(t, x.CoreV1().Pods(appNS).Delete(ctx, "web-0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}))
		_, err := x.CoreV1().Pods(appNS).Create(ctx, e2ePod(appNS, "web-new"), metav1.CreateOptions{})
		must(t, err)
		must(t, x.CoreV1().Services(appNS).Delete(ctx, "svc-b", metav1.DeleteOptions{}))
		_, err = x.CoreV1().Services(appNS).Create(ctx, e2eService(appNS, "svc-new"), metav1.CreateOptions{})
		must(t, err)
		_, err = x.CoreV1().ConfigMaps(appNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg-new"}}, metav1.CreateOptions{})
		must(t, err)
		want = cloudKeys(t, x)

		c.APIServer().Start(t)
		back := time.Now()
		for _, s := range []*informerSet{kubelet, kubeProxy, coredns} {
			waitFor(t, 20*time.Second, s.name+" informers converged", eventually(s, want))
		}
		t.Logf("every informer converged %s after the apiserver was back", time.Since(back))
		// kubectl's cached view is as of its last read: read again online.
		hub.waitHealthy(true)
		if out, err := kubectl(t, c, kc, "get", "pods", "-A", "-o", "json"); err != nil || !strings.Contains(out, "web-new") {
			t.Fatalf("kubectl after the cloud returned: %v\n%s", err, out)
		}
		// The cache holds no stale object: kubelet's pod view equals the cloud.
		waitFor(t, 10*time.Second, "kubelet pod view in the cache equals the cloud", func() bool {
			var got []string
			_, err := hub.st.List(ctx, listKey("kubelet", "/api/v1/pods", "", "spec.nodeName="+testNode), func(o store.Object) error {
				got = append(got, o.Namespace+"/"+o.Name)
				return nil
			})
			return err == nil && sameKeys(names(got, func(s string) string { return s }), want["pods"])
		})
	})

	t.Run("hub restarted offline serves the same", func(t *testing.T) {
		hub.waitHealthy(true)
		time.Sleep(time.Second)
		c.APIServer().Stop(t)
		hub.stop()
		start := time.Now()
		hub2 := startE2EHub(t, c, cachePath)
		cs := kubernetes.NewForConfigOrDie(hub2.config("kubelet", true))
		var pods *corev1.PodList
		waitFor(t, 10*time.Second, "first offline list after restart", func() bool {
			var err error
			pods, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
			return err == nil
		})
		t.Logf("restarted hub served kubelet's pod list offline %s after start", time.Since(start))
		if got := names(pods.Items, func(p corev1.Pod) string { return p.Namespace + "/" + p.Name }); !sameKeys(got, want["pods"]) {
			t.Fatalf("restarted hub: pods %v, want %v", got, want["pods"])
		}
		for _, wl := range []bool{false, true} {
			setWatchList(t, wl)
			for _, comp := range []string{"kubelet", "kube-proxy", "coredns"} {
				s := startComponent(t, hub2, comp, wl)
				checkSet(t, s, want, comp+" after an offline restart")
				s.close()
			}
		}
		kc2 := hub2.kubeconfig(c)
		if out, err := kubectl(t, c, kc2, "get", "pods", "-A"); err != nil || !strings.Contains(out, "web-new") || strings.Contains(out, "web-0") {
			t.Fatalf("kubectl after an offline restart: %v\n%s", err, out)
		}
		hub2.stop()
	})

	t.Run("restarted offline with an empty cache", func(t *testing.T) {
		hub3 := startE2EHub(t, c, filepath.Join(t.TempDir(), "empty.db"))
		cs := kubernetes.NewForConfigOrDie(hub3.config("kubelet", false))
		_, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "never listed") {
			t.Fatalf("empty cache list: want a clear 503, got %v", err)
		}
		_, err = cs.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "never read any nodes") {
			t.Fatalf("empty cache get: want a clear 503, got %v", err)
		}
		req, _ := http.NewRequest(http.MethodGet, hub3.srv.URL+"/version", nil)
		req.Header.Set("User-Agent", "kubectl/v1.36.3")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "never read into this node's cache") {
			t.Fatalf("empty cache /version: %d %s", resp.StatusCode, body)
		}
		hub3.stop()
	})
}
