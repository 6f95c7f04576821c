package cachemgr

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/store"
)

// podEventsJSON are podEvents in JSON.
func podEventsJSON(t testing.TB, n int) []metav1.WatchEvent {
	var evs []metav1.WatchEvent
	for i := range n {
		p := pod("ns", fmt.Sprintf("p-%d", i), "n1", 101+i)
		evs = append(evs, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, &p)}})
	}
	return evs
}

// podEvents are n ADDED events of pods p-0.. on node n1, resourceVersions 101...
func podEvents(t testing.TB, n int) []metav1.WatchEvent {
	var evs []metav1.WatchEvent
	for i := range n {
		p := pod("ns", fmt.Sprintf("p-%d", i), "n1", 101+i)
		evs = append(evs, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: protoBytes(t, &p)}})
	}
	return evs
}

// identicalWatches runs one protobuf watch stream of kubelet's pods in ns per
// body, all open at once, as the proxy hands them over: each body is written
// through a pipe (the client reads it) and the streams end together once every
// event has reached the store (applied, refused as stale, or shared).
func identicalWatches(t testing.TB, m *Manager, bodies [][]byte, events int64) {
	identicalWatchesPaced(t, m, bodies, nil, events)
}

// identicalWatchesPaced is identicalWatches whose streams marked slow deliver their
// body in ten pieces, a few milliseconds apart (a lagging stream).
func identicalWatchesPaced(t testing.TB, m *Manager, bodies [][]byte, slow []bool, events int64) {
	t.Helper()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i, body := range bodies {
		paced := i < len(slow) && slow[i]
		ctype := "application/vnd.kubernetes.protobuf;stream=watch"
		if len(body) > 0 && body[0] == '{' {
			ctype = "application/json"
		}
		info, resp := response(t, kubeletUA, "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=100", ctype, nil, nil)
		pr, pw := io.Pipe()
		resp.Body = pr
		m.CacheResponse(info, resp)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if paced {
				for len(body) > 0 {
					n := min(len(body), len(body)/10+1)
					_, _ = pw.Write(body[:n])
					body = body[n:]
					time.Sleep(3 * time.Millisecond)
				}
			} else {
				_, _ = pw.Write(body)
			}
			<-release
			pw.Close()
		}()
		go func(b io.ReadCloser) {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, b)
			b.Close()
		}(resp.Body)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		s := m.Stats()
		if s.Events+s.StaleEvents+s.SharedEvents >= events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: not every event reached the store within a minute", s)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	m.Wait()
}

// TestIdenticalWatchesWriteOnce: four identical watches of one view (one cut
// early, one lagging, one in JSON) hand each event to the store once, in order,
// and the view has every event.
func TestIdenticalWatchesWriteOnce(t *testing.T) {
	m, st := newMgr(t, Options{})
	evs, jevs := podEvents(t, 100), podEventsJSON(t, 100)
	bodies := [][]byte{watchProto(t, evs[:60]...), watchProto(t, evs...), watchProto(t, evs...), watchJSON(t, jevs...)}
	identicalWatchesPaced(t, m, bodies, []bool{false, false, true, true}, 360)
	s := m.Stats()
	t.Logf("events handed to the store: %d applied + %d refused as stale; %d not written (shared)", s.Events, s.StaleEvents, s.SharedEvents)
	if got := s.Events + s.StaleEvents; got != 100 {
		t.Errorf("the store was handed %d events for 100 distinct ones (want each once)", got)
	}
	k := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Namespace: "ns"}
	got, _ := listView(t, st, k)
	for i := range 100 {
		if rv := got[fmt.Sprintf("ns/p-%d", i)]; rv != uint64(101+i) {
			t.Fatalf("view has p-%d at resourceVersion %d, want %d (%d objects)", i, rv, 101+i, len(got))
		}
	}
}

// BenchmarkIdenticalWatches: 8 identical watch streams of one view, 2,000 events
// each, into a store that fsyncs as in production. Metrics: store-events/op (events
// handed to the store), ns/op (until all are in the store).
func BenchmarkIdenticalWatches(b *testing.B) {
	const watchers, n = 8, 2000
	evs := podEvents(b, n)
	body := watchProto(b, evs...)
	bodies := make([][]byte, watchers)
	for i := range bodies {
		bodies[i] = body
	}
	var handed int64
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := store.Open(filepath.Join(b.TempDir(), "cache.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		m := New(st, nil, Options{})
		b.StartTimer()
		identicalWatches(b, m, bodies, watchers*n)
		b.StopTimer()
		s := m.Stats()
		handed += s.Events + s.StaleEvents
		m.Close()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(handed)/float64(b.N), "store-events/op")
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user+system CPU time: on a shared machine it tells
// the work done apart from the wait for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
