package filter

import (
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// benchSlices is one 4-endpoint slice of a Service scoped to this node, in the
// forms the stream hands to Chain.Bytes.
func benchSliceChain(b *testing.B) (*Chain, []byte, []byte) {
	env := testEnv()
	env.Services = mapServices{"default/web": service("default", "web", "", map[string]string{"openyurt.io/topologyKeys": "kubernetes.io/hostname"})}
	c := &Chain{gvr: gvrEndpointSlices, filters: []Filter{newFilter(ServiceTopology, &env), newFilter(ForwardKubeSvcTraffic, &env)}}
	var eps []discoveryv1.Endpoint
	for j := 0; j < 4; j++ {
		e := ep(fmt.Sprintf("10.0.%d.1", j), fmt.Sprintf("node-%d", j+1))
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("web-%d", j)}
		eps = append(eps, e)
	}
	s := slice("default", "web-abc", "web", discoveryv1.AddressTypeIPv4, eps...)
	js, _ := json.Marshal(s)
	pb, _ := s.Marshal()
	return c, js, pb
}

func BenchmarkChainBytesEndpointSlice(b *testing.B) {
	c, js, pb := benchSliceChain(b)
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			if _, _, err := c.Bytes(js, JSON); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf", func(b *testing.B) {
		b.SetBytes(int64(len(pb)))
		for b.Loop() {
			if _, _, err := c.Bytes(pb, Protobuf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
