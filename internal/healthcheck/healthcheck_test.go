package healthcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/kubescheme"
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

// TestRenewLease checks the Lease client's requests against a fake apiserver that
// keeps one Lease: a missing Lease is created (POST), an existing one renewed (PUT)
// with its resourceVersion, an error answer comes back as an API status.
func TestRenewLease(t *testing.T) {
	var (
		mu      sync.Mutex
		stored  []byte // the Lease as last written, "" = none
		reqs    []string
		failGet atomic.Bool
	)
	const path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
	protoCodec := protobuf.NewSerializer(kubescheme.Scheme, kubescheme.Scheme)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, r.Method+" "+r.URL.Path)
		if a := r.Header.Get("Accept"); a != "application/vnd.kubernetes.protobuf,application/json" {
			t.Errorf("%s with Accept %q", r.Method, a)
		}
		if ua := r.Header.Get("User-Agent"); ua != "yurthub" {
			t.Errorf("User-Agent %q", ua)
		}
		w.Header().Set("Content-Type", "application/json")
		status := func(code int, reason string) {
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d}`, reason, code)
		}
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet && r.URL.Path == path+"/n1":
			if failGet.Load() {
				status(http.StatusServiceUnavailable, "ServiceUnavailable")
				return
			}
			if stored == nil {
				status(http.StatusNotFound, "NotFound")
				return
			}
			w.Write(stored)
		case r.Method == http.MethodPost && r.URL.Path == path, r.Method == http.MethodPut && r.URL.Path == path+"/n1":
			// Protobuf, as client-go's typed clients send.
			if ct := r.Header.Get("Content-Type"); ct != "application/vnd.kubernetes.protobuf" {
				t.Errorf("%s with Content-Type %q", r.Method, ct)
			}
			var l coordinationv1.Lease
			if _, _, err := protoCodec.Decode(body, nil, &l); err != nil {
				t.Errorf("%s body: %v", r.Method, err)
			}
			if l.APIVersion != "coordination.k8s.io/v1" || l.Kind != "Lease" || l.Name != "n1" {
				t.Errorf("%s body names %s %s %s", r.Method, l.APIVersion, l.Kind, l.Name)
			}
			if r.Method == http.MethodPut && l.ResourceVersion != "7" {
				t.Errorf("PUT without the resourceVersion read: %q", l.ResourceVersion)
			}
			l.ResourceVersion = "7"
			stored, _ = json.Marshal(&l)
			w.WriteHeader(http.StatusCreated)
			w.Write(stored)
		default:
			status(http.StatusMethodNotAllowed, "MethodNotAllowed")
		}
	}))
	defer srv.Close()

	u, _ := url.Parse(srv.URL)
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	c := New(lb, nil, Options{NodeName: "n1"})
	leases, err := newLeaseClient(&rest.Config{Host: srv.URL, UserAgent: "yurthub", QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	p := &backendProber{c: c, leases: leases, log: c.log}
	ctx := context.Background()

	if err := p.renewLease(ctx); err != nil {
		t.Fatalf("create: %v", err)
	}
	var first coordinationv1.Lease
	if err := json.Unmarshal(stored, &first); err != nil {
		t.Fatal(err)
	}
	if first.Namespace != LeaseNamespace || *first.Spec.HolderIdentity != "n1" || *first.Spec.LeaseDurationSeconds != leaseDurationSeconds || first.Spec.RenewTime == nil {
		t.Fatalf("created lease: %+v", first)
	}
	time.Sleep(2 * time.Millisecond)
	if err := p.renewLease(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	var second coordinationv1.Lease
	if err := json.Unmarshal(stored, &second); err != nil {
		t.Fatal(err)
	}
	if !second.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
		t.Fatalf("renewTime not moved on: %v then %v", first.Spec.RenewTime, second.Spec.RenewTime)
	}
	want := []string{"GET " + path + "/n1", "POST " + path, "GET " + path + "/n1", "PUT " + path + "/n1"}
	if fmt.Sprint(reqs) != fmt.Sprint(want) {
		t.Fatalf("requests %v, want %v", reqs, want)
	}

	failGet.Store(true)
	err = p.renewLease(ctx)
	if !apierrors.IsServiceUnavailable(err) || !isReachabilityError(err) {
		t.Fatalf("a 503 on GET: %v (reachability error: %v)", err, isReachabilityError(err))
	}
}
