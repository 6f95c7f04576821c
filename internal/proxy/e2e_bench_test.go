package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testkube"
)

// BenchmarkCloudLoss measures how long the hub takes to notice that its only
// apiserver is gone (stopped: connections refused; paused: a hanging cloud) and that it
// is back. No client traffic runs, so only the health checker can notice.
// Metrics: loss-s (from Stop called), hang-loss-s (from SIGSTOP), recovery-s (from the
// apiserver answering /readyz again). Goal: each under 2 s.
func BenchmarkCloudLoss(b *testing.B) {
	c := testkube.Start(b, testkube.Options{Nodes: []string{testNode}})
	cfg := hubConfig(b, c, c.URL())
	h := startHub(b, cfg)
	healthy := func() bool { return h.serverHealthy(b, c.URL()) }
	waitUntil(b, 10*time.Second, "the apiserver to be healthy", healthy)
	var loss, hang, recovery []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		done := make(chan struct{})
		go func() { c.APIServer().Stop(b); close(done) }()
		waitUntil(b, 30*time.Second, "loss noticed", func() bool { return !healthy() })
		loss = append(loss, time.Since(start).Seconds())
		<-done
		c.APIServer().Start(b)
		start = time.Now()
		waitUntil(b, 30*time.Second, "recovery noticed", healthy)
		recovery = append(recovery, time.Since(start).Seconds())

		start = time.Now()
		c.APIServer().Pause(b)
		waitUntil(b, 30*time.Second, "hang noticed", func() bool { return !healthy() })
		hang = append(hang, time.Since(start).Seconds())
		c.APIServer().Resume(b)
		waitUntil(b, 30*time.Second, "recovery after hang", healthy)
	}
	b.StopTimer()
	b.ReportMetric(median(loss), "loss-s")
	b.ReportMetric(median(hang), "hang-loss-s")
	b.ReportMetric(median(recovery), "recovery-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkThroughHub compares requests through the hub with the same requests sent
// directly to the same apiserver with the same identity (the node's client
// certificate), alternating, in the same run. Metrics: hub-p50-ms, direct-p50-ms and
// hub/direct (ratio of the medians). Two hubs run against the one apiserver: "edge"
// (edge mode, the cache manager teeing every kubelet response into the store) and
// "cloud" (cloud mode: pure proxy, nothing cached).
func BenchmarkThroughHub(b *testing.B) {
	c := testkube.Start(b, testkube.Options{Nodes: []string{testNode}})
	c.GrantNodeReadAll(b, testNode)
	hubs := map[string]*hub{}
	for _, mode := range []string{config.WorkingModeEdge, config.WorkingModeCloud} {
		cfg := hubConfig(b, c, c.URL())
		cfg.WorkingMode = mode
		h := startHub(b, cfg)
		waitUntil(b, 10*time.Second, "the apiserver to be healthy", func() bool { return h.serverHealthy(b, c.URL()) })
		hubs[mode] = h
	}
	const ns, pods = "bench", 1000
	createPods(b, c, ns, pods)

	certPEM, keyPEM := c.IssueNodeClientCert(testNode)
	direct := &rest.Config{Host: c.URL(), UserAgent: "kubelet/v1.36.3", QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM(), CertData: certPEM, KeyData: keyPEM}}
	ctx := context.Background()
	for _, mode := range []string{config.WorkingModeEdge, config.WorkingModeCloud} {
		viaHub := hubs[mode].restConfig("kubelet/v1.36.3")
		for _, enc := range []string{"json", "protobuf"} {
			dc, vc := rest.CopyConfig(direct), rest.CopyConfig(viaHub)
			if enc == "protobuf" {
				for _, cfg := range []*rest.Config{dc, vc} {
					cfg.ContentType = "application/vnd.kubernetes.protobuf"
					cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
				}
			}
			d, v := kubernetes.NewForConfigOrDie(dc), kubernetes.NewForConfigOrDie(vc)
			b.Run(mode+"/GET/"+enc, func(b *testing.B) {
				compare(b, d, v, func(cs *kubernetes.Clientset) error {
					_, err := cs.CoreV1().Pods(ns).Get(ctx, "pod-0", metav1.GetOptions{})
					return err
				})
			})
			b.Run(fmt.Sprintf("%s/LIST%d/%s", mode, pods, enc), func(b *testing.B) {
				compare(b, d, v, func(cs *kubernetes.Clientset) error {
					l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
					if err == nil && len(l.Items) != pods {
						err = fmt.Errorf("listed %d pods, want %d", len(l.Items), pods)
					}
					return err
				})
			})
		}
	}
}

func compare(b *testing.B, direct, viaHub *kubernetes.Clientset, op func(*kubernetes.Clientset) error) {
	// Warm both paths (connections, discovery) before measuring.
	for _, cs := range []*kubernetes.Clientset{direct, viaHub} {
		if err := op(cs); err != nil {
			b.Fatal(err)
		}
	}
	var dt, ht []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := op(direct); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := op(viaHub); err != nil {
			b.Fatal(err)
		}
		dt = append(dt, t1.Sub(t0).Seconds()*1000)
		ht = append(ht, time.Since(t1).Seconds()*1000)
	}
	b.StopTimer()
	b.ReportMetric(median(ht), "hub-p50-ms")
	b.ReportMetric(median(dt), "direct-p50-ms")
	b.ReportMetric(median(ht)/median(dt), "hub/direct")
}

func createPods(b *testing.B, c *testkube.Cluster, ns string, n int) {
	b.Helper()
	cfg := c.AdminConfig()
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": "bench", "i": fmt.Sprint(i % 10)}},
					Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{
						Name: "c", Image: "registry.invalid/pause:3.10",
						Env: []corev1.EnvVar{{Name: "A", Value: "some value of a plausible size"}},
					}}},
				}
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errc <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatalf("create pods: %v", err)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
