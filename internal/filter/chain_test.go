package filter

import (
	"slices"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	corev1 "k8s.io/api/core/v1"
)

// A watch turns a Service that stops passing into DELETED and one that starts
// passing into ADDED, and holds back what the client never had.
func TestWatchEvents(t *testing.T) {
	env := testEnv()
	c := chainOf(DiscardCloudService, &env, gvrServices)
	discard := map[string]string{"svc.openyurt.io/discard": "true"}
	lb := func(ann map[string]string) []byte {
		b, _ := encodeAs(t, service("default", "lb", corev1.ServiceTypeLoadBalancer, ann), "Service", "proto+envelope")
		return b
	}
	steps := []struct {
		in      string
		ann     map[string]string
		want    string // "" = held back
		comment string
	}{
		{Modified, discard, Deleted, "unseen, stops passing: the client may hold it from its list"},
		{Modified, discard, "", "already held back"},
		{Modified, nil, Added, "starts passing"},
		{Modified, nil, Modified, "passes"},
		{Modified, discard, Deleted, "stops passing"},
		{Deleted, discard, "", "the client does not have it"},
		{Added, discard, "", "added but dropped"},
		{Modified, nil, Added, "starts passing"},
		{Deleted, nil, Deleted, "deleted"},
		{Added, nil, Added, "added"},
		{Bookmark, nil, Bookmark, "bookmark passes"},
	}
	w := c.NewWatch()
	for i, s := range steps {
		typ, out, send, err := w.Event(s.in, lb(s.ann), Protobuf)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := ""
		if send {
			got = typ
			if len(out) == 0 {
				t.Fatalf("step %d: sent without an object", i)
			}
		}
		if got != s.want {
			t.Fatalf("step %d (%s %s): sent %q, want %q (%s)", i, s.in, s.ann, got, s.want, s.comment)
		}
	}
}

func TestSettings(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{}
	s, err := New(Options{Enabled: true, Disabled: []string{NodePortIsolation}, Env: testEnv(),
		Count: func(f, o string) { mu.Lock(); counts[f+"/"+o]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		ua, verb string
		gvr      schema.GroupVersionResource
		want     []string
	}
	check := func(cases []tc) {
		t.Helper()
		for _, c := range cases {
			var got []string
			if ch := s.ChainFor(c.ua, c.verb, c.gvr); ch != nil {
				got = ch.Names()
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s %s %s: chain %v, want %v", c.ua, c.verb, c.gvr.Resource, got, c.want)
			}
		}
	}
	check([]tc{
		{"kube-proxy/v1.36.3 (linux/amd64) kubernetes/abc", "list", gvrServices, []string{DiscardCloudService}},
		{"kube-proxy", "watch", gvrEndpointSlices, []string{ServiceTopology, ForwardKubeSvcTraffic}},
		{"kube-proxy", "get", gvrEndpointSlices, nil},
		{"kubelet/v1.36.3", "list", gvrServices, []string{MasterService}},
		{"kubelet", "get", gvrConfigMaps, []string{InClusterConfig}},
		{"kubelet", "watch", gvrPods, []string{ServiceEnvUpdater}},
		{"coredns", "list", gvrEndpoints, []string{ServiceTopology}},
		{"coredns", "list", gvrServices, nil},
		{"kubectl", "list", gvrServices, nil},
		{"kube-proxy", "list", schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1beta1", Resource: "endpointslices"}, nil},
	})

	// yurt-hub-cfg adds components, in both key spellings; unknown keys ignored
	s.Apply(map[string]string{"servicetopology": "my-proxy, Other", "filter_masterservice": "agent", "cache_agents": "x", "nodeportisolation": "my-proxy"})
	check([]tc{
		{"my-proxy/1.0", "watch", gvrEndpointSlices, []string{ServiceTopology}},
		{"other", "list", gvrEndpoints, []string{ServiceTopology}},
		{"agent", "list", gvrServices, []string{MasterService}},
		{"my-proxy", "list", gvrServices, nil}, // nodeportisolation is disabled by flag
		{"kube-proxy", "watch", gvrEndpointSlices, []string{ServiceTopology, ForwardKubeSvcTraffic}},
	})
	if got := s.Components()[ServiceTopology]; !slices.Equal(got, []string{"coredns", "kube-proxy", "my-proxy", "nginx-ingress-controller", "other"}) {
		t.Errorf("components: %v", got)
	}
	// the ConfigMap deleted: defaults again
	s.Apply(nil)
	check([]tc{{"my-proxy", "watch", gvrEndpointSlices, nil}})

	// counted per filter and outcome
	c := s.ChainFor("kube-proxy", "list", gvrServices)
	data, enc := encodeAs(t, service("default", "lb", corev1.ServiceTypeLoadBalancer, map[string]string{"svc.openyurt.io/discard": "true"}), "Service", "json")
	if _, keep, _ := c.Bytes(data, enc); keep {
		t.Fatal("not dropped")
	}
	if counts["discardcloudservice/dropped"] != 1 {
		t.Errorf("counts: %v", counts)
	}

	off, _ := New(Options{Enabled: false, Env: testEnv()})
	if off.ChainFor("kube-proxy", "list", gvrServices) != nil || len(off.Enabled()) != 0 {
		t.Error("--enable-resource-filter=false still filters")
	}
	cloud, _ := New(Options{Enabled: true, CloudMode: true, Env: testEnv()})
	if got := cloud.Enabled(); !slices.Equal(got, []string{ServiceTopology, MasterService, InClusterConfig, NodePortIsolation}) {
		t.Errorf("cloud mode filters: %v", got)
	}
	if _, err := New(Options{Enabled: true, Disabled: []string{"nosuch"}}); err == nil {
		t.Error("unknown disabled filter accepted")
	}
}
