package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/testkube"
)

// TestBadRequestsAsTheAPIServer (issue 19 items 2 and 3) against a real
// kube-apiserver: a query the apiserver refuses gets, through the hub, the code and
// message the apiserver itself gives; and a ~1 MiB header, under the hub's own limit
// but over the apiserver's HTTP/2 header-list limit, is 431 through the hub, not
// "cloud unreachable" nor the cached copy.
func TestBadRequestsAsTheAPIServer(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	c.GrantNodeReadAll(t, testNode)
	h := startHub(t, hubConfig(t, c, c.URL()))
	waitUntil(t, 10*time.Second, "the apiserver to be healthy", func() bool { return h.serverHealthy(t, c.URL()) })
	rt, err := rest.TransportFor(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	direct := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	via := &http.Client{Timeout: 10 * time.Second}
	type answer struct {
		code int
		msg  string
	}
	ask := func(cl *http.Client, url string, hdr http.Header) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", "kubelet/v1.36.3 (linux/amd64) kubernetes/test")
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("GET %.100s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var st struct{ Message string }
		_ = json.Unmarshal(b, &st)
		return answer{resp.StatusCode, st.Message}
	}
	for _, q := range []string{
		"/api/v1/pods?resourceVersion=abc",
		"/api/v1/pods?limit=abc",
		"/api/v1/pods?timeoutSeconds=abc",
		"/api/v1/pods?watch=true&timeoutSeconds=abc",
		"/api/v1/pods?watch=true&resourceVersion=abc",
		"/api/v1/pods?resourceVersionMatch=bogus",
		"/api/v1/pods?sendInitialEvents=true",
		"/api/v1/pods?watch=true&sendInitialEvents=true",
		"/api/v1/pods?labelSelector=a%3D%3D%3Db",
		"/api/v1/pods?fieldSelector=a%3D%3D%3Db",
		"/api/v1/namespaces/default/serviceaccounts/default?resourceVersion=abc",
	} {
		want, got := ask(direct, c.URL()+q, nil), ask(via, h.proxyURL()+q, nil)
		if got != want {
			t.Errorf("%s: through the hub %d %q, the apiserver says %d %q", q, got.code, got.msg, want.code, want.msg)
		}
	}

	// Under the hub's own limit (net/http: 1 MiB + 4 KiB of request head) and over the
	// apiserver's HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE (1 MiB + 320 bytes, fields
	// counted with 32 bytes of overhead each).
	big := http.Header{"X-Big": {strings.Repeat("x", 1_049_000)}}
	path := "/api/v1/namespaces/default"
	if a := ask(via, h.proxyURL()+path, nil); a.code != http.StatusOK { // now cached
		t.Fatalf("GET %s through the hub: %+v", path, a)
	}
	for _, p := range []string{path, "/api/v1/namespaces/default/configmaps/never-read"} {
		a := ask(via, h.proxyURL()+p, big)
		t.Logf("GET %s with a 1,049,000-byte header through the hub: %d %.200s", p, a.code, a.msg)
		if a.code != http.StatusRequestHeaderFieldsTooLarge || strings.Contains(a.msg, "unreachable") {
			t.Errorf("GET %s with a 1,049,000-byte header: %d %q, want 431", p, a.code, a.msg)
		}
	}
	if !h.serverHealthy(t, c.URL()) {
		t.Error("the apiserver was marked unhealthy by an oversized header")
	}
}
