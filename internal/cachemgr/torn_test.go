package cachemgr

import (
	"bytes"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/cachekey"
)

// Through the manager: a torn or malformed JSON list stores nothing (the view
// keeps what an earlier list put there), a watch cut inside an event keeps the
// events before the cut and is not a failure.
func TestManagerTornJSONListAndCutWatch(t *testing.T) {
	m, st := newMgr(t, Options{})
	good := jsonBytes(t, podList(100, "", pod("a", "p1", "n", 10), pod("a", "p2", "n", 11)))
	info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", good, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, good)
	want := map[string]uint64{"a/p1": 10, "a/p2": 11}

	next := jsonBytes(t, podList(200, "", pod("a", "p1", "n", 20), pod("a", "p3", "n", 21)))
	cut := bytes.Index(next, []byte(`"p3"`))
	bad := bytes.Replace(next, []byte(`"resourceVersion":"21"`), []byte(`"resourceVersion":"21",}`), 1)
	for name, body := range map[string][]byte{"torn": next[:cut], "malformed": bad} {
		info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", body, nil)
		m.CacheResponse(info, resp)
		drain(t, m, resp, body)
		got, li := listView(t, st, cachekey.List(info))
		if fmt.Sprint(got) != fmt.Sprint(want) || li.ResourceVersion != 100 || li.Complete {
			t.Fatalf("%s list: view = %v %+v, want the earlier %v at RV 100, marked incomplete", name, got, li, want)
		}
	}

	body := watchJSON(t,
		metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p1", "n", 150)))}},
		metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p9", "n", 160)))}})
	body = body[:len(body)-40]
	failures := m.Stats().Failures
	winfo, wresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods?watch=1&resourceVersion=100", "application/json", body, nil)
	m.CacheResponse(winfo, wresp)
	drain(t, m, wresp, body)
	got, li := listView(t, st, cachekey.List(winfo))
	if got["a/p1"] != 150 || got["a/p9"] != 0 || li.ResourceVersion != 150 {
		t.Fatalf("cut watch: view = %v %+v, want p1 at 150 and no p9", got, li)
	}
	if f := m.Stats().Failures; f != failures {
		t.Fatalf("a watch cut inside an event counted as a failure (%d -> %d)", failures, f)
	}
}
