package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func service(ns, name string, typ corev1.ServiceType, ann map[string]string) *corev1.Service {
	m := meta(ns, name)
	m.Annotations = ann
	return &corev1.Service{ObjectMeta: m, Spec: corev1.ServiceSpec{Type: typ, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
		Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(6443), Protocol: corev1.ProtocolTCP}}}}
}

func TestMasterService(t *testing.T) {
	env := testEnv()
	kube := service("default", "kubernetes", corev1.ServiceTypeClusterIP, nil)
	kube.Spec.Ports = append(kube.Spec.Ports, corev1.ServicePort{Name: "other", Port: 80})
	want := kube.DeepCopy()
	want.Spec.ClusterIP, want.Spec.ClusterIPs = "169.254.2.1", []string{"169.254.2.1"}
	want.Spec.Ports[0].Port = 10268
	runCases(t, chainOf(MasterService, &env, gvrServices), "Service", []filterCase{
		{"default/kubernetes rewritten", kube, want},
		{"already rewritten", want, want},
		{"other namespace", service("kube-system", "kubernetes", "", nil), service("kube-system", "kubernetes", "", nil)},
		{"other service", service("default", "web", "", nil), service("default", "web", "", nil)},
	})
}

func TestDiscardCloudService(t *testing.T) {
	env := testEnv()
	discard := map[string]string{"svc.openyurt.io/discard": "true"}
	keep := func(o *corev1.Service) filterCase { return filterCase{o.Name, o, o} }
	runCases(t, chainOf(DiscardCloudService, &env, gvrServices), "Service", []filterCase{
		{"LB annotated discard dropped", service("default", "lb", corev1.ServiceTypeLoadBalancer, discard), nil},
		{"tunnel server internal dropped", service("kube-system", "x-tunnel-server-internal-svc", corev1.ServiceTypeClusterIP, nil), nil},
		keep(service("default", "lb-plain", corev1.ServiceTypeLoadBalancer, nil)),
		keep(service("default", "lb-false", corev1.ServiceTypeLoadBalancer, map[string]string{"svc.openyurt.io/discard": "false"})),
		keep(service("default", "np-discard", corev1.ServiceTypeNodePort, discard)),
		keep(service("default", "x-tunnel-server-internal-svc", corev1.ServiceTypeClusterIP, nil)),
	})
}

func TestNodePortIsolation(t *testing.T) {
	env := testEnv() // node-1 in pool-a
	l := func(v string) map[string]string { return map[string]string{"nodeport.openyurt.io/listen": v} }
	keep := func(name string, o *corev1.Service) filterCase { return filterCase{name, o, o} }
	runCases(t, chainOf(NodePortIsolation, &env, gvrServices), "Service", []filterCase{
		keep("listed", service("d", "a", corev1.ServiceTypeNodePort, l("pool-a"))),
		keep("listed among others", service("d", "b", corev1.ServiceTypeLoadBalancer, l("pool-b, pool-a"))),
		keep("wildcard", service("d", "c", corev1.ServiceTypeNodePort, l("*"))),
		{"excluded despite wildcard", service("d", "d", corev1.ServiceTypeNodePort, l("-pool-a,*")), nil},
		keep("explicit wins over exclusion", service("d", "e", corev1.ServiceTypeNodePort, l("pool-a,-pool-a"))),
		{"first mention wins", service("d", "f", corev1.ServiceTypeNodePort, l("-pool-a,pool-a")), nil},
		{"other pool only", service("d", "g", corev1.ServiceTypeNodePort, l("pool-b")), nil},
		{"empty value listens nowhere", service("d", "h", corev1.ServiceTypeNodePort, l("")), nil},
		keep("ClusterIP ignored", service("d", "i", corev1.ServiceTypeClusterIP, l("pool-b"))),
		keep("no annotation", service("d", "j", corev1.ServiceTypeNodePort, nil)),
	})
	noPool := testEnv()
	noPool.Pool = &StaticPool{}
	runCases(t, chainOf(NodePortIsolation, &noPool, gvrServices), "Service", []filterCase{
		{"node in no pool keeps all", service("d", "g", corev1.ServiceTypeNodePort, l("pool-b")), service("d", "g", corev1.ServiceTypeNodePort, l("pool-b"))},
	})
}

func kubeProxyCM(conf string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: meta("kube-system", "kube-proxy"), Data: map[string]string{"config.conf": conf, "kubeconfig.conf": "apiVersion: v1\n"}}
}

func TestInClusterConfig(t *testing.T) {
	env := testEnv()
	in := "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 5\nmode: iptables\n"
	want := "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection:\n  #kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 5\nmode: iptables\n"
	other := kubeProxyCM(in)
	other.Name = "kube-proxy-other"
	runCases(t, chainOf(InClusterConfig, &env, gvrConfigMaps), "ConfigMap", []filterCase{
		{"kubeconfig commented", kubeProxyCM(in), kubeProxyCM(want)},
		{"already commented", kubeProxyCM(want), kubeProxyCM(want)},
		{"windows path left", kubeProxyCM("clientConnection:\n  kubeconfig: C:\\k\\kubeconfig\n"), kubeProxyCM("clientConnection:\n  kubeconfig: C:\\k\\kubeconfig\n")},
		{"other configmap", other, other},
	})
}

func pod(env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: meta("default", "p"), Spec: corev1.PodSpec{NodeName: "node-1",
		Containers: []corev1.Container{{Name: "c", Image: "i", Env: env}}}}
}

func TestServiceEnvUpdater(t *testing.T) {
	env := testEnv()
	e := func(n, v string) corev1.EnvVar { return corev1.EnvVar{Name: n, Value: v} }
	runCases(t, chainOf(ServiceEnvUpdater, &env, gvrPods), "Pod", []filterCase{
		{"both rewritten", pod(e("A", "1"), e("KUBERNETES_SERVICE_HOST", "10.0.0.1"), e("KUBERNETES_SERVICE_PORT", "6443")),
			pod(e("A", "1"), e("KUBERNETES_SERVICE_HOST", "169.254.2.1"), e("KUBERNETES_SERVICE_PORT", "10268"))},
		{"host only", pod(e("KUBERNETES_SERVICE_HOST", "10.0.0.1")), pod(e("KUBERNETES_SERVICE_HOST", "169.254.2.1"))},
		{"none added", pod(e("A", "1")), pod(e("A", "1"))},
		{"already hub", pod(e("KUBERNETES_SERVICE_HOST", "169.254.2.1")), pod(e("KUBERNETES_SERVICE_HOST", "169.254.2.1"))},
	})
}

// TestServiceEnvUpdaterSkipsWithoutDecoding: a pod whose bytes do not name the
// variables is passed on as the same bytes without being decoded (decoding and
// re-encoding each of kubelet's pods made its 10k-pod JSON list 2.9x direct in
// make bench); one that names them is still rewritten.
func TestServiceEnvUpdaterSkipsWithoutDecoding(t *testing.T) {
	env := testEnv()
	c := chainOf(ServiceEnvUpdater, &env, gvrPods)
	// Not a pod at all: decoding it would fail; skipping never decodes it.
	junk := []byte(`{"kind":"Pod","apiVersion":"v1","spec":{"containers":"not a list"}}`)
	for _, enc := range []Encoding{JSON, Protobuf} {
		out, keep, err := c.Bytes(junk, enc)
		if err != nil || !keep || &out[0] != &junk[0] {
			t.Fatalf("encoding %d: a pod without KUBERNETES_SERVICE_* was decoded (err %v, keep %v, same bytes %v)", enc, err, keep, len(out) > 0 && &out[0] == &junk[0])
		}
	}
	p := pod(corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "10.0.0.1"})
	js, _ := json.Marshal(p)
	out, keep, err := c.Bytes(js, JSON)
	if err != nil || !keep || !bytes.Contains(out, []byte(`"value":"169.254.2.1"`)) {
		t.Fatalf("a pod naming the variable was not rewritten: %s (keep %v, err %v)", out, keep, err)
	}
	// Spelled with a JSON escape, the name is still the variable's.
	escaped := bytes.Replace(js, []byte("KUBERNETES_SERVICE_HOST"), []byte(`KUBERNETES\u005fSERVICE_HOST`), 1)
	out, keep, err = c.Bytes(escaped, JSON)
	if err != nil || !keep || !bytes.Contains(out, []byte(`"value":"169.254.2.1"`)) {
		t.Fatalf("a pod naming the variable with an escape was not rewritten: %s (keep %v, err %v)", out, keep, err)
	}
}

// TestEndpointSliceSkippers: kube-proxy's EndpointSlice chain (servicetopology,
// forwardkubesvctraffic) passes a slice of a Service without topologyKeys, other
// than default/kubernetes, as the same bytes without decoding it (decoding and
// re-encoding each slice made kube-proxy's 10k-slice JSON list 2.2-2.7x direct in
// make bench); a slice it must rewrite is still decoded and rewritten, and a store
// that has not listed the Services yet skips nothing.
func TestEndpointSliceSkippers(t *testing.T) {
	env := testEnv()
	env.Services = mapServices{
		"default/by-node": service("default", "by-node", "", map[string]string{topologyKeysAnnotation: "kubernetes.io/hostname"}),
		"default/plain":   service("default", "plain", "", nil),
	}
	c := &Chain{gvr: gvrEndpointSlices, filters: []Filter{newFilter(ServiceTopology, &env), newFilter(ForwardKubeSvcTraffic, &env)}}
	// Not a slice at all (endpoints is not a list): decoding it would fail.
	junk := []byte(`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"plain-x","labels":{"kubernetes.io/service-name":"plain"}},"endpoints":"junk"}`)
	for _, enc := range []Encoding{JSON, Protobuf} {
		out, keep, err := c.Bytes(junk, enc)
		if err != nil || !keep || &out[0] != &junk[0] {
			t.Fatalf("encoding %d: a slice of a Service without topologyKeys was decoded (err %v, keep %v)", enc, err, keep)
		}
	}
	for _, tc := range []struct {
		name string
		s    *discoveryv1.EndpointSlice
		want []string // addresses after the chain
	}{
		{"topology service", slice("default", "by-node-x", "by-node", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", "node-1"), ep("10.0.0.3", "node-3")), []string{"10.0.0.1"}},
		{"kubernetes slice", slice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, ep("10.0.0.9", "")), []string{"169.254.2.1"}},
		{"plain service", slice("default", "plain-x", "plain", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", "node-1"), ep("10.0.0.3", "node-3")), []string{"10.0.0.1", "10.0.0.3"}},
	} {
		for _, form := range []string{"json", "protobuf"} {
			data, enc := encodeAs(t, tc.s, "EndpointSlice", form)
			out, keep, err := c.Bytes(data, enc)
			if err != nil || !keep {
				t.Fatalf("%s (%s): keep %v, err %v", tc.name, form, keep, err)
			}
			d, err := c.Decode(out, enc)
			if err != nil {
				t.Fatalf("%s (%s): %v", tc.name, form, err)
			}
			var got []string
			for _, e := range d.Obj.(*discoveryv1.EndpointSlice).Endpoints {
				got = append(got, e.Addresses...)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s (%s): addresses %v, want %v", tc.name, form, got, tc.want)
			}
		}
	}
	// Before the Services are listed nothing is skipped.
	env.Services = unsynced{}
	if c.skips([]byte(`{"metadata":{"name":"plain-x"}}`)) {
		t.Fatal("skipped a slice while the Service store had not listed the Services")
	}
}

// unsynced is a Service store before its first list.
type unsynced struct{}

func (unsynced) Service(string, string) (*corev1.Service, error) {
	return nil, errors.New("not listed yet")
}
func (unsynced) TopologyServiceNames() ([]string, bool) { return nil, false }

func slice(ns, name, svc string, addrType discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	m := meta(ns, name)
	m.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	return &discoveryv1.EndpointSlice{ObjectMeta: m, AddressType: addrType, Endpoints: eps,
		Ports: []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(int32(6443)), Protocol: ptr(corev1.ProtocolTCP)}}}
}

func ep(ip, node string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}
	if node != "" {
		e.NodeName = ptr(node)
	}
	return e
}

func TestForwardKubeSvcTraffic(t *testing.T) {
	env := testEnv()
	in := slice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", ""), ep("10.0.0.2", ""))
	want := slice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4,
		discoveryv1.Endpoint{Addresses: []string{"169.254.2.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}})
	want.Ports[0].Port = ptr(int32(10268))
	v6 := slice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv6, ep("fd00::1", ""))
	other := slice("default", "web-abc", "web", discoveryv1.AddressTypeIPv4, ep("10.1.0.1", "node-9"))
	runCases(t, chainOf(ForwardKubeSvcTraffic, &env, gvrEndpointSlices), "EndpointSlice", []filterCase{
		{"kubernetes slice to the hub", in, want},
		{"already rewritten", want, want},
		{"address family differs", v6, v6},
		{"other slice", other, other},
	})
}

func TestServiceTopology(t *testing.T) {
	env := testEnv() // node-1 in pool-a {node-1,node-2}
	topo := func(v string) map[string]string { return map[string]string{"openyurt.io/topologyKeys": v} }
	env.Services = mapServices{
		"default/by-node": service("default", "by-node", "", topo("kubernetes.io/hostname")),
		"default/by-pool": service("default", "by-pool", "", topo("openyurt.io/nodepool")),
		"default/by-zone": service("default", "by-zone", "", topo("kubernetes.io/zone")),
		"default/plain":   service("default", "plain", "", nil),
	}
	all := []discoveryv1.Endpoint{ep("10.0.0.1", "node-1"), ep("10.0.0.2", "node-2"), ep("10.0.0.3", "node-3"), ep("10.0.0.4", "")}
	s := func(svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return slice("default", svc+"-x", svc, discoveryv1.AddressTypeIPv4, eps...)
	}
	runCases(t, chainOf(ServiceTopology, &env, gvrEndpointSlices), "EndpointSlice", []filterCase{
		{"node scope", s("by-node", all...), s("by-node", all[0])},
		{"pool scope", s("by-pool", all...), s("by-pool", all[0], all[1])},
		{"zone means pool", s("by-zone", all...), s("by-zone", all[0], all[1])},
		{"no endpoint left is still sent", s("by-node", all[2]), s("by-node")},
		{"no annotation", s("plain", all...), s("plain", all...)},
		{"unknown service", s("gone", all...), s("gone", all...)},
	})

	// pool scope without membership: unfiltered; node in no pool: node scope
	unknown := env
	unknown.Pool = &StaticPool{}
	p := &StaticPool{}
	p.Set("pool-z", map[string][]string{})
	unknown.Pool = p
	runCases(t, chainOf(ServiceTopology, &unknown, gvrEndpointSlices), "EndpointSlice", []filterCase{
		{"membership unknown", s("by-pool", all...), s("by-pool", all...)},
	})
	noPool := env
	np := &StaticPool{}
	np.Set("", map[string][]string{"pool-a": {"node-1"}})
	noPool.Pool = np
	runCases(t, chainOf(ServiceTopology, &noPool, gvrEndpointSlices), "EndpointSlice", []filterCase{
		{"node in no pool falls back to node", s("by-pool", all...), s("by-pool", all[0])},
	})
	off := env
	off.PoolTopology = false
	runCases(t, chainOf(ServiceTopology, &off, gvrEndpointSlices), "EndpointSlice", []filterCase{
		{"pool topology off", s("by-pool", all...), s("by-pool", all...)},
		{"node scope still on", s("by-node", all...), s("by-node", all[0])},
	})

	addr := func(ip, node string) corev1.EndpointAddress {
		return corev1.EndpointAddress{IP: ip, NodeName: ptr(node)}
	}
	eps := func(name string, subsets ...corev1.EndpointSubset) *corev1.Endpoints {
		return &corev1.Endpoints{ObjectMeta: meta("default", name), Subsets: subsets}
	}
	port := []corev1.EndpointPort{{Name: "http", Port: 80}}
	in := eps("by-node",
		corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{addr("10.0.0.1", "node-1"), addr("10.0.0.3", "node-3")},
			NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.5", "node-1")}, Ports: port},
		corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{addr("10.0.0.6", "node-3")}, Ports: port})
	want := eps("by-node", corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{addr("10.0.0.1", "node-1")},
		NotReadyAddresses: []corev1.EndpointAddress{addr("10.0.0.5", "node-1")}, Ports: port})
	runCases(t, chainOf(ServiceTopology, &env, gvrEndpoints), "Endpoints", []filterCase{
		{"endpoints node scope", in, want},
		{"endpoints no annotation", eps("plain", in.Subsets...), eps("plain", in.Subsets...)},
	})
}

// failingServices fails every lookup.
type failingServices struct{}

func (failingServices) Service(string, string) (*corev1.Service, error) {
	return nil, errFake
}

var errFake = errors.New("lookup failed")

// A failing filter passes the object through unchanged, and the rest of the
// chain still runs.
func TestFailingFilterPassesThrough(t *testing.T) {
	env := testEnv()
	env.Services = failingServices{}
	c := &Chain{gvr: gvrEndpointSlices, filters: []Filter{newFilter(ServiceTopology, &env), newFilter(ForwardKubeSvcTraffic, &env)}}
	in := slice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", "node-3"))
	data, enc := encodeAs(t, in, "EndpointSlice", "json")
	out, keep, err := c.Bytes(data, enc)
	if err == nil || !keep {
		t.Fatalf("want an error and the object kept, got err=%v keep=%v", err, keep)
	}
	d, _ := c.Decode(out, enc)
	if got := d.Obj.(*discoveryv1.EndpointSlice).Endpoints[0].Addresses[0]; got != "169.254.2.1" {
		t.Fatalf("the next filter did not run: address %s", got)
	}
	t.Logf("error returned for the log: %v", err)

	// undecodable bytes pass through as they are
	bad := []byte(`{"metadata":`)
	out, keep, err = c.Bytes(bad, JSON)
	if err == nil || !keep || string(out) != string(bad) {
		t.Fatalf("undecodable: out=%q keep=%v err=%v", out, keep, err)
	}
}

var _ runtime.Object = (*corev1.Service)(nil)

// TestServiceTopologyJSONInPlace: on a JSON EndpointSlice servicetopology cuts the
// out-of-scope endpoints out of the bytes without decoding the slice: every other
// byte is kept as it was (here a "ports" the Go type could not even decode, and
// member order and spacing), escaped strings are read as JSON means them, and the
// filter metric counts the rewrite.
func TestServiceTopologyJSONInPlace(t *testing.T) {
	env := testEnv() // node-1
	env.Services = mapServices{"default/by-node": service("default", "by-node", "", map[string]string{topologyKeysAnnotation: "kubernetes.io/hostname"})}
	counted := 0
	c := chainOf(ServiceTopology, &env, gvrEndpointSlices)
	c.count = func(string, Outcome) { counted++ }
	in := `{"metadata":{"name":"x","namespace":"default","labels":{"kubernetes.io/service-name":"by\u002dnode"}},` +
		`"addressType":"IPv4", "endpoints": [ {"addresses":["10.0.0.1"],"nodeName":"node\u002d1"} , {"addresses":["10.0.0.3"],"nodeName":"node-3"},{"addresses":["10.0.0.4"]} ],"ports":"not a list","extra":{"k":[1,2]}}`
	want := `{"metadata":{"name":"x","namespace":"default","labels":{"kubernetes.io/service-name":"by\u002dnode"}},` +
		`"addressType":"IPv4", "endpoints": [{"addresses":["10.0.0.1"],"nodeName":"node\u002d1"}],"ports":"not a list","extra":{"k":[1,2]}}`
	out, keep, err := c.Bytes([]byte(in), JSON)
	if err != nil || !keep || string(out) != want {
		t.Fatalf("Bytes = %s, keep %v, err %v\nwant %s", out, keep, err, want)
	}
	if counted != 1 {
		t.Fatalf("rewrites counted %d, want 1", counted)
	}
	// The same on a watch (before: the rewritten bytes were dropped there and the
	// event sent as it came; TestFiltersThroughHub caught it through the multiplexer).
	for _, typ := range []string{Added, Modified, Deleted} {
		if gotTyp, out, send, err := c.NewWatch().Event(typ, []byte(in), JSON); err != nil || !send || gotTyp != typ || string(out) != want {
			t.Fatalf("watch %s: %s %s (send %v, err %v)\nwant %s", typ, gotTyp, out, send, err, want)
		}
	}
	// All in scope: the same bytes.
	same := `{"metadata":{"namespace":"default","labels":{"kubernetes.io/service-name":"by-node"}},"endpoints":[{"nodeName":"node-1"}]}`
	if out, _, err := c.Bytes([]byte(same), JSON); err != nil || &out[0] != &[]byte(same)[0] && string(out) != same {
		t.Fatalf("an unchanged slice came back as %s (%v)", out, err)
	}
	// Malformed: the decoding path's error, the bytes passed on as they are.
	bad := []byte(`{"metadata":{"namespace":"default","labels":{"kubernetes.io/service-name":"by-node"}},"endpoints":[{"nodeName":}]}`)
	if out, keep, err := c.Bytes(bad, JSON); err == nil || !keep || !bytes.Equal(out, bad) {
		t.Fatalf("malformed slice: %s, keep %v, err %v; want it passed unchanged with an error", out, keep, err)
	}
}

// TestServiceTopologyProtoInPlace: on a protobuf EndpointSlice (a bare list item
// or an enveloped document) servicetopology cuts the out-of-scope endpoints
// fields out of the message without decoding it: a field the Go type could not
// decode (here a malformed ports message) passes as it is.
func TestServiceTopologyProtoInPlace(t *testing.T) {
	env := testEnv() // node-1
	env.Services = mapServices{"default/by-node": service("default", "by-node", "", map[string]string{topologyKeysAnnotation: "kubernetes.io/hostname"})}
	c := chainOf(ServiceTopology, &env, gvrEndpointSlices)
	counted := 0
	c.count = func(string, Outcome) { counted++ }
	in := slice("default", "by-node-x", "by-node", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", "node-1"), ep("10.0.0.3", "node-3"), ep("10.0.0.4", ""))
	in.Ports = nil
	want := slice("default", "by-node-x", "by-node", discoveryv1.AddressTypeIPv4, ep("10.0.0.1", "node-1"))
	want.Ports = nil
	badPorts := protowire.AppendTag(nil, pbSliceEndpoints+1, protowire.BytesType)
	badPorts = protowire.AppendBytes(badPorts, []byte{0xff, 0xff})
	for _, form := range []string{"proto", "proto+envelope"} {
		data, enc := encodeAs(t, in, "EndpointSlice", form)
		wantData, _ := encodeAs(t, want, "EndpointSlice", form)
		if form == "proto" {
			data, wantData = append(data, badPorts...), append(wantData, badPorts...)
		}
		out, keep, err := c.Bytes(data, enc)
		if err != nil || !keep {
			t.Fatalf("%s: keep %v, err %v", form, keep, err)
		}
		if form == "proto" && !bytes.Equal(out, wantData) {
			t.Fatalf("%s: got %x\nwant %x", form, out, wantData)
		}
		if form == "proto+envelope" {
			d, err := c.Decode(out, enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Obj.(*discoveryv1.EndpointSlice).Endpoints; len(got) != 1 || got[0].Addresses[0] != "10.0.0.1" {
				t.Fatalf("%s: endpoints %v", form, got)
			}
		}
	}
	if counted != 2 {
		t.Fatalf("rewrites counted %d, want 2", counted)
	}
	// Malformed: the decoding path's error, the bytes passed on as they are.
	bad := append([]byte{0x0a, 0x20}, "by-node"...) // names the Service: not skipped; cut short
	if out, keep, err := c.Bytes(bad, Protobuf); err == nil || !keep || !bytes.Equal(out, bad) {
		t.Fatalf("malformed slice: %x, keep %v, err %v; want it passed unchanged with an error", out, keep, err)
	}
}
