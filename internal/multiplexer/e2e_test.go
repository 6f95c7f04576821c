package multiplexer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/testkube"
)

const churnNS = "mux"

// churner writes services and EndpointSlices in namespace mux: creates, label
// flips (objects move in and out of the informers' label selectors), endpoint
// changes and deletes.
type churner struct {
	t    *testing.T
	cs   kubernetes.Interface
	rnd  *rand.Rand
	svcs map[string]bool
	eps  map[string]bool
	next int
}

func newChurner(t *testing.T, cs kubernetes.Interface) *churner {
	return &churner{t: t, cs: cs, rnd: rand.New(rand.NewPCG(18, 18)), svcs: map[string]bool{}, eps: map[string]bool{}}
}

func (c *churner) app() string {
	if c.rnd.IntN(2) == 0 {
		return "a"
	}
	return "b"
}

func pick(m map[string]bool, r *rand.Rand) string {
	i := r.IntN(len(m))
	for k := range m {
		if i == 0 {
			return k
		}
		i--
	}
	return ""
}

func (c *churner) slice(name string) *discoveryv1.EndpointSlice {
	ready := c.rnd.IntN(2) == 0
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: churnNS, Labels: map[string]string{"app": c.app()}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.1.%d.%d", c.rnd.IntN(250), 1+c.rnd.IntN(250))},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
}

// step makes n random changes.
func (c *churner) step(n int) {
	c.t.Helper()
	ctx := context.Background()
	for range n {
		var err error
		switch op := c.rnd.IntN(10); {
		case op < 3 || len(c.svcs) < 3:
			name := fmt.Sprintf("svc-%d", c.next)
			c.next++
			_, err = c.cs.CoreV1().Services(churnNS).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": c.app()}},
				Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": name}},
			}, metav1.CreateOptions{})
			c.svcs[name] = true
			name = fmt.Sprintf("eps-%d", c.next)
			_, err2 := c.cs.DiscoveryV1().EndpointSlices(churnNS).Create(ctx, c.slice(name), metav1.CreateOptions{})
			c.eps[name] = true
			if err == nil {
				err = err2
			}
		case op < 6:
			name := pick(c.svcs, c.rnd)
			var s *corev1.Service
			if s, err = c.cs.CoreV1().Services(churnNS).Get(ctx, name, metav1.GetOptions{}); err == nil {
				s.Labels["app"] = c.app()
				_, err = c.cs.CoreV1().Services(churnNS).Update(ctx, s, metav1.UpdateOptions{})
			}
		case op < 9 && len(c.eps) > 0:
			name := pick(c.eps, c.rnd)
			var e *discoveryv1.EndpointSlice
			if e, err = c.cs.DiscoveryV1().EndpointSlices(churnNS).Get(ctx, name, metav1.GetOptions{}); err == nil {
				n := c.slice(name)
				n.ResourceVersion = e.ResourceVersion
				_, err = c.cs.DiscoveryV1().EndpointSlices(churnNS).Update(ctx, n, metav1.UpdateOptions{})
			}
		default:
			name := pick(c.svcs, c.rnd)
			err = c.cs.CoreV1().Services(churnNS).Delete(ctx, name, metav1.DeleteOptions{})
			delete(c.svcs, name)
			if len(c.eps) > 0 {
				name = pick(c.eps, c.rnd)
				if err2 := c.cs.DiscoveryV1().EndpointSlices(churnNS).Delete(ctx, name, metav1.DeleteOptions{}); err == nil {
					err = err2
				}
				delete(c.eps, name)
			}
		}
		if err != nil && !apierrors.IsConflict(err) {
			c.t.Fatalf("churn: %v", err)
		}
	}
}

// TestMultiplexerInformers: client-go informers of services and EndpointSlices
// (JSON and protobuf, watch-list on and off, selectors) through the hub see what
// their twins see directly, across churn, a hub restart, and an outage during
// which the cloud changes (the hub's upstream watch gets 410 when the cloud is
// back: it relists, and the local clients relist from it); the apiserver counts
// one watch per resource from the hub for 8 local watchers; offline, the clients
// keep being served and a new one syncs.
func TestMultiplexerInformers(t *testing.T) {
	c := testkube.Start(t, testkube.Options{})
	c.GrantNodeReadAll(t, testNode)
	a := c.APIServer()
	// A second apiserver on the same etcd: the writer and the direct twins use it,
	// so the cloud keeps changing (and the twins keep seeing it) while the hub's
	// apiserver is stopped.
	b := c.StartExtraAPIServer(t)
	direct := rest.CopyConfig(c.AdminConfig())
	direct.Host = b.URL()
	admin := kubernetes.NewForConfigOrDie(direct)
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: churnNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ch := newChurner(t, admin)
	ch.step(30)

	baseSvc, baseEps := apiserverWatches(t, c, a, "services"), apiserverWatches(t, c, a, "endpointslices")
	cfg := hubConfig(t, c, a.URL())
	h := startHub(t, cfg)
	waitUntil(t, 30*time.Second, "the multiplexer's first lists", func() bool {
		return h.metric(t, "node_yurthub_multiplexer_ready") == 2
	})

	specs := []informerSpec{
		{resource: "services"},
		{resource: "services", protobuf: true, watchList: true},
		{resource: "services", watchList: true, label: "app=a"},
		{resource: "services", protobuf: true, namespace: churnNS},
		{resource: "endpointslices"},
		{resource: "endpointslices", protobuf: true, watchList: true},
		{resource: "endpointslices", watchList: true, namespace: churnNS},
		{resource: "endpointslices", protobuf: true, label: "app=b"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hubCfg := &rest.Config{Host: h.proxyURL()}
	var viaHub, twins []*informer
	for i, s := range specs {
		viaHub = append(viaHub, startInformer(t, ctx, hubCfg, fmt.Sprintf("agent-%d/v1.36.3", i), s))
	}
	waitUntil(t, 30*time.Second, "the informers through the hub to sync", func() bool {
		for _, in := range viaHub {
			if !in.synced() {
				return false
			}
		}
		return true
	})
	countWatches := func(when string) {
		t.Helper()
		// The hub's own watch per resource, whatever the 8 local watches.
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if apiserverWatches(t, c, a, "services") == baseSvc+1 && apiserverWatches(t, c, a, "endpointslices") == baseEps+1 {
				break
			}
		}
		time.Sleep(time.Second) // and it stays one
		s, e := apiserverWatches(t, c, a, "services")-baseSvc, apiserverWatches(t, c, a, "endpointslices")-baseEps
		ws, we := h.metric(t, "node_yurthub_multiplexer_watchers", `resource="/v1/services"`), h.metric(t, "node_yurthub_multiplexer_watchers", `resource="discovery.k8s.io/v1/endpointslices"`)
		t.Logf("%s: upstream watches from the hub: services %v, endpointslices %v; local watches served: %v, %v", when, s, e, ws, we)
		// The hub's own Service informer (the servicetopology filter's) is one more
		// local watcher of services.
		if s != 1 || e != 1 || ws != 4+1 || we != 4 {
			t.Fatalf("%s: upstream watches services %v endpointslices %v (want 1 each); local watches %v, %v (want 5: 4 + the filters' own, and 4)", when, s, e, ws, we)
		}
	}
	countWatches("online")

	for i, s := range specs {
		twins = append(twins, startInformer(t, ctx, direct, fmt.Sprintf("twin-%d/v1.36.3", i), s))
	}
	converge := func(when string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for i := range viaHub {
			for {
				d := "not synced"
				if viaHub[i].synced() && twins[i].synced() {
					d = diff(viaHub[i].state(), twins[i].state())
				}
				if d == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: informer %s through the hub differs from its direct twin: %s", when, specs[i], d)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if bad := viaHub[i].firstBad(); bad != "" {
				t.Fatalf("%s: informer %s through the hub: %s", when, specs[i], bad)
			}
		}
		t.Logf("%s: all %d informers through the hub equal their direct twins (%d services, %d endpointslices in %s)", when, len(viaHub), len(ch.svcs), len(ch.eps), churnNS)
	}
	ch.step(150)
	converge("churn")

	// A hub restart: the state comes back from the cache file; the clients'
	// watches resume.
	h.stop()
	ch.step(20)
	h = startHub(t, cfg)
	ch.step(50)
	converge("hub restarted")
	countWatches("after the restart")

	// An outage during which the cloud changes. Offline the clients stay served
	// and a new one syncs from the last state.
	listsBefore := h.metric(t, "node_yurthub_multiplexer_upstream_lists_total")
	offline := viaHub[1].state()
	a.Stop(t)
	ch.step(100)
	late := startInformer(t, ctx, hubCfg, "late-agent/v1.36.3", specs[1])
	waitUntil(t, 30*time.Second, "a new informer to sync offline", late.synced)
	if d := diff(late.state(), offline); d != "" {
		t.Fatalf("offline: a new informer through the hub got another state than the open ones: %s", d)
	}
	if d := diff(viaHub[1].state(), offline); d != "" {
		t.Fatalf("offline: an open informer's state changed with the cloud unreachable: %s", d)
	}
	t.Logf("offline: a new informer synced %d services from the hub", len(offline))
	a.Start(t)
	ch.step(20)
	converge("outage over")
	listsAfter := h.metric(t, "node_yurthub_multiplexer_upstream_lists_total")
	t.Logf("upstream lists by the hub: %v before the outage, %v after", listsBefore, listsAfter)
	if listsAfter <= listsBefore {
		t.Errorf("the hub did not relist after the outage (lists %v => %v): the 410 path was not exercised", listsBefore, listsAfter)
	}
	if d := diff(late.state(), twins[1].state()); d != "" {
		t.Fatalf("the informer started offline differs from its twin once the cloud is back: %s", d)
	}
}
