package localproxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/proxy"
)

// hubInFront serves internal/proxy in edge mode in front of backend (healthy: the
// online path) or of an address nothing listens on (never healthy: the offline path,
// h answering); it returns the hub's URL.
func hubInFront(t *testing.T, h *Handler, backend string) string {
	t.Helper()
	online := backend != ""
	if !online {
		backend = "https://127.0.0.1:1"
	}
	u, _ := url.Parse(backend)
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: online})
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{WorkingMode: config.WorkingModeEdge, LB: lb, CertTransport: http.DefaultTransport,
		TokenTransport: http.DefaultTransport, Local: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestQueryValidationOnlineAndOffline: query parameters the kube-apiserver refuses
// are refused by the hub with the apiserver's answer (code and message, recorded
// from kube-apiserver v1.36.3), online (the backend never sees them) and offline
// (the cache never answers them) alike; a watch with a negative timeoutSeconds
// ends at once offline, as it does online.
func TestQueryValidationOnlineAndOffline(t *testing.T) {
	st := openStore(t)
	fillPods(t, st, "kubelet", 3, "json")
	h := newServer(t, st, Options{}).h
	var reached atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`))
	}))
	defer backend.Close()
	hubs := map[string]string{"offline": hubInFront(t, h, ""), "online": hubInFront(t, h, backend.URL)}

	const pods = "/api/v1/pods?fieldSelector=spec.nodeName%3D" + testNode
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{pods + "&resourceVersion=abc", 400, `invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax`},
		{pods + "&limit=abc", 400, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{pods + "&watch=true&timeoutSeconds=abc", 400, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{pods + "&timeoutSeconds=abc", 400, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{pods + "&watch=true&resourceVersion=abc", 500, `resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax`},
		{pods + "&resourceVersionMatch=Exact", 422, `resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided`},
		{pods + "&sendInitialEvents=true", 422, `sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list`},
		{pods + "&watch=true&sendInitialEvents=true", 422, `sendInitialEvents requires setting resourceVersionMatch to NotOlderThan`},
		{"/api/v1/pods?labelSelector=a%3D%3D%3Db", 400, `unable to parse requirement: found '=', expected: identifier`},
		{"/api/v1/namespaces/ns1/pods/pod-00001?resourceVersion=abc", 500, `resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax`},
	} {
		for _, path := range []string{"offline", "online"} {
			req, _ := http.NewRequest(http.MethodGet, hubs[path]+tc.query, nil)
			req.Header.Set("User-Agent", "kubelet/v1.36.3")
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("%s %s: %v", path, tc.query, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var status struct {
				Kind, Message string
				Code          int
			}
			_ = json.Unmarshal(body, &status)
			if resp.StatusCode != tc.code || status.Kind != "Status" || status.Code != tc.code || !strings.Contains(status.Message, tc.msg) {
				t.Errorf("%s %s: %d %.300s\nwant %d %q", path, tc.query, resp.StatusCode, body, tc.code, tc.msg)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d refused request(s) reached the backend", n)
	}

	// Valid queries still pass, and timeoutSeconds=-5 ends the local watch at once.
	get := func(url string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("User-Agent", "kubelet/v1.36.3")
		return (&http.Client{Timeout: 10 * time.Second}).Do(req)
	}
	start := time.Now()
	resp, err := get(hubs["offline"] + pods + "&watch=true&timeoutSeconds=-5")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || time.Since(start) > 3*time.Second {
		t.Errorf("offline watch with timeoutSeconds=-5: %d after %s, %v %.200s; want 200, ended at once", resp.StatusCode, time.Since(start), err, b)
	}
	resp, err = get(hubs["offline"] + pods + "&limit=2")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("a valid list refused offline: %v %v", resp, err)
	}
}
