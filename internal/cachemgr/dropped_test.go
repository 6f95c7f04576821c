package cachemgr

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/localproxy"
)

// TestDroppedWatchEventMarksViewIncomplete: a watch whose events pile up past
// MaxPendingEvents drops the rest of the stream from the cache; the view must then
// say it is incomplete, not stay "complete" at the last event applied while the
// client went on to later ones (issue 15 item 1). The applier is held back by the
// list the watch follows (the client has not read it yet), so the overflow is
// certain, not a race against the store.
func TestDroppedWatchEventMarksViewIncomplete(t *testing.T) {
	m, st := newMgr(t, Options{MaxPendingEvents: 1})
	listBody := jsonBytes(t, podList(3, "", pod("a", "p1", "n", 3)))
	linfo, lresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", listBody, nil)
	m.CacheResponse(linfo, lresp)

	var evs []metav1.WatchEvent
	for rv := 4; rv <= 9; rv++ {
		evs = append(evs, metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p1", "n", rv)))}})
	}
	watchBody := watchJSON(t, evs...)
	winfo, wresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods?watch=true&resourceVersion=3", "application/json", watchBody, nil)
	m.CacheResponse(winfo, wresp)
	got, err := io.ReadAll(wresp.Body)
	if err != nil || len(got) != len(watchBody) {
		t.Fatalf("client read %d of %d bytes: %v", len(got), len(watchBody), err)
	}
	wresp.Body.Close()
	time.Sleep(100 * time.Millisecond) // the watch's decoder overflows while the list is unread
	drain(t, m, lresp, listBody)

	_, li := listView(t, st, cachekey.List(linfo))
	if li.Complete || !strings.Contains(li.Reason, "MaxPendingEvents") {
		t.Fatalf("view after dropped watch events = {ResourceVersion: %d, Complete: %v, Reason: %q}; the client received up to RV 9, so the view must be incomplete, saying why",
			li.ResourceVersion, li.Complete, li.Reason)
	}
	if s := m.Stats(); s.Overflows != 1 {
		t.Fatalf("overflows = %d, want 1", s.Overflows)
	}

	// Offline, the view is refused with the reason, not served as the state at RV 4.
	local, err := localproxy.New(localproxy.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/a/pods", nil)
	req.Header.Set("User-Agent", kubeletUA)
	rec := httptest.NewRecorder()
	local.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "incomplete") || !strings.Contains(rec.Body.String(), "MaxPendingEvents") {
		t.Fatalf("offline list of the view: %d %s; want 503 saying the view is incomplete and why", rec.Code, rec.Body)
	}
	t.Logf("offline answer: %d %s", rec.Code, rec.Body)
}

// TestWatchListAddErrorMarksViewIncomplete: a watch-list whose initial state cannot
// be written (here the store refuses an item, as it does when the spool hits a full
// disk) leaves the view at the older list; the client has the newer state and will
// watch on from it, so the view must be marked incomplete, or later events would be
// applied over the gap.
func TestWatchListAddErrorMarksViewIncomplete(t *testing.T) {
	m, st := newMgr(t, Options{})
	listBody := jsonBytes(t, podList(3, "", pod("a", "p1", "n", 3)))
	linfo, lresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", listBody, nil)
	m.CacheResponse(linfo, lresp)
	drain(t, m, lresp, listBody)

	bookmark := pod("", "", "", 20)
	bookmark.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	body := watchJSON(t,
		metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p1", "n", 10)))}},
		// an item outside the view's namespace: ListWriter.Add refuses it
		metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("b", "p2", "n", 11)))}},
		metav1.WatchEvent{Type: "BOOKMARK", Object: runtime.RawExtension{Raw: jsonBytes(t, &bookmark)}},
	)
	info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	_, li := listView(t, st, cachekey.List(info))
	if li.Complete || !strings.Contains(li.Reason, "watch-list") {
		t.Fatalf("view after a failed watch-list = %s; want incomplete, saying the watch-list's state was not cached", fmt.Sprintf("{ResourceVersion: %d, Complete: %v, Reason: %q}", li.ResourceVersion, li.Complete, li.Reason))
	}
	if s := m.Stats(); s.Failures != 1 {
		t.Fatalf("failures = %d, want 1", s.Failures)
	}
}
