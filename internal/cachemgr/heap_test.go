package cachemgr

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/testkube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestHubHeap10kJSONList measures what issue 15 asks of the hub (goal: under 16
// MiB above idle): the heap peak of the hub (proxy, tee, decoder, store commit)
// while kubelet's first, cached, LIST of 10,000 pods in JSON goes through it
// against a real kube-apiserver. The client reads the body into io.Discard, so
// what grows is the hub's. The store fsyncs as in production.
func TestHubHeap10kJSONList(t *testing.T) {
	c := testkube.Start(t, testkube.Options{})
	admin := c.AdminConfig()
	admin.QPS, admin.Burst = 5000, 5000
	cs := kubernetes.NewForConfigOrDie(admin)
	const n, ns = 10000, "heap-10k"
	createMany(t, cs, ns, n, func(i int) error {
		_, err := cs.CoreV1().Pods(ns).Create(context.Background(), benchPod(ns, i), metav1.CreateOptions{})
		return err
	})
	hub := newTestHubSync(t, admin, Options{}, true)
	list := func() int64 {
		req, _ := http.NewRequest(http.MethodGet, hub.srv.URL+"/api/v1/namespaces/"+ns+"/pods", nil)
		req.Header.Set("User-Agent", kubeletUA)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %s", resp.Status)
		}
		hub.mgr.Wait()
		return got
	}
	for _, round := range []string{"first (cold)", "second (unchanged)"} {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		idle := m.HeapAlloc
		var peak atomic.Uint64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > idle && m.HeapAlloc-idle > peak.Load() {
					peak.Store(m.HeapAlloc - idle)
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		t0 := time.Now()
		got := list()
		close(stop)
		<-done
		info, err := hub.st.GetListInfo(context.Background(), cachekey.List(listInfo(ns)))
		if err != nil || info.Count != n || !info.Complete {
			t.Fatalf("cached list: %+v, %v (want %d complete)", info, err, n)
		}
		t.Logf("%s 10k-pod JSON list (%d bytes) through the hub, cached in %s: hub heap peak %.1f MiB above idle (idle %.1f MiB)",
			round, got, time.Since(t0).Round(time.Millisecond), float64(peak.Load())/(1<<20), float64(idle)/(1<<20))
		if peak.Load() > 16<<20 {
			t.Errorf("%s list: the hub's heap grew by %.1f MiB (goal: under 16 MiB above idle)", round, float64(peak.Load())/(1<<20))
		}
	}
}
