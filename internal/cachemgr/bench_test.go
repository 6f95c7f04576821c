package cachemgr

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/testkube"
)

// BenchmarkCaching compares, in the same run against the same kube-apiserver, a
// client going through the hub's proxy with caching on (kubelet's User-Agent,
// protobuf like kubelet) with the same client going direct:
//
//   - list-1k / list-10k (protobuf, as kubelet) and list-10k-json: LIST of 1,000 /
//     10,000 pods. Metrics: hub-ms, direct-ms
//     (medians), hub/direct (ratio), hub-nocache-ms (same proxy, a User-Agent that
//     is not cached), cache-commit-ms (from the client's last byte
//     until the list is committed in the store).
//   - watch: a watch replaying 3,000 ConfigMap ADDED events from a resourceVersion
//     before they were created. Metrics: hub-events/s, direct-events/s,
//     hub/direct, cache-events/s (events applied to the store per second,
//     measured until the last one is applied).
//
// The store fsyncs as in production.
//
// Run with: go test ./internal/cachemgr -run '^$' -bench Caching -benchtime 5x
func BenchmarkCaching(b *testing.B) {
	c := testkube.Start(b, testkube.Options{})
	admin := c.AdminConfig()
	admin.QPS, admin.Burst = 5000, 5000
	cs := kubernetes.NewForConfigOrDie(admin)
	for _, n := range []int{1000, 10000} {
		ns := fmt.Sprintf("bench-%d", n)
		createMany(b, cs, ns, n, func(i int) error {
			_, err := cs.CoreV1().Pods(ns).Create(context.Background(), benchPod(ns, i), metav1.CreateOptions{})
			return err
		})
		b.Run(fmt.Sprintf("list-%dk", n/1000), func(b *testing.B) { benchList(b, admin, ns, n, true) })
		if n == 10000 {
			b.Run("list-10k-json", func(b *testing.B) { benchList(b, admin, ns, n, false) })
		}
	}
	b.Run("watch", func(b *testing.B) { benchWatch(b, admin, cs) })
}

func benchPod(ns string, i int) *corev1.Pod {
	p := testPod(ns, fmt.Sprintf("pod-%05d", i), "edge-bench")
	p.Labels = map[string]string{"app": "bench", "index": fmt.Sprint(i)}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "some value to make the pod realistic"}}
	return p
}

func createMany(b *testing.B, cs kubernetes.Interface, ns string, n int, create func(i int) error) {
	b.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := create(i); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
}

func protoClient(b *testing.B, cfg *rest.Config, ua string) *kubernetes.Clientset {
	return benchClient(b, cfg, ua, true)
}

func benchClient(b *testing.B, cfg *rest.Config, ua string, protobuf bool) *kubernetes.Clientset {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = ua
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	return kubernetes.NewForConfigOrDie(cfg)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func benchList(b *testing.B, admin *rest.Config, ns string, n int, protobuf bool) {
	hub := newTestHubSync(b, admin, Options{}, true)
	viaHub := benchClient(b, hub.config("", true), kubeletUA, protobuf)
	direct := benchClient(b, admin, kubeletUA, protobuf)
	uncached := benchClient(b, hub.config("", true), "bench-not-cached/1.0", protobuf) // same proxy, caching off
	ctx := context.Background()
	var hubMs, directMs, commitMs, uncachedMs []float64
	list := func(cs *kubernetes.Clientset) float64 {
		start := time.Now()
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Items) != n {
			b.Fatalf("listed %d pods, want %d", len(l.Items), n)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		directMs = append(directMs, list(direct))
		uncachedMs = append(uncachedMs, list(uncached))
		hubMs = append(hubMs, list(viaHub))
		start := time.Now()
		hub.mgr.Wait()
		commitMs = append(commitMs, float64(time.Since(start).Microseconds())/1000)
	}
	b.StopTimer()
	info, err := hub.st.GetListInfo(ctx, cachekey.List(listInfo(ns)))
	if err != nil || info.Count != n || !info.Complete {
		b.Fatalf("cached list: %+v, %v (want %d complete)", info, err, n)
	}
	if s := hub.mgr.Stats(); s.Overflows+s.Failures != 0 {
		b.Fatalf("cache stats %+v", s)
	}
	b.ReportMetric(median(hubMs), "hub-ms")
	b.ReportMetric(median(directMs), "direct-ms")
	b.ReportMetric(median(hubMs)/median(directMs), "hub/direct")
	b.ReportMetric(median(commitMs), "cache-commit-ms")
	b.ReportMetric(median(uncachedMs), "hub-nocache-ms")
	b.ReportMetric(0, "ns/op")
}

var watchRuns int

func benchWatch(b *testing.B, admin *rest.Config, cs kubernetes.Interface) {
	const events = 3000
	ctx := context.Background()
	var hubRate, directRate, cacheRate []float64
	// The ConfigMaps are created once; every iteration replays their ADDED events
	// from the apiserver's watch cache (it keeps them well past this benchmark).
	watchRuns++
	ns := fmt.Sprintf("bench-watch-%d", watchRuns)
	// A marker ConfigMap first: the replay starts at its RV, which the ConfigMap
	// watch cache is sure to hold.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	marker, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "marker"}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rv := marker.ResourceVersion
	createMany(b, cs, ns, events, func(j int) error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", j)}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		return err
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		hub := newTestHubSync(b, admin, Options{}, true)
		b.StartTimer()
		watchAll := func(cs *kubernetes.Clientset) float64 {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			t0 := time.Now()
			w, err := cs.CoreV1().ConfigMaps(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Stop()
			got := 0
			for ev := range w.ResultChan() {
				if ev.Type == "ADDED" {
					got++
					if got == events {
						break
					}
				}
				if ev.Type == "ERROR" {
					b.Fatalf("watch error: %v", ev.Object)
				}
			}
			return events / time.Since(t0).Seconds()
		}
		directRate = append(directRate, watchAll(protoClient(b, admin, kubeletUA)))
		t0 := time.Now()
		hubRate = append(hubRate, watchAll(protoClient(b, hub.config("", true), kubeletUA)))
		for hub.mgr.Stats().Events < events {
			if time.Since(t0) > time.Minute {
				b.Fatalf("cache applied %d of %d events in a minute", hub.mgr.Stats().Events, events)
			}
			time.Sleep(time.Millisecond)
		}
		cacheRate = append(cacheRate, events/time.Since(t0).Seconds())
	}
	b.StopTimer()
	b.ReportMetric(median(hubRate), "hub-events/s")
	b.ReportMetric(median(directRate), "direct-events/s")
	b.ReportMetric(median(hubRate)/median(directRate), "hub/direct")
	b.ReportMetric(median(cacheRate), "cache-events/s")
	b.ReportMetric(0, "ns/op")
}

func listInfo(ns string) *requestinfo.Info {
	r, _ := http.NewRequest(http.MethodGet, "/api/v1/namespaces/"+ns+"/pods", nil)
	r.Header.Set("User-Agent", kubeletUA)
	info, _ := requestinfo.New().Parse(r)
	return info
}
