package wire

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type countSink struct{ n int }

func (c *countSink) Add(*Item) error { c.n++; return nil }

// benchPods are 10k realistic pods bound to a node.
func benchPods() []corev1.Pod {
	var pods []corev1.Pod
	for i := range 10000 {
		p := pod("ns", fmt.Sprintf("pod-%05d", i), "edge-1", 100+i)
		p.Labels = map[string]string{"app": "bench"}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "some value to make the pod realistic"}}
		pods = append(pods, p)
	}
	return pods
}

// BenchmarkDecodeList measures the cache decoder alone on a 10k-pod list (no store,
// no network): MB/s is the rate the tee can feed before its queue fills.
func BenchmarkDecodeList(b *testing.B) {
	list := podList(20000, "", benchPods()...)
	for _, enc := range []string{"json", "protobuf"} {
		var body []byte
		if enc == "json" {
			body = jsonBytes(b, list)
		} else {
			body = protoBytes(b, list)
		}
		b.Run(enc, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var s countSink
				var err error
				if enc == "json" {
					_, err = DecodeJSONList(bytes.NewReader(body), true, 16<<20, &s)
				} else {
					_, err = DecodeProtoList(bytes.NewReader(body), true, 16<<20, &s)
				}
				if err != nil || s.n != 10000 {
					b.Fatalf("decoded %d items: %v", s.n, err)
				}
			}
		})
	}
}

// jsonWatchBody is a JSON watch stream of n MODIFIED events, one per line as the
// apiserver writes them.
func jsonWatchBody(b testing.TB, pods []corev1.Pod) []byte {
	var buf bytes.Buffer
	for _, p := range pods {
		ev := struct {
			Type   string     `json:"type"`
			Object corev1.Pod `json:"object"`
		}{"MODIFIED", p}
		buf.Write(jsonBytes(b, ev))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// BenchmarkDecodeWatch measures the JSON watch decoder alone on 10k pod events.
func BenchmarkDecodeWatch(b *testing.B) {
	body := jsonWatchBody(b, benchPods())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer() // building the 10k-event body is not the decoder's work
	for i := 0; i < b.N; i++ {
		d := NewJSONWatchDecoder(bytes.NewReader(body), true, 16<<20)
		n := 0
		for {
			var ev Event
			err := d.Next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10000 {
			b.Fatalf("decoded %d events", n)
		}
	}
}
