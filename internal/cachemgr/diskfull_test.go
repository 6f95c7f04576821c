package cachemgr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
)

// records returns the log records whose msg starts with prefix.
func records(t *testing.T, logs *testenv.LogBuffer, level, prefix string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(logs.String())), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if msg, _ := rec["msg"].(string); rec["level"] == level && strings.HasPrefix(msg, prefix) {
			out = append(out, rec)
		}
	}
	return out
}

// TestDiskFullPausesCaching runs responses through the manager while the real
// filesystem under its cache file (a small tmpfs) is full: clients get every byte,
// the full disk is logged once (and again after a minute, not per response), the
// view keeps its last state, events are not applied to a view that could not be
// marked incomplete, and once space is freed caching resumes, the view saying it is
// incomplete until a new list makes it whole.
func TestDiskFullPausesCaching(t *testing.T) {
	dir := testenv.SmallFS(t, 16<<20)
	st, err := store.Open(filepath.Join(dir, "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs testenv.LogBuffer
	m := New(st, slog.New(slog.NewJSONHandler(&logs, nil)), Options{})
	t.Cleanup(m.Close)
	var clockMu sync.Mutex
	clock := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	m.disk.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }

	through := func(url string, body []byte) *store.ListKey {
		t.Helper()
		info, resp := response(t, kubeletUA, url, "application/json", body, nil)
		m.CacheResponse(info, resp)
		drain(t, m, resp, body) // the client gets every byte, whatever the store does
		k := cachekey.List(info)
		return &k
	}
	watch := func(rv int, typ string, p int, prv int) []byte {
		return watchJSON(t, metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", fmt.Sprintf("p%d", p), "n", prv)))}})
	}
	k := *through("/api/v1/namespaces/a/pods", jsonBytes(t, podList(5, "", pod("a", "p1", "n", 5))))
	view := func() (map[string]uint64, store.ListInfo) { return listView(t, st, k) }
	if got, li := view(); len(got) != 1 || li.ResourceVersion != 5 || !li.Complete {
		t.Fatalf("before: %v %+v", got, li)
	}

	filler := testenv.FillDisk(t, dir)
	// A watch event, a get and another list while the disk is full.
	through("/api/v1/namespaces/a/pods?watch=true&resourceVersion=5", watch(5, "ADDED", 2, 6))
	through("/api/v1/namespaces/a/pods/p1", jsonBytes(t, ptrPod(pod("a", "p1", "n", 6))))
	through("/api/v1/namespaces/a/pods", jsonBytes(t, podList(7, "", pod("a", "p1", "n", 5), pod("a", "p2", "n", 6), pod("a", "p3", "n", 7))))
	if got, li := view(); len(got) != 1 || li.ResourceVersion != 5 || !li.Complete {
		t.Fatalf("the view changed while the disk was full: %v %+v", got, li)
	}
	// A GET of an unchanged object writes nothing: it proves nothing about the disk.
	through("/api/v1/namespaces/a/pods/p1", jsonBytes(t, ptrPod(pod("a", "p1", "n", 5))))
	if n := len(records(t, &logs, "INFO", "cache writes succeed again")); n != 0 {
		t.Fatalf("recovery logged while the disk is still full:\n%s", logs.String())
	}
	if n := len(records(t, &logs, "ERROR", "cache writes fail: the disk is full")); n != 1 {
		t.Fatalf("full disk logged %d times for 3 refused responses, want once:\n%s", n, logs.String())
	}
	if s := m.Stats(); s.Failures != 3 {
		t.Errorf("failures = %d, want 3", s.Failures)
	}
	if _, owed := m.unmarked.get(k); !owed {
		t.Fatal("the view whose watch events were lost is not remembered as owed an incomplete mark")
	}
	// A minute later, still full: one reminder.
	advance(61 * time.Second)
	through("/api/v1/namespaces/a/pods/p1", jsonBytes(t, ptrPod(pod("a", "p1", "n", 8))))
	through("/api/v1/namespaces/a/pods/p1", jsonBytes(t, ptrPod(pod("a", "p1", "n", 8))))
	if n := len(records(t, &logs, "ERROR", "cache writes still fail")); n != 1 {
		t.Fatalf("reminders after a minute: %d, want 1:\n%s", n, logs.String())
	}

	// Space again. The client re-watches from the RV it had; the events it gets now
	// come after the ones the cache lost, so the view is marked incomplete first.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	through("/api/v1/namespaces/a/pods?watch=true&resourceVersion=7", watch(7, "MODIFIED", 1, 9))
	got, li := view()
	if got["a/p1"] != 9 || li.ResourceVersion != 9 || li.Complete || !strings.Contains(li.Reason, "not applied") {
		t.Fatalf("after space is back: %v %+v, want p1@9 at RV 9, incomplete (events were lost)", got, li)
	}
	if n := len(records(t, &logs, "INFO", "cache writes succeed again")); n != 1 {
		t.Fatalf("recovery logged %d times, want once:\n%s", n, logs.String())
	}
	if _, owed := m.unmarked.get(k); owed {
		t.Fatal("the mark is still owed after it was written")
	}
	// A new list makes the view whole.
	through("/api/v1/namespaces/a/pods", jsonBytes(t, podList(10, "", pod("a", "p1", "n", 9), pod("a", "p2", "n", 6), pod("a", "p3", "n", 7))))
	if got, li := view(); len(got) != 3 || li.ResourceVersion != 10 || !li.Complete {
		t.Fatalf("after a new list: %v %+v", got, li)
	}
}

// TestWatchListOnFullDiskOwesIncomplete: a watch-list whose initial state cannot be
// written because the disk is full (the spool or the commit is refused) leaves the
// view at its older list; the client holds the newer state and watches on from it,
// so the view is owed an incomplete mark (the mark itself cannot be written yet). No
// event is applied to it meanwhile, and once there is space the next event writes
// the mark first (issue 15 item 1, "disk full included").
func TestWatchListOnFullDiskOwesIncomplete(t *testing.T) {
	dir := testenv.SmallFS(t, 16<<20)
	st, err := store.Open(filepath.Join(dir, "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := New(st, nil, Options{})
	t.Cleanup(m.Close)
	through := func(url string, body []byte) store.ListKey {
		t.Helper()
		info, resp := response(t, kubeletUA, url, "application/json", body, nil)
		m.CacheResponse(info, resp)
		drain(t, m, resp, body)
		return cachekey.List(info)
	}
	k := through("/api/v1/namespaces/a/pods", jsonBytes(t, podList(5, "", pod("a", "p1", "n", 5))))

	filler := testenv.FillDisk(t, dir)
	bookmark := pod("", "", "", 20)
	bookmark.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	var evs []metav1.WatchEvent
	for i := range 200 { // a few MB of initial state: the spool must reach the disk
		p := pod("a", fmt.Sprintf("p%d", i), "n", 6+i)
		p.Annotations = map[string]string{"pad": strings.Repeat("x", 16<<10)}
		evs = append(evs, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, &p)}})
	}
	evs = append(evs, metav1.WatchEvent{Type: "BOOKMARK", Object: runtime.RawExtension{Raw: jsonBytes(t, &bookmark)}})
	through("/api/v1/namespaces/a/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", watchJSON(t, evs...))
	if reason, owed := m.unmarked.get(k); !owed || !strings.Contains(reason, "watch-list initial state not cached") {
		t.Fatalf("after a watch-list refused for want of space: owed=%v reason %q; want an owed incomplete mark naming the watch-list", owed, reason)
	}
	if got, li := listView(t, st, k); len(got) != 1 || li.ResourceVersion != 5 {
		t.Fatalf("view changed while the disk was full: %v %+v", got, li)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	through("/api/v1/namespaces/a/pods?watch=true&resourceVersion=20", watchJSON(t, metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p1", "n", 21)))}}))
	_, li := listView(t, st, k)
	if li.Complete || !strings.Contains(li.Reason, "watch-list initial state not cached") {
		t.Fatalf("after space is back: %+v, want incomplete, saying the watch-list's state was lost", li)
	}
	t.Logf("view after space is back: RV %d complete=%v reason %q", li.ResourceVersion, li.Complete, li.Reason)
}
