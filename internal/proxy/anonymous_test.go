package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/testenv"
)

// addrSet is a fixed NodeAddrs. The real one (internal/nodeaddr) is exercised with
// real namespaces and a veth "pod" by internal/daemon's TestDaemonAnonymousOnlyFromNode;
// here the point is what the proxy does with its answer.
type addrSet map[netip.Addr]bool

func (s addrSet) Contains(ip netip.Addr) bool { return s[ip] }

// TestAnonymousOnlyFromNode: a request without credentials from a source that is not
// the node's gets a 403 Forbidden Status that says what to do, never reaches the
// backend, is counted by reason and logged once per source; with a bearer token it
// is forwarded with it; from a node address, or from loopback by default, it is
// forwarded.
func TestAnonymousOnlyFromNode(t *testing.T) {
	var reached atomic.Int64
	var lastAuth atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		lastAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}`))
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)

	newProxy := func(addrs NodeAddrs, logs io.Writer) *Proxy {
		lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: true})
		if err != nil {
			t.Fatal(err)
		}
		rt := http.DefaultTransport.(*http.Transport).Clone()
		p, err := New(Options{WorkingMode: config.WorkingModeCloud, LB: lb, CertTransport: rt, TokenTransport: rt, NodeAddrs: addrs,
			Log: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const path = "/api/v1/namespaces/default"
	serve := func(p *Proxy, remote, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		r.Header.Set("User-Agent", "curl/8")
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		return w
	}

	logs := &testenv.LogBuffer{}
	node := netip.MustParseAddr("10.0.0.5")
	p := newProxy(addrSet{node: true}, logs)
	rejected := func(reason string) float64 {
		return testutil.ToFloat64(p.opts.Metrics.AnonymousRejected.WithLabelValues(reason))
	}

	// From a pod: refused, twice, and logged once.
	for i := 0; i < 2; i++ {
		w := serve(p, "10.244.1.7:41234", "")
		if w.Code != http.StatusForbidden {
			t.Fatalf("pod without credentials: %d, want 403; body %s", w.Code, w.Body)
		}
		st := decodeStatus(t, w.Result())
		if st.Reason != metav1.StatusReasonForbidden || st.Code != http.StatusForbidden {
			t.Errorf("pod without credentials: status %+v, want reason Forbidden, code 403", st)
		}
		for _, words := range []string{"10.244.1.7", "no credentials", "service-account token", "Authorization: Bearer", "host network"} {
			if !strings.Contains(st.Message, words) {
				t.Errorf("message lacks %q: %s", words, st.Message)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the backend saw %d credential-less requests from a pod", n)
	}
	if got := rejected(rejectNotNode); got != 2 {
		t.Errorf("anonymous_rejected_total{reason=%q} = %v, want 2", rejectNotNode, got)
	}
	if n := strings.Count(logs.String(), "request without credentials refused"); n != 1 || !strings.Contains(logs.String(), "source=10.244.1.7") {
		t.Errorf("%d WARN lines, want 1 naming source=10.244.1.7:\n%s", n, logs)
	}
	t.Logf("the 403 message: %s", decodeStatus(t, serve(p, "10.244.1.8:1", "").Result()).Message)

	// From the same pod with its token: forwarded, token kept.
	if w := serve(p, "10.244.1.7:41234", "Bearer pod-token"); w.Code != http.StatusOK || lastAuth.Load() != "Bearer pod-token" {
		t.Errorf("pod with a bearer token: %d, backend saw Authorization %q; want 200 with the token", w.Code, lastAuth.Load())
	}
	// From a node address, IPv4-mapped too: forwarded with no Authorization (the
	// node's certificate would go upstream).
	for _, remote := range []string{"10.0.0.5:5555", "[::ffff:10.0.0.5]:5555"} {
		before := reached.Load()
		if w := serve(p, remote, ""); w.Code != http.StatusOK || reached.Load() != before+1 || lastAuth.Load() != "" {
			t.Errorf("from node address %s without credentials: %d; want 200, forwarded", remote, w.Code)
		}
	}
	// A source that cannot be read is not the node.
	if w := serve(p, "not-an-address", ""); w.Code != http.StatusForbidden || rejected(rejectUnknownSource) != 1 {
		t.Errorf("unreadable source: %d, unknown_source %v; want 403 counted once", w.Code, rejected(rejectUnknownSource))
	}

	// No NodeAddrs: loopback only.
	p = newProxy(nil, io.Discard)
	if w := serve(p, "127.0.0.1:1000", ""); w.Code != http.StatusOK {
		t.Errorf("default, loopback: %d, want 200", w.Code)
	}
	if w := serve(p, "[::1]:1000", ""); w.Code != http.StatusOK {
		t.Errorf("default, ::1: %d, want 200", w.Code)
	}
	if w := serve(p, "10.0.0.5:1000", ""); w.Code != http.StatusForbidden {
		t.Errorf("default, 10.0.0.5: %d, want 403", w.Code)
	}
}
