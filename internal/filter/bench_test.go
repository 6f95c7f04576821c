package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// BenchmarkJSONListStream: kubelet's 10k-pod JSON list through the filter stage
// (serviceenvupdater, which leaves these pods as they are), the whole body read.
func BenchmarkJSONListStream(b *testing.B) {
	env := testEnv()
	c := chainOf(ServiceEnvUpdater, &env, gvrPods)
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "9"}}
	for i := range 10000 {
		p := pod(corev1.EnvVar{Name: "A", Value: "some value to make the pod realistic"})
		p.Name = fmt.Sprintf("pod-%05d", i)
		p.Labels = map[string]string{"app": "bench"}
		list.Items = append(list.Items, *p)
	}
	body, _ := json.Marshal(&list)
	st := &stream{chain: c, enc: JSON, max: 16 << 20, log: slog.New(slog.DiscardHandler)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := st.jsonList(bytes.NewReader(body), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONWatchStream: 1000 pod MODIFIED events of a kubelet watch through the
// filter stage (serviceenvupdater, which leaves them as they are).
func BenchmarkJSONWatchStream(b *testing.B) {
	env := testEnv()
	c := chainOf(ServiceEnvUpdater, &env, gvrPods)
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for i := range 1000 {
		p := pod(corev1.EnvVar{Name: "A", Value: "some value to make the pod realistic"})
		p.Name = fmt.Sprintf("pod-%05d", i)
		p.Labels = map[string]string{"app": "bench"}
		if err := enc.Encode(map[string]any{"type": "MODIFIED", "object": p}); err != nil {
			b.Fatal(err)
		}
	}
	st := &stream{chain: c, enc: JSON, max: 16 << 20, log: slog.New(slog.DiscardHandler)}
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if err := st.jsonWatch(bytes.NewReader(body.Bytes()), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
