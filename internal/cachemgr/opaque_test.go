package cachemgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
)

// TestOpaqueResourceVersionsNotCached: resourceVersion is opaque by API convention;
// an aggregated API server may hand out ones that are not numbers. The cache orders
// everything by resourceVersion, so such a resource is not cached: the first
// response that shows it logs one warning naming the resource and counts it, and
// every later response of that resource streams to its client untouched without
// another line. Other resources keep being cached. (Issue 15 item 4. A real
// aggregated API with such resourceVersions is not at hand: the responses are the
// JSON an aggregated server would send, through the manager into a real bbolt file.)
func TestOpaqueResourceVersionsNotCached(t *testing.T) {
	st := openStore(t)
	var logs testenv.LogBuffer
	m := New(st, slog.New(slog.NewJSONHandler(&logs, nil)), Options{})
	t.Cleanup(m.Close)
	m.SetCacheAgents("*")

	item := func(name, rv string) string {
		return fmt.Sprintf(`{"apiVersion":"metrics.example.com/v1","kind":"Sample","metadata":{"namespace":"a","name":%q,"resourceVersion":%q}}`, name, rv)
	}
	list := []byte(`{"apiVersion":"metrics.example.com/v1","kind":"SampleList","metadata":{"resourceVersion":"2026-12-07T05:00:00Z/17"},"items":[` +
		item("s1", "2026-12-07T05:00:00Z/3") + `]}`)
	get := []byte(item("s1", "2026-12-07T05:00:00Z/3"))
	watch := []byte(`{"type":"ADDED","object":` + item("s2", "2026-12-07T05:00:01Z/18") + "}\n")
	const ua = "metrics-agent/v1.0"
	var lk store.ListKey
	for i := range 3 {
		for _, c := range []struct {
			url  string
			body []byte
		}{
			{"/apis/metrics.example.com/v1/namespaces/a/samples", list},
			{"/apis/metrics.example.com/v1/namespaces/a/samples/s1", get},
			{"/apis/metrics.example.com/v1/namespaces/a/samples?watch=true&resourceVersion=x", watch},
		} {
			info, resp := response(t, ua, c.url, "application/json", c.body, nil)
			m.CacheResponse(info, resp)
			drain(t, m, resp, c.body) // the client gets every byte, whatever the cache does
			if i == 0 && info.Verb == "list" {
				lk = cachekey.List(info)
			}
		}
	}
	if _, err := st.GetListInfo(context.Background(), lk); !errors.Is(err, store.ErrNotSynced) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("view of a resource with opaque resourceVersions: %v, want none", err)
	}
	if n := len(records(t, &logs, "WARN", "")); n != 1 {
		t.Fatalf("%d warnings for 9 responses of one resource with opaque resourceVersions, want exactly 1:\n%s", n, logs.String())
	}
	rec := records(t, &logs, "WARN", "")[0]
	if rec["resource"] != "samples.v1.metrics.example.com" {
		t.Fatalf("the warning does not name the resource: %v", rec)
	}
	t.Logf("logged once: %v", rec["msg"])

	// A resource with numeric resourceVersions is still cached.
	body := jsonBytes(t, podList(5, "", pod("a", "p1", "n", 5)))
	info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	if got, li := listView(t, st, cachekey.List(info)); len(got) != 1 || !li.Complete {
		t.Fatalf("pods view after the opaque resource: %v %+v", got, li)
	}
	if s := m.Stats(); s.OpaqueRVResources != 1 || s.Failures != 0 {
		t.Fatalf("stats: %d resources with opaque resourceVersions (want 1), %d failures (want 0)", s.OpaqueRVResources, s.Failures)
	}
}
