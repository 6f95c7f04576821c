package localproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/store"
)

// Benchmarks of the offline path over loopback HTTP (the handler behind a real
// server, a raw HTTP client reading the whole body), against a bbolt cache holding
// kubelet's view of n pods of a realistic size (~2.5 KB JSON each):
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/localproxy/
//
// Figures: ms/get and ms/list are medians over the iterations; MB/list is the
// response size; ms/ready is the time from opening a warm cache file to the first
// list served (a hub restarted with the cloud unreachable).

func benchPod(i int) *corev1.Pod {
	p := testPod("ns"+strconv.Itoa(i%10), fmt.Sprintf("pod-%05d", i), testNode, 100+i, map[string]string{
		"app": "a" + strconv.Itoa(i%7), "pod-template-hash": "5d4f8c7b9", "tier": "backend"})
	p.Annotations = map[string]string{"kubernetes.io/config.seen": "2026-11-22T05:00:00Z", "kubernetes.io/config.source": "api"}
	for c := 0; c < 2; c++ {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "sidecar-" + strconv.Itoa(c), Image: "registry.example/team/sidecar:v1.2." + strconv.Itoa(c),
			Args: []string{"--port=8080", "--metrics", "--log-level=info"},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}},
			VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
		})
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	p.Status.HostIP = "192.168.1.10"
	return p
}

func fillBenchPods(b *testing.B, st *store.Store, n int, enc store.Encoding) {
	k := listKey("kubelet", "/api/v1/pods", "", "spec.nodeName="+testNode)
	w, err := st.BeginList(context.Background(), k)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.Add(stored(b, benchPod(i), enc)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(uint64(100 + n)); err != nil {
		b.Fatal(err)
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func fetch(b *testing.B, url, accept string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("User-Agent", "kubelet/v1.36.3")
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %s", url, resp.Status)
	}
	return int(n)
}

var benchFormats = []struct {
	name   string
	enc    store.Encoding
	accept string
}{
	{"json", store.EncodingJSON, "application/json"},
	{"protobuf", store.EncodingProtobuf, "application/vnd.kubernetes.protobuf,application/json"},
}

func BenchmarkOfflineGet(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, f := range benchFormats {
			b.Run(fmt.Sprintf("pods=%d/%s", n, f.name), func(b *testing.B) {
				st := openStore(b)
				fillBenchPods(b, st, n, f.enc)
				s := newServer(b, st, Options{})
				lat := make([]float64, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					j := (i * 7919) % n
					start := time.Now()
					fetch(b, fmt.Sprintf("%s/api/v1/namespaces/ns%d/pods/pod-%05d", s.URL, j%10, j), f.accept)
					lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				}
				b.ReportMetric(median(lat), "ms/get")
			})
		}
	}
}

// BenchmarkOfflineList lists kubelet's pods from the handler directly and through
// the whole proxy handler (internal/proxy in edge mode with no healthy backend).
func BenchmarkOfflineList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, f := range benchFormats {
			for _, via := range []string{"local", "proxy"} {
				b.Run(fmt.Sprintf("pods=%d/%s/via=%s", n, f.name, via), func(b *testing.B) {
					st := openStore(b)
					fillBenchPods(b, st, n, f.enc)
					s := newServer(b, st, Options{})
					base := s.URL
					if via == "proxy" {
						base = proxyInFront(b, s.h)
					}
					url := base + "/api/v1/pods?fieldSelector=spec.nodeName%3D" + testNode
					lat := make([]float64, 0, b.N)
					size := 0
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						start := time.Now()
						size = fetch(b, url, f.accept)
						lat = append(lat, float64(time.Since(start).Microseconds())/1000)
					}
					b.ReportMetric(median(lat), "ms/list")
					b.ReportMetric(float64(size)/1e6, "MB/list")
				})
			}
		}
	}
}

// proxyInFront serves internal/proxy in edge mode, its only backend never healthy,
// with h as the Local handler; it returns the server's URL.
func proxyInFront(b *testing.B, h *Handler) string {
	u, _ := url.Parse("https://127.0.0.1:1")
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin})
	if err != nil {
		b.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{WorkingMode: config.WorkingModeEdge, LB: lb, CertTransport: http.DefaultTransport,
		TokenTransport: http.DefaultTransport, Local: h, MaxRequestsInFlight: 250})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(px)
	b.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkReadyAfterRestart: a hub restarted with the cloud unreachable opens its
// cache file (bbolt consistency check and migrations included) and serves kubelet's
// pod list; ms/ready is the time from Open to the last byte of that first list.
func BenchmarkReadyAfterRestart(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "cache.db")
			st, err := store.Open(path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if n > 0 {
				fillBenchPods(b, st, n, store.EncodingProtobuf)
			}
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			lat := make([]float64, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				st, err := store.Open(path, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				h, err := New(Options{Store: st})
				if err != nil {
					b.Fatal(err)
				}
				req, _ := http.NewRequest(http.MethodGet, "/api/v1/pods?fieldSelector=spec.nodeName%3D"+testNode, nil)
				req.Header.Set("User-Agent", "kubelet/v1.36.3")
				req.Header.Set("Accept", "application/vnd.kubernetes.protobuf,application/json")
				rec := &discardWriter{h: http.Header{}}
				h.ServeHTTP(rec, req)
				if n > 0 && rec.code != http.StatusOK || n == 0 && rec.code != http.StatusServiceUnavailable {
					b.Fatalf("first list after restart: %d", rec.code)
				}
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				b.StopTimer()
				h.Close()
				_ = st.Close()
				b.StartTimer()
			}
			b.ReportMetric(median(lat), "ms/ready")
		})
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
