package multiplexer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// Memory and latency of the multiplexer with realistic EndpointSlices (~1.2 KB
// protobuf each) from a fake cloud, kept in a real cache file:
//
//	go test -run TestMultiplexerHeap -v ./internal/multiplexer/
//	go test -run '^$' -bench BenchmarkMultiplexerList -benchtime 20x ./internal/multiplexer/

// liveHeap is the live heap after two collections.
func liveHeap() (alloc, inuse uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

// waitStored waits until the multiplexer's view in the cache file is complete at
// resourceVersion rv or later.
func (tm *testMux) waitStored(rv uint64) {
	tm.t.Helper()
	k := store.ListKey{Component: Component, Resource: store.Resource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		li, err := tm.st.GetListInfo(context.Background(), k)
		if err == nil && li.Complete && li.ResourceVersion >= rv {
			return
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the cache file's view did not reach resourceVersion %d: %+v %v", rv, li, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetch is get for a benchmark: the body is read and discarded (a client's
// buffer growing to the list's size would be measured too).
func (tm *testMux) fetch(path, accept string) (int, int) {
	tm.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tm.srv.URL+path, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tm.t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		tm.t.Fatal(err)
	}
	return resp.StatusCode, int(n)
}

// maxHeapPerObject is what the multiplexer may keep on the heap per object of
// the resource (measured from the difference between two sizes, so fixed costs
// cancel out): the objects themselves live in the cache file.
const maxHeapPerObject = 64

// TestMultiplexerHeap: the multiplexer's live heap, online after its first list
// and after a restart with the cloud unreachable, grows with the number of
// objects by at most maxHeapPerObject bytes per object.
func TestMultiplexerHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 12,000 EndpointSlices")
	}
	sizes := []int{2000, 10000}
	online := map[int]int64{}
	restart := map[int]int64{}
	for _, n := range sizes {
		cloud := newFakeCloud(t)
		cloud.fill(n)
		base, _ := liveHeap()
		tm := newTestMux(t, cloud, "", nil)
		tm.waitReady()
		tm.waitStored(cloud.rv)
		// One list of each form, so what serving leaves behind counts too.
		for _, accept := range []string{"application/json", mediaProtobuf} {
			if code, _ := tm.get(slicePath, accept); code != http.StatusOK {
				t.Fatalf("list %s: %d", accept, code)
			}
		}
		a, in := liveHeap()
		online[n] = int64(a) - int64(base)
		t.Logf("%d slices online: live heap +%.2f MB (HeapAlloc), HeapInuse %.2f MB", n, float64(online[n])/1e6, float64(in)/1e6)

		// Restart with the cloud unreachable: served from the file.
		path := tm.path
		tm.stop()
		cloud.setDown(true)
		base, _ = liveHeap()
		tm2 := newTestMux(t, cloud, path, func(o *Options) {})
		tm2.online = false
		tm2.waitReady()
		if code, body := tm2.get(slicePath, mediaProtobuf); code != http.StatusOK {
			t.Fatalf("offline list after a restart: %d %s", code, body)
		}
		a, _ = liveHeap()
		restart[n] = int64(a) - int64(base)
		t.Logf("%d slices after a restart offline: live heap +%.2f MB", n, float64(restart[n])/1e6)
		tm2.stop()
	}
	lo, hi := sizes[0], sizes[1]
	for what, m := range map[string]map[int]int64{"online": online, "restarted offline": restart} {
		per := float64(m[hi]-m[lo]) / float64(hi-lo)
		t.Logf("%s: %.0f bytes of live heap per object", what, per)
		if per > maxHeapPerObject {
			t.Errorf("%s: the multiplexer's live heap grows by %.0f bytes per object (%d objects: %+d B, %d: %+d B); at most %d allowed: the objects belong in the cache file",
				what, per, lo, m[lo], hi, m[hi], maxHeapPerObject)
		}
	}
}

// BenchmarkMultiplexerList: a list of 10,000 EndpointSlices through the
// multiplexer, JSON and protobuf (ms/list: median).
func BenchmarkMultiplexerList(b *testing.B) {
	cloud := newFakeCloud(b)
	cloud.fill(10000)
	tm := newTestMux(b, cloud, "", nil)
	tm.waitReady()
	tm.waitStored(cloud.rv)
	for _, f := range []struct{ name, accept string }{{"json", "application/json"}, {"protobuf", mediaProtobuf}} {
		b.Run(fmt.Sprintf("slices=10000/%s", f.name), func(b *testing.B) {
			lat := make([]float64, 0, b.N)
			size := 0
			for i := 0; i < b.N; i++ {
				start := time.Now()
				code, n := tm.fetch(slicePath, f.accept)
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				if code != http.StatusOK {
					b.Fatalf("%d", code)
				}
				size = n
			}
			sort.Float64s(lat)
			b.ReportMetric(lat[len(lat)/2], "ms/list")
			b.ReportMetric(float64(size)/1e6, "MB/list")
		})
	}
}
