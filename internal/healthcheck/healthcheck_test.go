package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
)

// A fake apiserver (httptest) is enough here: the point is the checker's state
// machine. The real apiserver runs in internal/proxy's tests and BenchmarkCloudLoss.
type fakeAPIServer struct {
	srv   *httptest.Server
	mode  atomic.Int32 // 0 ok, 1 readyz 500, 2 hang
	lease atomic.Int32 // lease requests seen
}

func newFake(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/apis/coordination.k8s.io/") {
			f.lease.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
			return
		}
		switch f.mode.Load() {
		case 1:
			http.Error(w, "[-]shutting down", http.StatusInternalServerError)
		case 2:
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func start(t *testing.T, f *fakeAPIServer) (*loadbalancer.Balancer, *Checker) {
	u, _ := url.Parse(f.srv.URL)
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	c := New(lb, nil, Options{
		NodeName: "n1", HeartbeatInterval: time.Hour, HeartbeatTimeout: 2 * time.Second,
		FailedRetry: 3, HealthyThreshold: 2,
		NewBackendTransport: func() http.RoundTripper { return f.srv.Client().Transport },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return lb, c
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

func TestHealthyUnhealthyRecovered(t *testing.T) {
	f := newFake(t)
	lb, _ := start(t, f)
	b := lb.Backends()[0]
	waitFor(t, 5*time.Second, "healthy after the threshold", b.Healthy)
	// The first heartbeat (a 403 on the Lease) counts as reachable.
	waitFor(t, 5*time.Second, "a lease request", func() bool { return f.lease.Load() > 0 })
	if !b.Healthy() {
		t.Fatal("a 403 on the Lease made the backend unhealthy; the apiserver answered, it is reachable")
	}

	f.mode.Store(1) // readyz 500: shutting down
	waitFor(t, 5*time.Second, "unhealthy on readyz 500", func() bool { return !b.Healthy() })
	f.mode.Store(0)
	waitFor(t, 5*time.Second, "healthy again", b.Healthy)

	f.mode.Store(2) // hang
	d := waitFor(t, 10*time.Second, "unhealthy on a hanging apiserver", func() bool { return !b.Healthy() })
	t.Logf("hang noticed after %s", d)
	f.mode.Store(0)
	waitFor(t, 5*time.Second, "healthy after the hang", b.Healthy)
}

func TestHeartbeatOnlyWhileKubeletSeen(t *testing.T) {
	f := newFake(t)
	u, _ := url.Parse(f.srv.URL)
	lb, _ := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin})
	c := New(lb, nil, Options{
		NodeName: "n1", HeartbeatInterval: 100 * time.Millisecond, KubeletGracePeriod: 300 * time.Millisecond,
		HealthyThreshold: 1, ProbeInterval: 50 * time.Millisecond,
		NewBackendTransport: func() http.RoundTripper { return f.srv.Client().Transport },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	waitFor(t, 5*time.Second, "lease requests", func() bool { return f.lease.Load() > 0 })
	time.Sleep(500 * time.Millisecond) // past the grace period
	n := f.lease.Load()
	time.Sleep(400 * time.Millisecond)
	if m := f.lease.Load(); m != n {
		t.Fatalf("%d lease requests after kubelet went silent past the grace period", m-n)
	}
	c.KubeletSeen()
	waitFor(t, 2*time.Second, "heartbeats to resume", func() bool { return f.lease.Load() > n })
}

func TestSettled(t *testing.T) {
	up := newFake(t)
	down := newFake(t)
	down.srv.Close() // refuses connections
	for _, tc := range []struct {
		name    string
		f       *fakeAPIServer
		healthy bool
	}{{"reachable", up, true}, {"refused", down, false}} {
		t.Run(tc.name, func(t *testing.T) {
			lb, c := start(t, tc.f)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if !c.Settled(ctx) {
				t.Fatal("no verdict within 5s")
			}
			if got := lb.Backends()[0].Healthy(); got != tc.healthy {
				t.Fatalf("after Settled: healthy=%v, want %v", got, tc.healthy)
			}
		})
	}
}
