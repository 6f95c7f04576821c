package multiplexer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// fakeCloud is a minimal apiserver for one resource, EndpointSlices: protobuf
// lists and watches, a history of events for watches that resume, 410 on demand.
// It answers what the multiplexer's reflector asks and nothing else.
type fakeCloud struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	rv       uint64
	objs     map[string][]byte // namespace/name => protobuf envelope
	order    []string          // keys in list order (sorted on list)
	history  []fakeEvent
	all      []fakeEvent // every change, for stateAt
	watches  map[chan fakeEvent]struct{}
	expireTo uint64 // a watch from a resourceVersion below it gets 410
	down     bool   // answers 503 to everything
	lists    int
}

type fakeEvent struct {
	typ string
	rv  uint64
	key string
	doc []byte
}

const slicePath = "/apis/discovery.k8s.io/v1/endpointslices"

func newFakeCloud(t testing.TB) *fakeCloud {
	c := &fakeCloud{t: t, rv: 100, objs: map[string][]byte{}, watches: map[chan fakeEvent]struct{}{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.close)
	return c
}

func (c *fakeCloud) close() {
	c.mu.Lock()
	for ch := range c.watches {
		close(ch)
		delete(c.watches, ch)
	}
	c.mu.Unlock()
	c.srv.CloseClientConnections()
	c.srv.Close()
}

func (c *fakeCloud) url() *url.URL {
	u, _ := url.Parse(c.srv.URL)
	return u
}

// realisticSlice is an EndpointSlice of about 1.2 KB in protobuf: 6 endpoints
// with node names, zones and pod references, one port, the labels the
// endpointslice controller sets.
func realisticSlice(i int, labels map[string]string) *discoveryv1.EndpointSlice {
	ready, port, proto, pname := true, int32(8080), corev1.ProtocolTCP, "http"
	var eps []discoveryv1.Endpoint
	for j := 0; j < 6; j++ {
		n, zone, host := fmt.Sprintf("edge-node-%02d", j), fmt.Sprintf("zone-%d", j%3), fmt.Sprintf("app-%05d-replica-%d.headless", i, j)
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", j+1, i/250%250, i%250+1)}, NodeName: &n, Zone: &zone, Hostname: &host,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: fmt.Sprintf("ns-%d", i%20), Name: fmt.Sprintf("app-%05d-7d9f8c6b5-%d", i, j), UID: types.UID("5f2c1a7e-0b4d-4c8e-9a3f-6d2e1b7c8a9" + strconv.Itoa(j))}})
	}
	ls := map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%05d", i), discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}
	for k, v := range labels {
		ls[k] = v
	}
	return &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%20), Name: fmt.Sprintf("svc-%05d-abcde", i), Labels: ls, UID: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		Ports: []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
	}
}

// put creates or updates es at the next resourceVersion and sends it to the
// open watches; it returns that resourceVersion.
func (c *fakeCloud) put(es *discoveryv1.EndpointSlice) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rv++
	es = es.DeepCopy()
	es.ResourceVersion = strconv.FormatUint(c.rv, 10)
	es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
	doc, err := kubescheme.EncodeProto(es)
	if err != nil {
		c.t.Fatal(err)
	}
	k := es.Namespace + "/" + es.Name
	typ := "MODIFIED"
	if _, ok := c.objs[k]; !ok {
		typ = "ADDED"
		c.order = append(c.order, k)
	}
	c.objs[k] = doc
	c.emit(fakeEvent{typ: typ, rv: c.rv, key: k, doc: doc})
	return c.rv
}

// del deletes namespace/name at the next resourceVersion.
func (c *fakeCloud) del(namespace, name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := namespace + "/" + name
	old, ok := c.objs[k]
	if !ok {
		c.t.Fatalf("fake cloud: delete %s: no such object", k)
	}
	c.rv++
	obj, _, err := kubescheme.Protobuf.Decode(old, nil, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	es := obj.(*discoveryv1.EndpointSlice)
	es.ResourceVersion = strconv.FormatUint(c.rv, 10)
	es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
	doc, _ := kubescheme.EncodeProto(es)
	delete(c.objs, k)
	for i, o := range c.order {
		if o == k {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.emit(fakeEvent{typ: "DELETED", rv: c.rv, key: k, doc: doc})
	return c.rv
}

// fill adds n realistic slices without events (the state before the hub starts).
func (c *fakeCloud) fill(n int) {
	for i := 0; i < n; i++ {
		c.put(realisticSlice(i, nil))
	}
	c.mu.Lock()
	c.history = nil
	c.expireTo = c.rv
	c.mu.Unlock()
}

func (c *fakeCloud) emit(ev fakeEvent) {
	c.history = append(c.history, ev)
	c.all = append(c.all, fakeEvent{typ: ev.typ, rv: ev.rv, key: ev.key})
	for ch := range c.watches {
		select {
		case ch <- ev:
		default:
			close(ch) // too slow: the watch ends
			delete(c.watches, ch)
		}
	}
}

// stateAt is the cloud's state at resourceVersion rv: namespace/name =>
// resourceVersion.
func (c *fakeCloud) stateAt(rv uint64) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for _, ev := range c.all {
		if ev.rv > rv {
			break
		}
		if ev.typ == "DELETED" {
			delete(out, ev.key)
		} else {
			out[ev.key] = ev.rv
		}
	}
	return out
}

// eventsAfter are the cloud's changes after rv: "TYPE namespace/name rv".
func (c *fakeCloud) eventsAfter(rv uint64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.all {
		if ev.rv > rv {
			out = append(out, fmt.Sprintf("%s %s %d", ev.typ, ev.key, ev.rv))
		}
	}
	return out
}

func (c *fakeCloud) currentRV() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rv
}

// expire makes every open watch end with 410 and every watch from before now
// get 410: the reflector relists.
func (c *fakeCloud) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireTo = c.rv + 1
	c.history = nil
	for ch := range c.watches {
		ch <- fakeEvent{typ: "ERROR"}
		close(ch)
		delete(c.watches, ch)
	}
}

func (c *fakeCloud) setDown(down bool) {
	c.mu.Lock()
	c.down = down
	for ch := range c.watches {
		close(ch)
		delete(c.watches, ch)
	}
	c.mu.Unlock()
	if down {
		c.srv.CloseClientConnections()
	}
}

func (c *fakeCloud) listCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists
}

func (c *fakeCloud) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.down || r.URL.Path != slicePath {
		c.mu.Unlock()
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") != "true" {
		c.lists++
		sort.Strings(c.order)
		body := wire.ProtoListMeta(c.rv)
		for _, k := range c.order {
			raw, err := wire.ProtoRaw(c.objs[k])
			if err != nil {
				c.mu.Unlock()
				c.t.Error(err)
				return
			}
			body = wire.AppendProtoItem(body, raw)
		}
		c.mu.Unlock()
		hdr := wire.ProtoListHeader("discovery.k8s.io/v1", "EndpointSliceList", len(body))
		w.Header().Set("Content-Type", mediaProtobuf)
		_, _ = w.Write(hdr)
		_, _ = w.Write(body)
		return
	}
	from, _ := strconv.ParseUint(q.Get("resourceVersion"), 10, 64)
	if from < c.expireTo-1 && from != c.rv {
		c.mu.Unlock()
		w.WriteHeader(http.StatusGone)
		return
	}
	ch := make(chan fakeEvent, 4096)
	for _, ev := range c.history {
		if ev.rv > from {
			ch <- ev
		}
	}
	c.watches[ch] = struct{}{}
	c.mu.Unlock()
	w.Header().Set("Content-Type", mediaProtoWatch)
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	defer func() {
		c.mu.Lock()
		if _, ok := c.watches[ch]; ok {
			delete(c.watches, ch)
			close(ch)
		}
		c.mu.Unlock()
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			doc := ev.doc
			if ev.typ == "ERROR" {
				st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired}
				doc, _ = kubescheme.EncodeProto(&st)
			}
			fr, err := watchFrame(formatProtobuf, ev.typ, doc)
			if err != nil {
				c.t.Error(err)
				return
			}
			if _, err := w.Write(fr); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
		}
	}
}

// testMux is a multiplexer of EndpointSlices in front of a fakeCloud, with a
// real cache file, served over HTTP as the proxy would.
type testMux struct {
	t     testing.TB
	cloud *fakeCloud
	st    *store.Store
	path  string
	m     *Multiplexer
	srv   *httptest.Server
	// online is what CloudHealthy reports.
	online bool
}

func openTestStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{NoSync: true, DropPagesIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newTestMux(t testing.TB, cloud *fakeCloud, path string, tweak func(*Options)) *testMux {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "cache.db")
	}
	tm := &testMux{t: t, cloud: cloud, path: path, online: true}
	tm.st = openTestStore(t, path)
	opts := Options{
		Resources:     []string{"discovery.k8s.io/v1/endpointslices"},
		Store:         tm.st,
		Backend:       cloud.url,
		Transport:     http.DefaultTransport,
		CloudHealthy:  func() bool { return tm.online },
		RetryInterval: 50 * time.Millisecond,
		Log:           discardLog(),
	}
	if tweak != nil {
		tweak(&opts)
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tm.m = m
	parser := requestinfo.New()
	tm.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, err := parser.Parse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !tm.m.Serve(w, r, info) {
			w.Header().Set("X-Not-Multiplexed", "1")
			http.Error(w, "not multiplexed", http.StatusTeapot)
		}
	}))
	m.Start(context.Background())
	t.Cleanup(tm.stop)
	return tm
}

func (tm *testMux) stop() {
	if tm.srv != nil {
		tm.srv.CloseClientConnections()
		tm.srv.Close()
		tm.srv = nil
	}
	if tm.m != nil {
		tm.m.Stop()
		tm.m = nil
	}
	if tm.st != nil {
		_ = tm.st.Close()
		tm.st = nil
	}
}

func (tm *testMux) waitReady() {
	tm.t.Helper()
	if !tm.m.WaitReady(context.Background(), 30*time.Second) {
		tm.t.Fatal("multiplexer not ready after 30s")
	}
}

// get sends one request to the multiplexer and returns the status and body.
func (tm *testMux) get(path, accept string) (int, []byte) {
	tm.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tm.srv.URL+path, nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "kube-proxy/v1.36.3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tm.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tm.t.Fatal(err)
	}
	return resp.StatusCode, b
}
