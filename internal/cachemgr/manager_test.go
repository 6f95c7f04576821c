package cachemgr

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newMgr(t testing.TB, opts Options) (*Manager, *store.Store) {
	st := openStore(t)
	m := New(st, nil, opts)
	t.Cleanup(m.Close)
	return m, st
}

// request builds the Info and an *http.Response as the proxy would hand them over.
func response(t testing.TB, ua, rawURL, ctype string, body []byte, hdr map[string]string) (*requestinfo.Info, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://hub"+rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	info, err := requestinfo.New().Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	// ContentLength as net/http's client sets it for a body of known size (a GET
	// and a write's response take recordBody's path; lists and watches the tee's)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(bytes.NewReader(body)), Request: req,
		ContentLength: int64(len(body))}
	for k, v := range hdr {
		resp.Header.Set(k, v)
	}
	return info, resp
}

// drain reads the body as the client would and checks it is byte for byte the
// upstream body.
func drain(t testing.TB, m *Manager, resp *http.Response, want []byte) {
	t.Helper()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(got, want) {
		t.Fatalf("client received %d bytes that differ from the %d upstream bytes", len(got), len(want))
	}
	m.Wait()
}

func pod(ns, name, node string, rv int) corev1.Pod {
	return corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: fmt.Sprint(rv), UID: "u-" + "name"},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
}

func podList(rv int, cont string, pods ...corev1.Pod) *corev1.PodList {
	l := &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: metav1.ListMeta{ResourceVersion: fmt.Sprint(rv), Continue: cont}}
	for _, p := range pods {
		p.TypeMeta = metav1.TypeMeta{}
		l.Items = append(l.Items, p)
	}
	return l
}

func jsonBytes(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func protoBytes(t testing.TB, obj runtime.Object) []byte {
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func listView(t testing.TB, st *store.Store, k store.ListKey) (map[string]uint64, store.ListInfo) {
	t.Helper()
	got := map[string]uint64{}
	info, err := st.List(context.Background(), k, func(o store.Object) error {
		var it wire.Item
		var err error
		if o.Encoding == store.EncodingProtobuf {
			err = wire.ParseProtoEnvelope(o.Data, true, &it)
		} else {
			err = wire.ParseJSONItem(o.Data, "", "", true, &it)
		}
		if err != nil {
			return err
		}
		if it.Name != o.Name || it.RV != o.ResourceVersion {
			return fmt.Errorf("bytes say %s@%d, key %s@%d", it.Name, it.RV, o.Name, o.ResourceVersion)
		}
		got[o.Namespace+"/"+o.Name] = o.ResourceVersion
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", k, err)
	}
	return got, info
}

const kubeletUA = "kubelet/v1.36.3 (linux/amd64) kubernetes/x"

func TestListJSONAndProtobuf(t *testing.T) {
	list := podList(100, "", pod("a", "p1", "n1", 10), pod("a", "p2", "n1", 11), pod("b", "unbound", "", 12))
	for _, c := range []struct {
		ctype string
		body  []byte
	}{
		{"application/json", jsonBytes(t, list)},
		{"application/vnd.kubernetes.protobuf", protoBytes(t, list)},
	} {
		t.Run(c.ctype, func(t *testing.T) {
			m, st := newMgr(t, Options{})
			info, resp := response(t, kubeletUA, "/api/v1/pods?resourceVersion=0", c.ctype, c.body, nil)
			m.CacheResponse(info, resp)
			drain(t, m, resp, c.body)
			got, li := listView(t, st, cachekey.List(info))
			want := map[string]uint64{"a/p1": 10, "a/p2": 11} // the pod without a node is not cached
			if fmt.Sprint(got) != fmt.Sprint(want) || li.ResourceVersion != 100 || !li.Complete {
				t.Fatalf("view = %v %+v, want %v at RV 100", got, li, want)
			}
			// A cached item is a full document: it decodes with client-go's scheme as a Pod.
			o, err := st.GetObject(context.Background(), store.ObjectKey{Component: "kubelet", Resource: cachekey.Resource(info), Namespace: "a", Name: "p1"})
			if err != nil {
				t.Fatal(err)
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(o.Data, nil, nil)
			if err != nil {
				t.Fatalf("cached item does not decode: %v", err)
			}
			if p, ok := obj.(*corev1.Pod); !ok || p.Name != "p1" || p.Spec.NodeName != "n1" {
				t.Fatalf("cached item decodes to %#v", obj)
			}
		})
	}
}

func TestListGzipPassesUnchanged(t *testing.T) {
	var pods []corev1.Pod
	for i := range 500 {
		pods = append(pods, pod("ns", fmt.Sprintf("p%03d", i), "n1", 10+i))
	}
	plain := jsonBytes(t, podList(1000, "", pods...))
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	m, st := newMgr(t, Options{})
	info, resp := response(t, kubeletUA, "/api/v1/namespaces/ns/pods", "application/json", zb.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	m.CacheResponse(info, resp)
	drain(t, m, resp, zb.Bytes())
	got, li := listView(t, st, cachekey.List(info))
	if len(got) != 500 || li.ResourceVersion != 1000 {
		t.Fatalf("cached %d objects at RV %d, want 500 at 1000", len(got), li.ResourceVersion)
	}
}

func TestOverflowMarksIncompleteAndClientUnaffected(t *testing.T) {
	m, st := newMgr(t, Options{QueueBytes: 64})
	info, resp := response(t, kubeletUA, "/api/v1/pods", "application/json", jsonBytes(t, podList(5, "", pod("a", "p1", "n", 1))), nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, jsonBytes(t, podList(5, "", pod("a", "p1", "n", 1))))
	// A first list that overflows leaves no view.
	if _, err := st.GetListInfo(context.Background(), cachekey.List(info)); err == nil {
		t.Fatal("an overflowed first list must not create a view")
	}
	// A view that existed is kept but marked incomplete.
	if err := st.ReplaceList(context.Background(), cachekey.List(info), 3, nil); err != nil {
		t.Fatal(err)
	}
	body := jsonBytes(t, podList(9, "", pod("a", "p1", "n", 1), pod("a", "p2", "n", 2)))
	info, resp = response(t, kubeletUA, "/api/v1/pods", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	li, err := st.GetListInfo(context.Background(), cachekey.List(info))
	if err != nil || li.Complete || li.ResourceVersion != 3 {
		t.Fatalf("after overflow: %+v %v, want incomplete at RV 3", li, err)
	}
	if s := m.Stats(); s.Overflows != 2 {
		t.Fatalf("overflows = %d, want 2", s.Overflows)
	}
}

func TestPaginatedList(t *testing.T) {
	m, st := newMgr(t, Options{})
	page1 := jsonBytes(t, podList(50, "tok1", pod("a", "p1", "n", 1)))
	page2 := jsonBytes(t, podList(50, "", pod("a", "p2", "n", 2)))
	info, resp := response(t, kubeletUA, "/api/v1/pods?limit=1", "application/json", page1, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, page1)
	if _, err := st.GetListInfo(context.Background(), cachekey.List(info)); err == nil {
		t.Fatal("first page alone must not commit the view")
	}
	info, resp = response(t, kubeletUA, "/api/v1/pods?limit=1&continue=tok1", "application/json", page2, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, page2)
	got, li := listView(t, st, cachekey.List(info))
	if len(got) != 2 || li.ResourceVersion != 50 {
		t.Fatalf("paged view = %v %+v", got, li)
	}
	// A later page whose first page was never seen is not cached.
	info, resp = response(t, kubeletUA, "/api/v1/pods?limit=1&continue=unknown", "application/json", page2, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, page2)
}

func watchJSON(t testing.TB, evs ...metav1.WatchEvent) []byte {
	var b bytes.Buffer
	for _, e := range evs {
		b.Write(jsonBytes(t, e))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func watchProto(t testing.TB, evs ...metav1.WatchEvent) []byte {
	var b bytes.Buffer
	for _, e := range evs {
		data, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(data)))
		b.Write(hdr[:])
		b.Write(data)
	}
	return b.Bytes()
}

func TestWatchListJSONAndProtobuf(t *testing.T) {
	bookmark := pod("", "", "", 20)
	bookmark.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	bm2 := pod("", "", "", 40)
	p3 := pod("a", "p3", "n", 30)
	p1mod := pod("a", "p1", "n", 31)
	objs := []runtime.Object{ptrPod(pod("a", "p1", "n", 10)), ptrPod(pod("a", "p2", "n", 11)), ptrPod(pod("a", "unbound", "", 12)), &bookmark, &p3, &p1mod, ptrPod(pod("a", "p2", "n", 32)), &bm2}
	types := []string{"ADDED", "ADDED", "ADDED", "BOOKMARK", "ADDED", "MODIFIED", "DELETED", "BOOKMARK"}
	for _, enc := range []string{"json", "protobuf"} {
		t.Run(enc, func(t *testing.T) {
			var evs []metav1.WatchEvent
			for i, o := range objs {
				var raw []byte
				if enc == "json" {
					raw = jsonBytes(t, o)
				} else {
					raw = protoBytes(t, o)
				}
				evs = append(evs, metav1.WatchEvent{Type: types[i], Object: runtime.RawExtension{Raw: raw}})
			}
			var body []byte
			ctype := "application/json"
			if enc == "json" {
				body = watchJSON(t, evs...)
			} else {
				body = watchProto(t, evs...)
				ctype = "application/vnd.kubernetes.protobuf;stream=watch"
			}
			m, st := newMgr(t, Options{})
			info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", ctype, body, nil)
			m.CacheResponse(info, resp)
			drain(t, m, resp, body)
			got, li := listView(t, st, cachekey.List(info))
			want := map[string]uint64{"a/p1": 31, "a/p3": 30}
			if fmt.Sprint(got) != fmt.Sprint(want) || li.ResourceVersion != 40 || !li.Complete {
				t.Fatalf("view = %v %+v, want %v complete at RV 40", got, li, want)
			}
			if s := m.Stats(); s.Failures != 0 || s.Overflows != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func ptrPod(p corev1.Pod) *corev1.Pod { return &p }

func TestWatchListCutBeforeBookmarkKeepsOldView(t *testing.T) {
	m, st := newMgr(t, Options{})
	body := watchJSON(t, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p1", "n", 10)))}})
	info, resp := response(t, kubeletUA, "/api/v1/pods?watch=1&sendInitialEvents=true", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	if _, err := st.GetListInfo(context.Background(), cachekey.List(info)); err == nil {
		t.Fatal("a watch-list cut before its initial-events-end bookmark must not replace the view")
	}
}

func TestGetAndDiscovery(t *testing.T) {
	m, st := newMgr(t, Options{})
	p := pod("a", "p1", "n", 7)
	body := protoBytes(t, &p)
	info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods/p1/status", "application/vnd.kubernetes.protobuf", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	o, err := st.GetObject(context.Background(), store.ObjectKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Namespace: "a", Name: "p1"})
	if err != nil || !bytes.Equal(o.Data, body) || o.ResourceVersion != 7 || o.Encoding != store.EncodingProtobuf {
		t.Fatalf("GET pods/status cached as %+v, %v", o, err)
	}
	// An unscheduled pod is not cached.
	u := pod("a", "u", "", 8)
	body = jsonBytes(t, &u)
	info, resp = response(t, kubeletUA, "/api/v1/namespaces/a/pods/u", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	if _, err := st.GetObject(context.Background(), cachekey.Object(info)); err == nil {
		t.Fatal("pod without spec.nodeName cached")
	}

	disc := []byte(`{"kind":"APIVersions","versions":["v1"]}`)
	info, resp = response(t, "kubectl/v1.36", "/api", "application/json", disc, nil)
	m.SetCacheAgents("kubectl")
	m.CacheResponse(info, resp)
	drain(t, m, resp, disc)
	agg := []byte(`{"kind":"APIGroupDiscoveryList"}`)
	aggType := "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	info2, resp := response(t, "kubectl/v1.36", "/api", aggType, agg, nil)
	m.CacheResponse(info2, resp)
	drain(t, m, resp, agg)
	if ct, b, err := st.GetRaw(context.Background(), "kubectl", cachekey.Raw("/api", "application/json")); err != nil || !bytes.Equal(b, disc) || ct != "application/json" {
		t.Fatalf("legacy discovery: %q %q %v", ct, b, err)
	}
	if ct, b, err := st.GetRaw(context.Background(), "kubectl", cachekey.Raw("/api", aggType)); err != nil || !bytes.Equal(b, agg) || ct != aggType {
		t.Fatalf("aggregated discovery: %q %q %v", ct, b, err)
	}
}

func TestCacheable(t *testing.T) {
	m, _ := newMgr(t, Options{})
	cases := []struct {
		ua, method, url string
		want            bool
	}{
		{kubeletUA, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn", true},
		{kubeletUA, "GET", "/api/v1/namespaces/a/pods/p/status", true},
		{kubeletUA, "GET", "/api/v1/namespaces/a/pods/p/log", false},
		{kubeletUA, "GET", "/api/v1/namespaces/a/pods/p/exec", false},
		{kubeletUA, "POST", "/api/v1/namespaces/a/pods", true},
		{kubeletUA, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", true},
		{kubeletUA, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", true},
		{kubeletUA, "PATCH", "/api/v1/namespaces/a/pods/p/status", true},
		{kubeletUA, "POST", "/api/v1/namespaces/a/pods/p/eviction", false},
		{kubeletUA, "POST", "/api/v1/namespaces/a/serviceaccounts/default/token", false},
		{kubeletUA, "POST", "/api/v1/namespaces/a/events", false},
		{kubeletUA, "PATCH", "/apis/events.k8s.io/v1/namespaces/a/events/e", false},
		{kubeletUA, "GET", "/api/v1/namespaces/a/events/e", true},
		{kubeletUA, "DELETE", "/api/v1/namespaces/a/pods/p", false},
		{kubeletUA, "GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests", false},
		{kubeletUA, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", false},
		{kubeletUA, "GET", "/version", true},
		{kubeletUA, "GET", "/apis/apps/v1", true},
		{kubeletUA, "GET", "/healthz", false},
		{"kube-proxy/v1", "GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=1", true},
		{"coredns", "GET", "/api/v1/services", true},
		{"coredns", "GET", "/api/v1/watch/services?labelSelector=a%3Db", false},
		{"kube-proxy", "GET", "/apis/discovery.k8s.io/v1/watch/namespaces/a/endpointslices", false},
		{"flanneld/0.1", "GET", "/api/v1/nodes", true},
		{"kubectl/v1.36", "GET", "/api/v1/pods", false},
		{"", "GET", "/api/v1/pods", false},
		{"my-operator/1", "GET", "/apis/example.com/v1/widgets", false},
	}
	check := func(extra map[string]bool) {
		t.Helper()
		for _, c := range cases {
			r, _ := http.NewRequest(c.method, c.url, nil)
			r.Header.Set("User-Agent", c.ua)
			info, _ := requestinfo.New().Parse(r)
			want := c.want || extra[info.Component] && c.method == "GET" && info.Resource != "certificatesigningrequests" && info.Subresource != "log" && info.Subresource != "exec"
			if got := m.Cacheable(info); got != want {
				t.Errorf("%s %s (%s): cacheable=%v, want %v", c.method, c.url, c.ua, got, want)
			}
		}
	}
	check(nil)
	m.SetCacheAgents("my-operator, kubectl")
	check(map[string]bool{"my-operator": true, "kubectl": true})
	m.SetCacheAgents("*")
	check(map[string]bool{"my-operator": true, "kubectl": true})
	m.SetCacheAgents("")
	check(nil)
}

// A watch that follows a list must not write before the list is committed, or the
// list's replacement would wipe the watch's newer events.
func TestWatchWaitsForTheListItFollows(t *testing.T) {
	m, st := newMgr(t, Options{})
	listBody := jsonBytes(t, podList(10, "", pod("a", "p1", "n", 5)))
	linfo, lresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods", "application/json", listBody, nil)
	m.CacheResponse(linfo, lresp)
	// The client has the list's bytes only when it reads them; meanwhile (in
	// the cache's view) the watch starts and its events stream.
	watchBody := watchJSON(t, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: jsonBytes(t, ptrPod(pod("a", "p2", "n", 11)))}})
	winfo, wresp := response(t, kubeletUA, "/api/v1/namespaces/a/pods?watch=true&resourceVersion=10", "application/json", watchBody, nil)
	m.CacheResponse(winfo, wresp)
	if _, err := io.ReadAll(wresp.Body); err != nil {
		t.Fatal(err)
	}
	wresp.Body.Close()
	// Give the watch's decoder time to apply its event if nothing held it back.
	time.Sleep(100 * time.Millisecond)
	drain(t, m, lresp, listBody) // also waits for the watch stream
	got, li := listView(t, st, cachekey.List(linfo))
	want := map[string]uint64{"a/p1": 5, "a/p2": 11}
	if fmt.Sprint(got) != fmt.Sprint(want) || li.ResourceVersion != 11 || !li.Complete {
		t.Fatalf("view = %v %+v, want %v complete at RV 11", got, li, want)
	}
}

// The client may ask for the next page before the cache has finished the previous
// one: the later page's decoder waits for it (the client never does).
func TestNextPageBeforePreviousPageDecoded(t *testing.T) {
	m, st := newMgr(t, Options{})
	page1 := jsonBytes(t, podList(50, "tok1", pod("a", "p1", "n", 1)))
	page2 := jsonBytes(t, podList(50, "", pod("a", "p2", "n", 2)))
	info1, resp1 := response(t, kubeletUA, "/api/v1/pods?limit=1", "application/json", page1, nil)
	m.CacheResponse(info1, resp1)
	info2, resp2 := response(t, kubeletUA, "/api/v1/pods?limit=1&continue=tok1", "application/json", page2, nil)
	m.CacheResponse(info2, resp2)
	// Page 2 streams to its client first; page 1's bytes come later.
	if _, err := io.ReadAll(resp2.Body); err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	time.Sleep(50 * time.Millisecond)
	drain(t, m, resp1, page1)
	got, li := listView(t, st, cachekey.List(info1))
	if len(got) != 2 || li.ResourceVersion != 50 {
		t.Fatalf("paged view = %v %+v", got, li)
	}
}

// TestWriteResponsesKept: the object a create, update or patch returns is kept like a
// GET's (kubelet creates its Lease and CSINode and never reads them while online, then
// needs them offline), except events and dry runs.
func TestWriteResponsesKept(t *testing.T) {
	m, st := newMgr(t, Options{})
	ctx := context.Background()
	send := func(method, rawURL string, body []byte) *requestinfo.Info {
		t.Helper()
		info, resp := response(t, kubeletUA, rawURL, "application/json", body, nil)
		resp.Request.Method = method
		info, err := requestinfo.New().Parse(resp.Request)
		if err != nil {
			t.Fatal(err)
		}
		resp.StatusCode = http.StatusCreated
		m.CacheResponse(info, resp)
		drain(t, m, resp, body)
		return info
	}
	lease := []byte(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"n1","namespace":"kube-node-lease","resourceVersion":"41"},"spec":{"holderIdentity":"n1"}}`)
	send(http.MethodPost, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
	leaseKey := store.ObjectKey{Component: "kubelet", Resource: store.Resource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, Namespace: "kube-node-lease", Name: "n1"}
	if o, err := st.GetObject(ctx, leaseKey); err != nil || o.ResourceVersion != 41 || !bytes.Equal(o.Data, lease) {
		t.Fatalf("created Lease kept as %+v, %v", o, err)
	}
	lease2 := bytes.Replace(lease, []byte(`"41"`), []byte(`"57"`), 1)
	send(http.MethodPut, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", lease2)
	if o, err := st.GetObject(ctx, leaseKey); err != nil || o.ResourceVersion != 57 {
		t.Fatalf("updated Lease kept as %+v, %v", o, err)
	}
	csinode := []byte(`{"kind":"CSINode","apiVersion":"storage.k8s.io/v1","metadata":{"name":"n1","resourceVersion":"60"},"spec":{"drivers":null}}`)
	info := send(http.MethodPost, "/apis/storage.k8s.io/v1/csinodes", csinode)
	key := cachekey.Object(info)
	key.Name = "n1"
	if o, err := st.GetObject(ctx, key); err != nil || o.ResourceVersion != 60 {
		t.Fatalf("created CSINode kept as %+v, %v", o, err)
	}
	ev := []byte(`{"kind":"Event","apiVersion":"v1","metadata":{"name":"e1","namespace":"a","resourceVersion":"61"}}`)
	info = send(http.MethodPost, "/api/v1/namespaces/a/events", ev)
	key = cachekey.Object(info)
	key.Name = "e1"
	if _, err := st.GetObject(ctx, key); err == nil {
		t.Fatal("an event kubelet created online was cached")
	}
	dry := bytes.Replace(csinode, []byte(`"n1"`), []byte(`"n2"`), 1)
	info = send(http.MethodPost, "/apis/storage.k8s.io/v1/csinodes?dryRun=All", dry)
	key = cachekey.Object(info)
	key.Name = "n2"
	if _, err := st.GetObject(ctx, key); err == nil {
		t.Fatal("a dry-run create was cached")
	}
}

// Two components paging one resource at one revision are handed the same continue
// token; each view gets its own pages (the token alone named the parked list, so the
// second component's first page replaced the first's, whose list was then never
// cached and whose writer was never aborted).
func TestPagedListsOfTwoComponentsShareAToken(t *testing.T) {
	m, st := newMgr(t, Options{})
	page1 := jsonBytes(t, podList(50, "tok1", pod("a", "p1", "n", 1)))
	page2 := jsonBytes(t, podList(50, "", pod("a", "p2", "n", 2)))
	var infos []*requestinfo.Info
	for _, ua := range []string{kubeletUA, "kube-proxy/v1.36.3"} {
		info, resp := response(t, ua, "/api/v1/pods?limit=1", "application/json", page1, nil)
		m.CacheResponse(info, resp)
		drain(t, m, resp, page1)
		infos = append(infos, info)
	}
	for _, ua := range []string{kubeletUA, "kube-proxy/v1.36.3"} {
		info, resp := response(t, ua, "/api/v1/pods?limit=1&continue=tok1", "application/json", page2, nil)
		m.CacheResponse(info, resp)
		drain(t, m, resp, page2)
	}
	for _, info := range infos {
		got, li := listView(t, st, cachekey.List(info))
		if len(got) != 2 || li.ResourceVersion != 50 || !li.Complete {
			t.Errorf("%s's paged view = %v %+v, want p1 and p2 at RV 50", info.Component, got, li)
		}
	}
	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	if len(m.pages) != 0 {
		t.Errorf("%d paged lists still parked", len(m.pages))
	}
}

// TestRecordedGetPartialNotCached: a small GET is recorded whole as it passes
// (recordBody) and cached only once the client has read it to its end: a body the
// client closes early, one the upstream cuts, and one longer than its
// Content-Length are not cached; a whole one is.
func TestRecordedGetPartialNotCached(t *testing.T) {
	p := pod("a", "p1", "n", 7)
	body := protoBytes(t, &p)
	key := store.ObjectKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Namespace: "a", Name: "p1"}
	for _, tc := range []struct {
		name   string
		body   io.Reader
		length int64
		read   int // bytes the client reads before closing; -1: all
		cached bool
	}{
		{"closed early", bytes.NewReader(body), int64(len(body)), len(body) / 2, false},
		{"cut by the upstream", io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotest.ErrReader(errors.New("connection reset"))), int64(len(body)), -1, false},
		{"longer than Content-Length", bytes.NewReader(body), int64(len(body)) - 3, -1, false},
		{"whole", bytes.NewReader(body), int64(len(body)), -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, st := newMgr(t, Options{})
			info, resp := response(t, kubeletUA, "/api/v1/namespaces/a/pods/p1", "application/vnd.kubernetes.protobuf", body, nil)
			resp.Body, resp.ContentLength = io.NopCloser(tc.body), tc.length
			m.CacheResponse(info, resp)
			if _, ok := resp.Body.(*recordBody); !ok {
				t.Fatalf("a %d-byte GET took the tee's path (%T), not recordBody", tc.length, resp.Body)
			}
			if tc.read >= 0 {
				_, _ = io.ReadFull(resp.Body, make([]byte, tc.read))
			} else {
				_, _ = io.ReadAll(resp.Body)
			}
			resp.Body.Close()
			m.Wait()
			_, err := st.GetObject(context.Background(), key)
			if cached := err == nil; cached != tc.cached {
				t.Fatalf("cached = %v (%v), want %v", cached, err, tc.cached)
			}
		})
	}
}
