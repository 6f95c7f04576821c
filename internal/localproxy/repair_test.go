package localproxy

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRepairSliceAndEndpoints(t *testing.T) {
	pod := podEndpointState{uid: "u1", namespace: "default", name: "app-0", ips: []string{"10.0.0.9", "fd00::9"}, ready: false}
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "app-0", UID: "u1"}
	byName := &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "app-0"}
	other := &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "x", UID: "u2"}
	yes := true
	slice := func(t discoveryv1.AddressType, eps ...discoveryv1.Endpoint) []byte {
		b, _ := json.Marshal(&discoveryv1.EndpointSlice{TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"}, AddressType: t, Endpoints: eps})
		return b
	}
	ep := func(ip string, r *corev1.ObjectReference) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, TargetRef: r, Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes}}
	}
	out, err := repairSlice(slice(discoveryv1.AddressTypeIPv4, ep("10.0.0.5", ref), ep("10.0.0.6", other)), pod)
	if err != nil || out == nil {
		t.Fatalf("v4 slice not repaired: %v", err)
	}
	var s discoveryv1.EndpointSlice
	_ = json.Unmarshal(out, &s)
	if s.Kind != "EndpointSlice" || s.Endpoints[0].Addresses[0] != "10.0.0.9" || *s.Endpoints[0].Conditions.Ready || *s.Endpoints[0].Conditions.Serving ||
		s.Endpoints[1].Addresses[0] != "10.0.0.6" || !*s.Endpoints[1].Conditions.Ready {
		t.Fatalf("v4 slice: %+v", s)
	}
	out, _ = repairSlice(slice(discoveryv1.AddressTypeIPv6, ep("fd00::5", byName)), pod)
	s = discoveryv1.EndpointSlice{}
	_ = json.Unmarshal(out, &s)
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "fd00::9" {
		t.Fatalf("v6 slice matched by name: %+v", s)
	}
	if out, _ := repairSlice(slice(discoveryv1.AddressTypeIPv4, ep("10.0.0.6", other)), pod); out != nil {
		t.Fatal("a slice without the pod was rewritten")
	}
	pod.ready = true
	if out, _ := repairSlice(slice(discoveryv1.AddressTypeIPv4, ep("10.0.0.9", ref)), pod); out != nil {
		t.Fatal("a slice already right was rewritten")
	}

	// Endpoints: the address moves to notReadyAddresses with its new IP
	pod.ready = false
	e := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.5", TargetRef: ref}, {IP: "10.0.0.6", TargetRef: other}},
		Ports:     []corev1.EndpointPort{{Port: 80}}}}}
	doc, _ := json.Marshal(e)
	out, err = repairEndpointsDoc(doc, pod)
	if err != nil || out == nil {
		t.Fatalf("endpoints not repaired: %v", err)
	}
	var got corev1.Endpoints
	_ = json.Unmarshal(out, &got)
	ss := got.Subsets[0]
	if len(ss.Addresses) != 1 || ss.Addresses[0].IP != "10.0.0.6" || len(ss.NotReadyAddresses) != 1 || ss.NotReadyAddresses[0].IP != "10.0.0.9" {
		t.Fatalf("endpoints: %+v", ss)
	}
}
