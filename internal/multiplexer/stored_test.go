package multiplexer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
)

// The objects live in the cache file: lists and initial events are read from it
// at its resourceVersion, which the window must continue from.

// persistGate holds the multiplexer's event writes to the cache file while
// closed (hold), so the file lags the window.
type persistGate struct {
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func installGate(t *testing.T) *persistGate {
	g := &persistGate{}
	hook := func() {
		g.mu.Lock()
		ch := g.gate
		g.mu.Unlock()
		if ch != nil {
			<-ch
		}
	}
	testHookPersist.Store(&hook)
	t.Cleanup(func() {
		g.release()
		testHookPersist.Store(nil)
	})
	return g
}

func (g *persistGate) hold() {
	g.mu.Lock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *persistGate) release() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

// jsonList is a list as a client reads it.
type jsonList struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []jsonObject `json:"items"`
}

type jsonObject struct {
	Metadata struct {
		Namespace       string            `json:"namespace"`
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Endpoints []struct {
		Addresses []string `json:"addresses"`
	} `json:"endpoints"`
}

func (o jsonObject) key() string { return o.Metadata.Namespace + "/" + o.Metadata.Name }
func (o jsonObject) rv() uint64 {
	rv, _ := strconv.ParseUint(o.Metadata.ResourceVersion, 10, 64)
	return rv
}

// list lists the slices (JSON) and returns the list, or the status code when the
// multiplexer did not serve it.
func (tm *testMux) list(query string) (jsonList, int) {
	tm.t.Helper()
	code, body := tm.get(slicePath+query, "application/json")
	var l jsonList
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			tm.t.Fatalf("list: %v: %.300s", err, body)
		}
	}
	return l, code
}

func (l jsonList) rv() uint64 {
	rv, _ := strconv.ParseUint(l.Metadata.ResourceVersion, 10, 64)
	return rv
}

func (l jsonList) state() map[string]uint64 {
	out := map[string]uint64{}
	for _, it := range l.Items {
		out[it.key()] = it.rv()
	}
	return out
}

// checkConsistent fails unless the list is exactly the cloud's state at the
// list's resourceVersion.
func checkConsistent(t *testing.T, cloud *fakeCloud, l jsonList, when string) {
	t.Helper()
	want := cloud.stateAt(l.rv())
	if got := l.state(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the list at resourceVersion %d is not the cloud's state then: %d items, want %d (%s)", when, l.rv(), len(got), len(want), StateDiff(got, want))
	}
}

// StateDiff describes how two states (namespace/name => what a test compares)
// differ ("" when equal), at most a few entries. Exported for the package's
// external tests.
func StateDiff[V comparable](got, want map[string]V) string {
	var out []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k)
		} else if g != v {
			out = append(out, fmt.Sprintf("%s: %q, want %q", k, fmt.Sprint(g), fmt.Sprint(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("... %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

// testWatch is one local watch (JSON), its events on a channel.
type testWatch struct {
	events chan watchLine
	cancel context.CancelFunc
}

type watchLine struct {
	Type   string     `json:"type"`
	Object jsonObject `json:"object"`
}

func (l watchLine) String() string {
	return fmt.Sprintf("%s %s %d", l.Type, l.Object.key(), l.Object.rv())
}

func (tm *testMux) watch(query string) *testWatch {
	tm.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tm.srv.URL+slicePath+"?watch=true&"+query, nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kube-proxy/v1.36.3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tm.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		tm.t.Fatalf("watch %s: %s", query, resp.Status)
	}
	w := &testWatch{events: make(chan watchLine, 1024), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(w.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l watchLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return
			}
			w.events <- l
		}
	}()
	tm.t.Cleanup(cancel)
	return w
}

// next returns the watch's next event that is not a bookmark.
func (w *testWatch) next(t *testing.T, timeout time.Duration) (watchLine, bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-w.events:
			if !ok {
				return watchLine{}, false
			}
			if l.Type == "BOOKMARK" {
				continue
			}
			return l, true
		case <-deadline:
			return watchLine{}, false
		}
	}
}

// expect reads n events and compares them with want ("TYPE ns/name rv").
func (w *testWatch) expect(t *testing.T, want []string, what string) {
	t.Helper()
	var got []string
	for range want {
		l, ok := w.next(t, 10*time.Second)
		if !ok {
			break
		}
		got = append(got, l.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got events %q, want %q", what, got, want)
	}
	if l, ok := w.next(t, 200*time.Millisecond); ok {
		t.Fatalf("%s: an event more than expected: %s", what, l)
	}
}

func (tm *testMux) cache() *watchCache {
	for _, c := range tm.m.caches {
		return c
	}
	return nil
}

func (tm *testMux) waitWindow(rv uint64) {
	tm.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tm.cache().currentRV() < rv {
		if time.Now().After(deadline) {
			tm.t.Fatalf("the window did not reach resourceVersion %d", rv)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestListWaitsForTheStore: a list is never served from a cache file older
// than the window (the file lags the window while events are committed behind
// the stream, and after a relist): it waits for the file, then is exactly the
// cloud's state at its resourceVersion, and a watch from that resourceVersion
// gets exactly the cloud's following events. A file that does not catch up in
// time sends the list the ordinary way.
func TestListWaitsForTheStore(t *testing.T) {
	cloud := newFakeCloud(t)
	cloud.fill(20)
	tm := newTestMux(t, cloud, "", func(o *Options) { o.WindowSize = 4 })
	gate := installGate(t) // after the multiplexer: released before it stops
	tm.waitReady()
	tm.waitStored(cloud.currentRV())
	l, code := tm.list("")
	if code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	checkConsistent(t, cloud, l, "first list")

	// The file held behind the window: 10 changes, the window keeps the last 4.
	gate.hold()
	for i := 0; i < 10; i++ {
		cloud.put(realisticSlice(i, map[string]string{"step": "1"}))
	}
	tm.waitWindow(cloud.currentRV())
	type result struct {
		l    jsonList
		code int
	}
	done := make(chan result, 1)
	go func() {
		l, code := tm.list("")
		done <- result{l, code}
	}()
	select {
	case r := <-done:
		t.Fatalf("a list was answered (%d, resourceVersion %s) while the cache file was behind the window", r.code, r.l.Metadata.ResourceVersion)
	case <-time.After(300 * time.Millisecond):
	}
	gate.release()
	r := <-done
	if r.code != http.StatusOK {
		t.Fatalf("list once the file caught up: %d", r.code)
	}
	checkConsistent(t, cloud, r.l, "list after the file caught up")
	if r.l.rv() < tm.cache().since {
		t.Fatalf("list at %d, older than the window (from %d)", r.l.rv(), tm.cache().since)
	}

	// A watch from the listed resourceVersion gets exactly what follows.
	listed := r.l.rv()
	w := tm.watch("resourceVersion=" + strconv.FormatUint(listed, 10))
	for i := 10; i < 15; i++ {
		cloud.put(realisticSlice(i, map[string]string{"step": "2"}))
	}
	cloud.del("ns-1", "svc-00001-abcde")
	w.expect(t, cloud.eventsAfter(listed), "watch from the listed resourceVersion")

	// A relist (the cloud expired the hub's resourceVersion), changes right
	// after it with the file held: lists wait, then are the new state.
	tm.waitStored(cloud.currentRV())
	before := tm.cache().epoch
	cloud.expire()
	for i := 0; i < 3; i++ {
		cloud.put(realisticSlice(20+i, nil))
	}
	deadline := time.Now().Add(10 * time.Second)
	for tm.cache().epoch == before && time.Now().Before(deadline) {
		l, code := tm.list("")
		if code == http.StatusOK {
			checkConsistent(t, cloud, l, "list during the relist")
		}
	}
	gate.hold()
	for i := 0; i < 6; i++ {
		cloud.put(realisticSlice(30+i, nil))
	}
	tm.waitWindow(cloud.currentRV())
	go func() {
		l, code := tm.list("")
		done <- result{l, code}
	}()
	time.Sleep(100 * time.Millisecond)
	gate.release()
	r = <-done
	if r.code != http.StatusOK {
		t.Fatalf("list after the relist: %d", r.code)
	}
	checkConsistent(t, cloud, r.l, "list after the relist")
	w = tm.watch("resourceVersion=" + r.l.Metadata.ResourceVersion)
	cloud.put(realisticSlice(40, nil))
	w.expect(t, cloud.eventsAfter(r.l.rv()), "watch from the list after the relist")

	// The file does not catch up in time: the list takes the ordinary path.
	defer storeWait.set(200 * time.Millisecond)()
	gate.hold()
	for i := 0; i < 6; i++ {
		cloud.put(realisticSlice(50+i, nil))
	}
	tm.waitWindow(cloud.currentRV())
	if _, code := tm.list(""); code != http.StatusTeapot {
		t.Fatalf("list with the file behind the window for longer than storeWait: %d, want the ordinary path", code)
	}
	gate.release()
}

// TestWatchListWaitsForTheStore: a watch-list's initial state is read from the
// file at a resourceVersion the window continues from: the initial events, the
// bookmark, then exactly the cloud's following events.
func TestWatchListWaitsForTheStore(t *testing.T) {
	cloud := newFakeCloud(t)
	cloud.fill(10)
	tm := newTestMux(t, cloud, "", func(o *Options) { o.WindowSize = 4 })
	gate := installGate(t)
	tm.waitReady()
	gate.hold()
	for i := 0; i < 8; i++ {
		cloud.put(realisticSlice(i, map[string]string{"step": "1"}))
	}
	tm.waitWindow(cloud.currentRV())
	go func() {
		time.Sleep(200 * time.Millisecond)
		gate.release()
	}()
	w := tm.watch("sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	initial := map[string]uint64{}
	var at uint64
	for at == 0 {
		select {
		case l, ok := <-w.events:
			if !ok {
				t.Fatal("watch-list ended")
			}
			switch l.Type {
			case "ADDED":
				initial[l.Object.key()] = l.Object.rv()
			case "BOOKMARK":
				if l.Object.Metadata.Annotations["k8s.io/initial-events-end"] == "true" {
					at = l.Object.rv()
				}
			default:
				t.Fatalf("before the initial-events-end bookmark: %s", l)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no initial-events-end bookmark")
		}
	}
	if want := cloud.stateAt(at); !reflect.DeepEqual(initial, want) {
		t.Fatalf("initial events at %d: %s", at, StateDiff(initial, want))
	}
	cloud.put(realisticSlice(3, nil))
	cloud.del("ns-4", "svc-00004-abcde")
	w.expect(t, cloud.eventsAfter(at), "watch-list after its initial events")
}

// TestSelectorTransitionsThroughTheStore: kube-proxy's label selector on a watch:
// an object that gets the headless label is sent as DELETED, one that loses it
// as ADDED, whether its previous state is still waiting for the cache file or
// already in it.
func TestSelectorTransitionsThroughTheStore(t *testing.T) {
	cloud := newFakeCloud(t)
	cloud.fill(5)
	tm := newTestMux(t, cloud, "", nil)
	gate := installGate(t)
	tm.waitReady()
	sel := "labelSelector=" + strings.ReplaceAll("!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name", "!", "%21")
	l, code := tm.list("?" + sel)
	if code != http.StatusOK || len(l.Items) != 5 {
		t.Fatalf("selected list: %d, %d items", code, len(l.Items))
	}
	w := tm.watch(sel + "&resourceVersion=" + l.Metadata.ResourceVersion)
	headless := map[string]string{"service.kubernetes.io/headless": ""}
	for _, held := range []bool{false, true} {
		if held {
			gate.hold()
		}
		for _, i := range []int{1, 2} {
			if !held {
				tm.waitStored(cloud.currentRV()) // the previous state is read from the file
			}
			rv := cloud.put(realisticSlice(i, headless))
			key := fmt.Sprintf("ns-%d/svc-%05d-abcde", i, i)
			w.expect(t, []string{fmt.Sprintf("DELETED %s %d", key, rv)}, fmt.Sprintf("headless label added (file held: %v)", held))
			if !held {
				tm.waitStored(cloud.currentRV())
			}
			rv = cloud.put(realisticSlice(i, nil))
			w.expect(t, []string{fmt.Sprintf("ADDED %s %d", key, rv)}, fmt.Sprintf("headless label removed (file held: %v)", held))
			if !held {
				tm.waitStored(cloud.currentRV())
			}
			rv = cloud.put(realisticSlice(i, map[string]string{"other": "x"}))
			w.expect(t, []string{fmt.Sprintf("MODIFIED %s %d", key, rv)}, fmt.Sprintf("another label (file held: %v)", held))
		}
		gate.release()
	}
	// A deleted object that was not selected is not sent.
	tm.waitStored(cloud.currentRV())
	cloud.put(realisticSlice(4, headless))
	w.expect(t, []string{fmt.Sprintf("DELETED ns-4/svc-00004-abcde %d", cloud.currentRV())}, "headless label added")
	tm.waitStored(cloud.currentRV())
	cloud.del("ns-4", "svc-00004-abcde")
	w.expect(t, nil, "an unselected object deleted")
}

// TestLocalChangeReachesListAndWatch: an object the offline path rewrote in the
// multiplexer's view (the EndpointSlice repair) reaches the open watches as
// MODIFIED and the lists that follow.
func TestLocalChangeReachesListAndWatch(t *testing.T) {
	cloud := newFakeCloud(t)
	cloud.fill(3)
	tm := newTestMux(t, cloud, "", nil)
	tm.waitReady()
	tm.waitStored(cloud.currentRV())
	l, _ := tm.list("")
	w := tm.watch("resourceVersion=" + l.Metadata.ResourceVersion)
	cloud.setDown(true)
	tm.online = false

	ctx := context.Background()
	key := store.ObjectKey{Component: Component, Resource: tm.cache().key.Resource, Namespace: "ns-2", Name: "svc-00002-abcde"}
	cur, err := tm.st.GetObject(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := kubescheme.Protobuf.Decode(cur.Data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := obj.(*discoveryv1.EndpointSlice)
	es.Endpoints[0].Addresses = []string{"10.99.0.1"}
	data, err := kubescheme.EncodeProto(es)
	if err != nil {
		t.Fatal(err)
	}
	o := store.Object{Namespace: key.Namespace, Name: key.Name, ResourceVersion: cur.ResourceVersion, Encoding: store.EncodingProtobuf, Data: data}
	if err := tm.st.UpdateObject(ctx, key, cur.ResourceVersion, o); err != nil {
		t.Fatal(err)
	}
	tm.m.LocalChange(key, o)
	ev, ok := w.next(t, 5*time.Second)
	if !ok || ev.Type != "MODIFIED" || ev.Object.key() != "ns-2/svc-00002-abcde" || ev.Object.Endpoints[0].Addresses[0] != "10.99.0.1" {
		t.Fatalf("watch after the local change: %v %s, want MODIFIED with the new address", ok, ev)
	}
	l, code := tm.list("")
	if code != http.StatusOK {
		t.Fatalf("list after the local change: %d", code)
	}
	found := false
	for _, it := range l.Items {
		if it.key() == "ns-2/svc-00002-abcde" {
			found = it.Endpoints[0].Addresses[0] == "10.99.0.1"
		}
	}
	if !found {
		t.Fatal("the list after the local change does not have it")
	}
}

// TestRestartServesFromTheFile: a hub restarted with the cloud unreachable
// serves the state from the cache file (list, watch-list), at the file's
// resourceVersion, without reading the objects into memory (TestMultiplexerHeap
// measures that).
func TestRestartServesFromTheFile(t *testing.T) {
	cloud := newFakeCloud(t)
	cloud.fill(30)
	tm := newTestMux(t, cloud, "", nil)
	tm.waitReady()
	for i := 0; i < 5; i++ {
		cloud.put(realisticSlice(i, map[string]string{"step": "1"}))
	}
	cloud.del("ns-7", "svc-00007-abcde")
	tm.waitStored(cloud.currentRV())
	path := tm.path
	tm.stop()
	cloud.setDown(true)

	tm = newTestMux(t, cloud, path, nil)
	tm.online = false
	tm.waitReady()
	if n := len(tm.cache().pending); n != 0 {
		t.Fatalf("%d objects in memory after the start", n)
	}
	l, code := tm.list("")
	if code != http.StatusOK || l.rv() != cloud.currentRV() {
		t.Fatalf("list after a restart offline: %d at %d, want 200 at %d", code, l.rv(), cloud.currentRV())
	}
	checkConsistent(t, cloud, l, "list after a restart")
	code, body := tm.get(slicePath, mediaProtobuf)
	if code != http.StatusOK || len(body) < 30*1000 {
		t.Fatalf("protobuf list after a restart offline: %d, %d bytes", code, len(body))
	}
	w := tm.watch("sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	n := 0
	for {
		l, ok := <-w.events
		if !ok {
			t.Fatal("watch-list ended")
		}
		if l.Type == "BOOKMARK" {
			break
		}
		n++
	}
	if n != len(l.Items) {
		t.Fatalf("watch-list after a restart: %d initial events, want %d", n, len(l.Items))
	}
}

// TestFullDiskNotServed: when the cache file cannot take the multiplexer's
// writes (a full filesystem), lists are not served from it: online they take the
// ordinary path, offline they get the 503 of an incomplete view; once there is
// space again the reflector relists and lists are served from the file again.
func TestFullDiskNotServed(t *testing.T) {
	dir := testenv.SmallFS(t, 8<<20)
	defer storeRetryInterval.set(300 * time.Millisecond)()
	cloud := newFakeCloud(t)
	cloud.fill(100)
	tm := newTestMux(t, cloud, filepath.Join(dir, "cache.db"), nil)
	tm.waitReady()
	tm.waitStored(cloud.currentRV())
	filler := testenv.FillDisk(t, dir)
	var failed atomic.Bool
	for i := 0; i < 20000 && !failed.Load(); i++ {
		cloud.put(realisticSlice(i%3000, map[string]string{"step": strconv.Itoa(i)}))
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond)
			c := tm.cache()
			c.mu.RLock()
			failed.Store(!c.storeOK)
			c.mu.RUnlock()
		}
	}
	if !failed.Load() {
		t.Fatal("the cache file never refused a write on a full filesystem")
	}
	if _, code := tm.list(""); code != http.StatusTeapot {
		t.Fatalf("online list from a file that failed: %d, want the ordinary path", code)
	}
	tm.online = false
	code, body := tm.get(slicePath, "application/json")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "incomplete") {
		t.Fatalf("offline list from a file that failed: %d %.300s, want 503 saying the list is incomplete", code, body)
	}
	tm.online = true
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, code := tm.list("")
		if code == http.StatusOK {
			checkConsistent(t, cloud, l, "list once there is space again")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lists not served from the file again once there is space: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
