package filter

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/requestinfo"
)

// serviceList is n Services, every third a LoadBalancer to discard, and
// default/kubernetes.
func serviceList(n int) *corev1.ServiceList {
	l := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: ""}}
	l.Items = append(l.Items, *service("default", "kubernetes", corev1.ServiceTypeClusterIP, nil))
	for i := 0; i < n; i++ {
		typ, ann := corev1.ServiceTypeClusterIP, map[string]string(nil)
		if i%3 == 0 {
			typ, ann = corev1.ServiceTypeLoadBalancer, map[string]string{"svc.openyurt.io/discard": "true"}
		}
		l.Items = append(l.Items, *service("default", "svc-"+string(rune('a'+i%26))+string(rune('a'+i/26)), typ, ann))
	}
	return l
}

func envelope(t *testing.T, apiVersion, kind string, msg []byte) []byte {
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: msg, ContentType: "application/vnd.kubernetes.protobuf"}
	b := make([]byte, len(protoMagic)+u.Size())
	copy(b, protoMagic)
	if _, err := u.MarshalToSizedBuffer(b[len(protoMagic):]); err != nil {
		t.Fatal(err)
	}
	return b
}

func proxied(t *testing.T, s *Settings, ua, path, ctype string, body []byte, gz bool) []byte {
	t.Helper()
	req := &http.Request{Method: "GET", URL: &url.URL{Path: path}, Header: http.Header{"User-Agent": {ua}}}
	info, _ := requestinfo.New().Parse(req)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ctype}}, Request: req}
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(body)
		zw.Close()
		body = b.Bytes()
		resp.Header.Set("Content-Encoding", "gzip")
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	(&Responses{Settings: s, SpoolDir: t.TempDir()}).FilterResponse(info, resp)
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read filtered body: %v", err)
	}
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatal("Content-Encoding kept on a plain body")
	}
	return out
}

func wantNames(t *testing.T, items []corev1.Service, n int) {
	t.Helper()
	var names []string
	for _, s := range items {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			t.Fatalf("discarded service %s sent", s.Name)
		}
		names = append(names, s.Name)
	}
	if len(names) != n {
		t.Fatalf("%d items, want %d", len(names), n)
	}
	if !slices.Contains(names, "kubernetes") {
		t.Fatal("default/kubernetes lost")
	}
}

func TestStreamLists(t *testing.T) {
	s, err := New(Options{Enabled: true, Env: testEnv()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	kept := 1 + n - (n+2)/3
	list := serviceList(n)
	for _, gz := range []bool{false, true} {
		// kubelet: masterservice rewrites default/kubernetes, nothing dropped
		js, _ := json.Marshal(list)
		out := proxied(t, s, "kubelet/v1.36", "/api/v1/services", "application/json", js, gz)
		var got corev1.ServiceList
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("filtered JSON list: %v\n%.300s", err, out)
		}
		if len(got.Items) != n+1 || got.Items[0].Spec.ClusterIP != "169.254.2.1" || got.ResourceVersion != "42" {
			t.Fatalf("kubelet JSON list: %d items, first clusterIP %s, rv %s", len(got.Items), got.Items[0].Spec.ClusterIP, got.ResourceVersion)
		}
		// kube-proxy: discardcloudservice drops the LoadBalancers
		out = proxied(t, s, "kube-proxy/v1.36", "/api/v1/services", "application/json", js, gz)
		got = corev1.ServiceList{}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("filtered JSON list: %v", err)
		}
		wantNames(t, got.Items, kept)

		msg, _ := list.Marshal()
		pb := envelope(t, "v1", "ServiceList", msg)
		out = proxied(t, s, "kube-proxy/v1.36", "/api/v1/services", "application/vnd.kubernetes.protobuf", pb, gz)
		var u runtime.Unknown
		if !bytes.HasPrefix(out, protoMagic) {
			t.Fatal("protobuf list: envelope lost")
		}
		if err := u.Unmarshal(out[len(protoMagic):]); err != nil {
			t.Fatalf("protobuf list envelope: %v", err)
		}
		if u.Kind != "ServiceList" || u.APIVersion != "v1" || u.ContentType != "application/vnd.kubernetes.protobuf" {
			t.Fatalf("envelope fields: %+v", u.TypeMeta)
		}
		got = corev1.ServiceList{}
		if err := got.Unmarshal(u.Raw); err != nil {
			t.Fatalf("protobuf list: %v", err)
		}
		wantNames(t, got.Items, kept)
		if got.ResourceVersion != "42" {
			t.Fatalf("list metadata lost: %+v", got.ListMeta)
		}
	}
	// a client no filter applies to: the body is not touched
	js, _ := json.Marshal(list)
	if out := proxied(t, s, "kubectl/v1.36", "/api/v1/services", "application/json", js, false); !bytes.Equal(out, js) {
		t.Fatal("unfiltered client's body changed")
	}
}

func TestStreamWatches(t *testing.T) {
	s, err := New(Options{Enabled: true, Env: testEnv()})
	if err != nil {
		t.Fatal(err)
	}
	discard := map[string]string{"svc.openyurt.io/discard": "true"}
	events := []struct {
		typ string
		ann map[string]string
	}{{"ADDED", nil}, {"MODIFIED", discard}, {"MODIFIED", discard}, {"MODIFIED", nil}, {"BOOKMARK", nil}}
	want := []string{"ADDED", "DELETED", "ADDED", "BOOKMARK"}

	var js, pb bytes.Buffer
	for i, e := range events {
		svc := service("default", "lb", corev1.ServiceTypeLoadBalancer, e.ann)
		o, _ := json.Marshal(svc)
		js.Write([]byte(`{"type":"` + e.typ + `","object":`))
		js.Write(o)
		js.Write([]byte("}\n"))
		msg, _ := svc.Marshal()
		ev := metav1.WatchEvent{Type: e.typ, Object: runtime.RawExtension{Raw: envelope(t, "v1", "Service", msg)}}
		raw, _ := ev.Marshal()
		frame := raw // the apiserver's protobuf stream writes bare WatchEvent frames
		if i%2 == 1 {
			frame = envelope(t, "meta.k8s.io/v1", "WatchEvent", raw) // enveloped ones are read too
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
		pb.Write(hdr[:])
		pb.Write(frame)
	}
	got := watchTypes(t, s, "application/json", js.Bytes())
	if !slices.Equal(got, want) {
		t.Fatalf("JSON watch: %v, want %v", got, want)
	}
	got = watchTypes(t, s, "application/vnd.kubernetes.protobuf;stream=watch", pb.Bytes())
	if !slices.Equal(got, want) {
		t.Fatalf("protobuf watch: %v, want %v", got, want)
	}
}

func watchTypes(t *testing.T, s *Settings, ctype string, body []byte) []string {
	t.Helper()
	u, _ := url.Parse("/api/v1/services?watch=true")
	req := &http.Request{Method: "GET", URL: u, Header: http.Header{"User-Agent": {"kube-proxy/v1"}}}
	info, _ := requestinfo.New().Parse(req)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ctype}}, Request: req, Body: io.NopCloser(bytes.NewReader(body))}
	(&Responses{Settings: s}).FilterResponse(info, resp)
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	if ctype == "application/json" {
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var ev struct{ Type string }
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
		}
		return types
	}
	for len(out) > 0 {
		n := binary.BigEndian.Uint32(out)
		frame := out[4 : 4+n]
		out = out[4+n:]
		if bytes.HasPrefix(frame, protoMagic) {
			var u runtime.Unknown
			if err := u.Unmarshal(frame[4:]); err != nil {
				t.Fatal(err)
			}
			frame = u.Raw
		}
		var ev metav1.WatchEvent
		if err := ev.Unmarshal(frame); err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
	}
	return types
}

// A client that goes away from an idle filtered watch ends the upstream watch at
// once (the filtering goroutine would otherwise wait for the next event).
func TestStreamClientGoneClosesUpstream(t *testing.T) {
	s, _ := New(Options{Enabled: true, Env: testEnv()})
	upR, upW := io.Pipe()
	u, _ := url.Parse("/api/v1/services?watch=true")
	req := &http.Request{Method: "GET", URL: u, Header: http.Header{"User-Agent": {"kube-proxy/v1"}}}
	info, _ := requestinfo.New().Parse(req)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req, Body: upR}
	(&Responses{Settings: s}).FilterResponse(info, resp)
	if resp.Body == upR {
		t.Fatal("not filtered")
	}
	resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := upW.Write([]byte(`{"type":"ADDED","object":{}}`))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("upstream still read after the client went away")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("upstream not closed within 2 s of the client going away")
	}
}

// EndStreams ends a filtered watch with a 410 Expired ERROR event (a client-go
// reflector relists on it; on a clean end it would only re-watch).
func TestEndStreamsSends410(t *testing.T) {
	for _, ctype := range []string{"application/json", "application/vnd.kubernetes.protobuf;stream=watch"} {
		s, _ := New(Options{Enabled: true, Env: testEnv()})
		upR, _ := io.Pipe() // an idle upstream watch
		u, _ := url.Parse("/apis/discovery.k8s.io/v1/endpointslices?watch=true")
		req := &http.Request{Method: "GET", URL: u, Header: http.Header{"User-Agent": {"kube-proxy/v1"}}}
		info, _ := requestinfo.New().Parse(req)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ctype}}, Request: req, Body: upR}
		(&Responses{Settings: s}).FilterResponse(info, resp)
		if n := s.EndStreams(NodePortIsolation, "test"); n != 0 {
			t.Fatalf("%s: a slice watch ended for nodeportisolation", ctype)
		}
		if n := s.EndStreams(ServiceTopology, "test"); n != 1 {
			t.Fatalf("%s: %d watches ended, want 1", ctype, n)
		}
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", ctype, err)
		}
		var st metav1.Status
		if ctype == "application/json" {
			var ev struct {
				Type   string
				Object metav1.Status
			}
			if err := json.Unmarshal(out, &ev); err != nil || ev.Type != "ERROR" {
				t.Fatalf("%s: %q", ctype, out)
			}
			st = ev.Object
		} else {
			var ev metav1.WatchEvent
			if err := ev.Unmarshal(out[4:]); err != nil || ev.Type != "ERROR" {
				t.Fatalf("%s: %v %q", ctype, err, out)
			}
			var u runtime.Unknown
			if err := u.Unmarshal(ev.Object.Raw[4:]); err != nil || u.Kind != "Status" {
				t.Fatalf("%s: %v %+v", ctype, err, u.TypeMeta)
			}
			if err := st.Unmarshal(u.Raw); err != nil {
				t.Fatal(err)
			}
		}
		if st.Code != 410 || st.Reason != metav1.StatusReasonExpired {
			t.Fatalf("%s: status %+v", ctype, st)
		}
	}
}

// A GET is filtered in place, without a goroutine: kubelet's pod naming the
// variable comes back rewritten with its Content-Length; one over the object
// limit passes as it is, whole.
func TestStreamGet(t *testing.T) {
	s, err := New(Options{Enabled: true, Env: testEnv()})
	if err != nil {
		t.Fatal(err)
	}
	p := pod(corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "10.0.0.1"})
	p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	js, _ := json.Marshal(p)
	for _, max := range []int{0, 100} {
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/api/v1/namespaces/default/pods/p"}, Header: http.Header{"User-Agent": {"kubelet/v1.36"}}}
		info, _ := requestinfo.New().Parse(req)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req, Body: io.NopCloser(bytes.NewReader(js)), ContentLength: int64(len(js))}
		(&Responses{Settings: s, MaxObjectBytes: max}).FilterResponse(info, resp)
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if max == 100 { // the pod is larger: passed as it is
			if !bytes.Equal(out, js) {
				t.Fatalf("a GET over the limit was changed: %s", out)
			}
			continue
		}
		if !bytes.Contains(out, []byte(`"value":"169.254.2.1"`)) || resp.ContentLength != int64(len(out)) || resp.Header.Get("Content-Length") != strconv.Itoa(len(out)) {
			t.Fatalf("GET not rewritten in place: %s (ContentLength %d, header %q)", out, resp.ContentLength, resp.Header.Get("Content-Length"))
		}
	}
}
