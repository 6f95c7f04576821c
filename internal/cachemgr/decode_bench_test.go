package cachemgr

import (
	"bytes"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type countSink struct{ n int }

func (c *countSink) add(*item) error { c.n++; return nil }

// BenchmarkDecodeList measures the cache decoder alone on a 10k-pod list (no store,
// no network): MB/s is the rate the tee can feed before its queue fills.
func BenchmarkDecodeList(b *testing.B) {
	var pods []corev1.Pod
	for i := range 10000 {
		p := pod("ns", fmt.Sprintf("pod-%05d", i), "edge-1", 100+i)
		p.Labels = map[string]string{"app": "bench"}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "some value to make the pod realistic"}}
		pods = append(pods, p)
	}
	list := podList(20000, "", pods...)
	for _, enc := range []string{"json", "protobuf"} {
		var body []byte
		if enc == "json" {
			body = jsonBytes(b, list)
		} else {
			body = protoBytes(b, list)
		}
		b.Run(enc, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				var s countSink
				var err error
				if enc == "json" {
					_, err = decodeJSONList(bytes.NewReader(body), true, &s)
				} else {
					_, err = decodeProtoList(bytes.NewReader(body), true, 16<<20, &s)
				}
				if err != nil || s.n != 10000 {
					b.Fatalf("decoded %d items: %v", s.n, err)
				}
			}
		})
	}
}
