package filter

import (
	"bytes"
	"net"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// forwardKubeSvcTraffic is filter "forwardkubesvctraffic".
//
//   - Components: kube-proxy. Not in cloud working mode.
//   - Resources and verbs: endpointslices (discovery.k8s.io/v1); list, watch.
//   - Rewrite: EndpointSlice default/kubernetes (the apiserver's own slice)
//     becomes one ready endpoint at the hub's address, and its port named
//     "https" the hub's TLS proxy port. Traffic to the kubernetes Service's
//     ClusterIP is then sent by kube-proxy to the hub on this node, for pods that
//     use the ClusterIP directly rather than the environment masterservice sets.
//   - A slice whose address type differs from the hub address's family is left
//     as it is (the rewrite would be an invalid slice).
type forwardKubeSvcTraffic struct{ env *Env }

func (f *forwardKubeSvcTraffic) Name() string { return ForwardKubeSvcTraffic }

// The slice's name "kubernetes" as it appears in either encoding: a JSON string,
// or a protobuf length-delimited field of 10 bytes.
var (
	kubeNameJSON  = []byte(`"` + kubeServiceName + `"`)
	kubeNameProto = append([]byte{byte(len(kubeServiceName))}, kubeServiceName...)
)

// Skips implements Skipper: only the slice named "kubernetes" is rewritten, and a
// slice whose bytes hold no such string (the label key
// "kubernetes.io/service-name" is not one) is not it.
func (f *forwardKubeSvcTraffic) Skips(data []byte) bool {
	return !bytes.Contains(data, kubeNameJSON) && !bytes.Contains(data, kubeNameProto)
}

func (f *forwardKubeSvcTraffic) Apply(obj runtime.Object) (Outcome, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Namespace != kubeServiceNamespace || s.Name != kubeServiceName || f.env.HubHost == "" {
		return Unchanged, nil
	}
	ip := net.ParseIP(f.env.HubHost)
	want := discoveryv1.AddressTypeIPv4
	if ip != nil && ip.To4() == nil {
		want = discoveryv1.AddressTypeIPv6
	}
	if s.AddressType != want {
		return Unchanged, nil
	}
	changed := false
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Name != nil && *p.Name == kubeServicePortName && (p.Port == nil || *p.Port != f.env.HubPort) {
			port := f.env.HubPort
			p.Port = &port
			changed = true
		}
	}
	if !(len(s.Endpoints) == 1 && len(s.Endpoints[0].Addresses) == 1 && s.Endpoints[0].Addresses[0] == f.env.HubHost &&
		s.Endpoints[0].Conditions.Ready != nil && *s.Endpoints[0].Conditions.Ready) {
		ready := true
		s.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{f.env.HubHost}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}
		changed = true
	}
	if !changed {
		return Unchanged, nil
	}
	return Rewritten, nil
}
