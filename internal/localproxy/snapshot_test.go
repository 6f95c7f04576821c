package localproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/store"
)

// TestListOneSnapshot: a write between choosing the view and reading it (a relist
// landing as the offline list starts) must not give a list whose resourceVersion is
// one state's and whose items are another's. Both encodings, and the watch-list.
func TestListOneSnapshot(t *testing.T) {
	for _, proto := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "protobuf"}[proto], func(t *testing.T) {
			st := openStore(t)
			k := fillPods(t, st, "kubelet", 10, store.EncodingJSON) // RV 1010: pod-00000..9
			var once sync.Once
			testHookSnapshot = func() {
				once.Do(func() {
					objs := []store.Object{stored(t, testPod("ns0", "new-0", testNode, 4000, nil), store.EncodingJSON),
						stored(t, testPod("ns0", "new-1", testNode, 4001, nil), store.EncodingJSON)}
					if err := st.ReplaceList(context.Background(), k, 5000, objs); err != nil {
						t.Error(err)
					}
				})
			}
			t.Cleanup(func() { testHookSnapshot = nil })
			s := newServer(t, st, Options{})
			l, err := s.client(t, "kubelet", proto).CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range l.Items {
				names = append(names, p.Name)
			}
			if got := fmt.Sprintf("%s %v", l.ResourceVersion, names); got != "5000 [new-0 new-1]" {
				t.Fatalf("list = resourceVersion %s, want one snapshot: 5000 [new-0 new-1]", got)
			}
		})
	}
}

// TestSlowListClientHoldsNoTransaction: a client that stops reading an offline list
// must not keep the cache's read transaction open (bbolt could not remap a grown
// file meanwhile: every writer would wait, up to the minute's write deadline).
func TestSlowListClientHoldsNoTransaction(t *testing.T) {
	st := openStore(t)
	bigPods(t, st, 400, 64<<10, store.EncodingJSON) // 27 MB as JSON: more than the sockets buffer
	reached := make(chan struct{}, 1)
	testHookSnapshot = func() { reached <- struct{}{} }
	t.Cleanup(func() { testHookSnapshot = nil })
	s := newServer(t, st, Options{})

	c, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/pods?fieldSelector=spec.nodeName%%3D%s HTTP/1.1\r\nHost: x\r\nUser-Agent: kubelet/v1.36.3\r\nAccept: application/json\r\n\r\n", testNode)
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the list request never reached the cache")
	}
	// The client reads nothing. Within a few seconds the read transaction must end.
	deadline := time.Now().Add(5 * time.Second)
	open := 0
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if open = st.DB().Stats().OpenTxN; open == 0 {
			break
		}
	}
	if open != 0 {
		t.Fatalf("a client that stopped reading holds %d read transaction(s) of the cache open", open)
	}
	// Then it reads: the whole list arrives, one snapshot.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 400 || l.ResourceVersion != "1400" {
		t.Fatalf("list after the stall: %d items at %q, want 400 at 1400", len(l.Items), l.ResourceVersion)
	}
}

// bigPods stores a view of n pods whose first one carries a 900 KiB annotation
// (a ConfigMap-sized object) and the others `each` bytes of annotation.
func bigPods(t *testing.T, st *store.Store, n, each int, enc store.Encoding) {
	t.Helper()
	k := listKey("kubelet", "/api/v1/pods", "", "spec.nodeName="+testNode)
	objs := make([]store.Object, 0, n)
	for i := 0; i < n; i++ {
		p := testPod("ns0", fmt.Sprintf("pod-%05d", i), testNode, 100+i, nil)
		size := each
		if i == 0 {
			size = 900 << 10
		}
		p.Annotations = map[string]string{"pad": strings.Repeat("x", size)}
		objs = append(objs, stored(t, p, enc))
	}
	if err := st.ReplaceList(context.Background(), k, uint64(1000+n), objs); err != nil {
		t.Fatal(err)
	}
}

// heapDuring runs fn and returns the bytes it allocated in total and the peak of
// the live heap above what was live before (sampled every millisecond, with the
// collector made eager so the peak is live data rather than garbage not yet swept).
func heapDuring(fn func()) (total, peak uint64) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base, alloc0 := m.HeapAlloc, m.TotalAlloc
	var top atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > top.Load() {
				top.Store(m.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	runtime.ReadMemStats(&m)
	return m.TotalAlloc - alloc0, top.Load()
}

// TestOfflineListMemoryBounded: an offline protobuf list, and a watch-list's initial
// state, are streamed: memory does not grow with the list. The first item is 900
// KiB; before, the protobuf list sized its buffer as first item x count (here 200 x
// 900 KiB = 190 MB; 2,000 ConfigMaps asked for 2 GB) and the watch-list copied
// every event before the first byte went out.
func TestOfflineListMemoryBounded(t *testing.T) {
	const limit = 16 << 20
	for _, tc := range []struct {
		name   string
		enc    store.Encoding
		n      int
		each   int
		accept string
		path   string
	}{
		{"protobuf list, stored protobuf", store.EncodingProtobuf, 200, 2 << 10, "application/vnd.kubernetes.protobuf", "/api/v1/pods"},
		{"protobuf list, stored JSON", store.EncodingJSON, 200, 2 << 10, "application/vnd.kubernetes.protobuf", "/api/v1/pods"},
		{"JSON list, stored JSON", store.EncodingJSON, 200, 2 << 10, "application/json", "/api/v1/pods"},
		{"watch-list JSON, 60 x 900 KiB", store.EncodingJSON, 60, 900 << 10, "application/json", "/api/v1/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"},
		{"watch-list protobuf, 60 x 900 KiB", store.EncodingProtobuf, 60, 900 << 10, "application/vnd.kubernetes.protobuf", "/api/v1/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			bigPods(t, st, tc.n, tc.each, tc.enc)
			s := newServer(t, st, Options{})
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			url := s.URL + tc.path + sep + "fieldSelector=spec.nodeName%3D" + testNode
			var got int64
			var status int
			total, peak := heapDuring(func() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("User-Agent", "kubelet/v1.36.3")
				req.Header.Set("Accept", tc.accept)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				status = resp.StatusCode
				got, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
			t.Logf("%d bytes answered; heap: peak %.1f MiB above idle, %.1f MiB allocated in all", got, float64(peak)/(1<<20), float64(total)/(1<<20))
			if status != http.StatusOK || got < int64(tc.n)*int64(tc.each) {
				t.Fatalf("status %d, %d bytes: not the whole list", status, got)
			}
			if peak > limit {
				t.Fatalf("the live heap grew by %.1f MiB serving the list (limit %d MiB): the answer is held in memory", float64(peak)/(1<<20), limit>>20)
			}
		})
	}
}
