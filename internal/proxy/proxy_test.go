package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/requestinfo"
)

// These tests use httptest backends where the point is the proxy's own behaviour
// (limits, routing, retries); e2e_test.go runs it against real kube-apiservers.

func newTestProxy(t *testing.T, mode string, max int, backends ...string) (*Proxy, *loadbalancer.Balancer) {
	t.Helper()
	var urls []*url.URL
	for _, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
	}
	lb, err := loadbalancer.New(urls, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: true})
	if err != nil {
		t.Fatal(err)
	}
	rt := http.DefaultTransport.(*http.Transport).Clone()
	p, err := New(Options{WorkingMode: mode, LB: lb, MaxRequestsInFlight: max, CertTransport: rt, TokenTransport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return p, lb
}

func decodeStatus(t *testing.T, resp *http.Response) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("body is not a metav1.Status: %v", err)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure {
		t.Fatalf("status = %+v, want kind Status, apiVersion v1, status Failure", st)
	}
	return st
}

func TestMaxRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{}, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.Write([]byte("{}"))
	}))
	defer backend.Close()
	defer once.Do(func() { close(release) })
	p, _ := newTestProxy(t, config.WorkingModeEdge, 2, backend.URL)
	hub := httptest.NewServer(p)
	defer hub.Close()

	get := func(path string) *http.Response {
		resp, err := http.Get(hub.URL + path)
		if err != nil {
			t.Error(err)
			return nil
		}
		return resp
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); resp := get("/api/v1/namespaces/default/pods/p"); resp.Body.Close() }()
	}
	<-entered
	<-entered
	// A watch is long-running: not limited.
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp := get("/api/v1/pods?watch=true")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("watch past the limit: %s, want 200 (long-running requests are not limited)", resp.Status)
		}
		resp.Body.Close()
	}()
	<-entered
	resp := get("/api/v1/namespaces/default/configmaps")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third short request: %s, want 429", resp.Status)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q, want 1", ra)
	}
	st := decodeStatus(t, resp)
	if st.Reason != metav1.StatusReasonTooManyRequests || st.Details == nil || st.Details.RetryAfterSeconds != 1 {
		t.Fatalf("429 status = %+v", st)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	resp = get("/api/v1/namespaces/default/configmaps")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the slots freed: %s, want 200", resp.Status)
	}
}

func TestNoHealthyBackendAnswersLocally(t *testing.T) {
	p, lb := newTestProxy(t, config.WorkingModeEdge, 0, "http://127.0.0.1:1")
	lb.Backends()[0].MarkUnhealthy("test")
	hub := httptest.NewServer(p)
	defer hub.Close()
	resp, err := http.Get(hub.URL + "/api/v1/nodes/n1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("got %s, want 503", resp.Status)
	}
	if st := decodeStatus(t, resp); st.Reason != metav1.StatusReasonServiceUnavailable {
		t.Fatalf("reason %q", st.Reason)
	}

	// The Local hook gets the classified request.
	var got *requestinfo.Info
	p.opts.Local = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = requestinfo.From(r.Context())
		w.WriteHeader(299)
	})
	resp2, err := http.Get(hub.URL + "/api/v1/nodes/n1")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 299 || got == nil || got.Resource != "nodes" || got.Name != "n1" {
		t.Fatalf("local handler: status %d info %+v", resp2.StatusCode, got)
	}
}

func TestConnectErrorRetriesNextBackendAndMarksUnhealthy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"kind":"Status"}`))
	}))
	defer backend.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // refuses connections now
	p, lb := newTestProxy(t, config.WorkingModeEdge, 0, deadURL, backend.URL)
	hub := httptest.NewServer(p)
	defer hub.Close()
	for i := 0; i < 4; i++ {
		resp, err := http.Get(hub.URL + "/api/v1/namespaces")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s, want 200 from the live backend", i, resp.Status)
		}
	}
	if lb.Backends()[0].Healthy() {
		t.Fatal("a backend that refused a connection must be marked unhealthy")
	}
	if !lb.Backends()[1].Healthy() {
		t.Fatal("the live backend must stay healthy")
	}
}

func TestCloudModeIgnoresHealth(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`ok`))
	}))
	defer backend.Close()
	p, lb := newTestProxy(t, config.WorkingModeCloud, 0, backend.URL)
	lb.Backends()[0].MarkUnhealthy("test")
	hub := httptest.NewServer(p)
	defer hub.Close()
	resp, err := http.Get(hub.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cloud mode: %s, want 200 (no health gating)", resp.Status)
	}
}

type recordingCacher struct {
	mu   sync.Mutex
	seen []string
}

func (c *recordingCacher) CacheResponse(info *requestinfo.Info, resp *http.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, info.Verb+" "+info.Resource+" "+resp.Status)
}

func TestCacherGetsEdge2xxOnly(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/namespaces/default/pods/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		w.Write([]byte(`{}`))
	}))
	defer backend.Close()
	for _, mode := range []string{config.WorkingModeEdge, config.WorkingModeCloud} {
		p, _ := newTestProxy(t, mode, 0, backend.URL)
		c := &recordingCacher{}
		p.opts.Cacher = c
		hub := httptest.NewServer(p)
		for _, path := range []string{"/api/v1/namespaces/default/pods/p1", "/api/v1/namespaces/default/pods/missing", "/api/v1/pods"} {
			resp, err := http.Get(hub.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		hub.Close()
		want := 0
		if mode == config.WorkingModeEdge {
			want = 2
		}
		if len(c.seen) != want {
			t.Fatalf("%s mode: cacher saw %v, want %d responses (2xx only, edge only)", mode, c.seen, want)
		}
	}
}

// A get/list whose upstream fails before answering is served locally; a write is not.
func TestFailedReadFallsBackToLocal(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no response at all
		}
	}))
	defer backend.Close()
	p, lb := newTestProxy(t, config.WorkingModeEdge, 0, backend.URL)
	p.opts.Local = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	hub := httptest.NewServer(p)
	defer hub.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/v1/namespaces/default/pods/p1", 299},
		{http.MethodGet, "/api/v1/pods", 299},
		{http.MethodPost, "/api/v1/namespaces/default/pods", http.StatusServiceUnavailable},
	} {
		req, _ := http.NewRequest(tc.method, hub.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if !lb.Backends()[0].Healthy() {
		t.Error("a backend that accepted the connection must not be marked unhealthy by a dropped response")
	}
}

// TestRequestErrorsAreNotCloudLoss: a header over the apiserver's HTTP/2 header-list
// limit (SETTINGS_MAX_HEADER_LIST_SIZE; the backend advertises about 8 KiB here, a
// real apiserver about 1 MiB) makes the transport refuse to send the request. That
// is the request's fault, not the cloud's: 431, never the cache's older copy (get)
// nor "cloud unreachable" (create), and the backend stays healthy.
func TestRequestErrorsAreNotCloudLoss(t *testing.T) {
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","resourceVersion":"9"}}`))
	}))
	backend.EnableHTTP2 = true
	backend.Config.MaxHeaderBytes = 8 << 10
	backend.StartTLS()
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: true})
	if err != nil {
		t.Fatal(err)
	}
	rt := NewUpstreamTransport(backend.Client().Transport.(*http.Transport).TLSClientConfig)
	var local int
	p, err := New(Options{WorkingMode: config.WorkingModeEdge, LB: lb, CertTransport: rt, TokenTransport: rt,
		Local: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			local++
			w.Write([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","resourceVersion":"1"}}`))
		})})
	if err != nil {
		t.Fatal(err)
	}
	hub := httptest.NewServer(p)
	defer hub.Close()

	do := func(method, path string, big bool) (int, string) {
		req, _ := http.NewRequest(method, hub.URL+path, nil)
		if big {
			req.Header.Set("X-Big", strings.Repeat("x", 64<<10))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do(http.MethodGet, "/api/v1/namespaces/default/pods/p", false); code != http.StatusOK || !strings.Contains(body, `"9"`) {
		t.Fatalf("small header: %d %s", code, body)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/namespaces/default/pods/p"},      // cached: must not come from the cache
		{http.MethodPost, "/api/v1/namespaces/default/configmaps"}, // uncached: must not say the cloud is unreachable
	} {
		code, body := do(tc.method, tc.path, true)
		t.Logf("%s %s with a 64 KiB header: %d %s", tc.method, tc.path, code, body)
		if code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, `"kind":"Status"`) || !strings.Contains(body, "headers are larger") {
			t.Errorf("%s %s with a 64 KiB header: %d %s, want 431 Status", tc.method, tc.path, code, body)
		}
	}
	if local != 0 {
		t.Errorf("the local (cache) handler answered %d request(s) while the cloud was healthy", local)
	}
	if !lb.AnyHealthy() {
		t.Error("the backend was marked unhealthy by a request error")
	}
}

func TestRequestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errors.New("http2: request header list larger than peer's advertised limit"), http.StatusRequestHeaderFieldsTooLarge},
		{fmt.Errorf("net/http: invalid header field value for %q", "X"), http.StatusBadRequest},
		{errors.New(`invalid HTTP header value for header "X"`), http.StatusBadRequest},
		{errors.New("http: ContentLength=10 with Body length 3"), http.StatusBadRequest},
		{errors.New("http2: request body larger than specified content length"), http.StatusBadRequest},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, 0},
		{io.ErrUnexpectedEOF, 0},
		{nil, 0},
	} {
		code, ok := requestError(tc.err)
		if code != tc.code || ok != (tc.code != 0) {
			t.Errorf("requestError(%v) = %d %v, want %d", tc.err, code, ok, tc.code)
		}
	}
}
