package localproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/yurthub/yurthub/internal/store"
)

// TestOfflineDamagedObject is issue 19's probe: 300 random bytes written inside one
// stored pod of a real cache file (bbolt's page check still passes), then the pod
// list, a GET of that pod and a watch, served offline. Each answer must be a valid
// Status saying what is missing (503), never 200 with broken bytes; an intact pod is
// still served.
func TestOfflineDamagedObject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	k := listKey("kubelet", "/api/v1/pods", "", "spec.nodeName="+testNode)
	var objs []store.Object
	for i := range 5 {
		p := testPod("default", fmt.Sprintf("pod-%d", i), testNode, 100+i, nil)
		p.Annotations = map[string]string{"pad": fmt.Sprintf("MARK%d%s", i, strings.Repeat("-", 500))}
		objs = append(objs, stored(t, p, store.EncodingJSON))
	}
	if err := st.ReplaceList(context.Background(), k, 1000, objs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(data, []byte("MARK2-"))
	if off < 0 || bytes.Count(data, []byte("MARK2-")) != 1 {
		t.Fatalf("the pod's marker is not in the file once")
	}
	junk := make([]byte, 300)
	r := rand.New(rand.NewPCG(19, 1))
	for i := range junk {
		junk[i] = byte(r.UintN(256))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(junk, int64(off)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	st, err = store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := newServer(t, st, Options{})

	get := func(path, accept string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Header.Set("User-Agent", "kubelet/v1.36.3 (linux/amd64) kubernetes/test")
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: reading the body: %v", path, err)
		}
		return resp.StatusCode, body
	}
	for _, tc := range []struct{ name, path, accept string }{
		{"list", "/api/v1/pods?fieldSelector=spec.nodeName%3D" + testNode, "application/json"},
		{"list protobuf", "/api/v1/pods?fieldSelector=spec.nodeName%3D" + testNode, "application/vnd.kubernetes.protobuf"},
		{"get", "/api/v1/namespaces/default/pods/pod-2", "application/json"},
		{"watch", "/api/v1/pods?watch=true&timeoutSeconds=2&fieldSelector=spec.nodeName%3D" + testNode, "application/json"},
		{"watch-list", "/api/v1/pods?watch=true&timeoutSeconds=2&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=spec.nodeName%3D" + testNode, "application/json"},
	} {
		code, body := get(tc.path, tc.accept)
		var status struct {
			Kind, Message string
			Code          int
		}
		if err := json.Unmarshal(body, &status); err != nil || status.Kind != "Status" {
			t.Errorf("%s: %d, not a valid Status (%v): %.200q", tc.name, code, err, body)
			continue
		}
		if code != http.StatusServiceUnavailable || status.Code != code || !strings.Contains(status.Message, "default/pod-2") {
			t.Errorf("%s: %d %q, want 503 naming default/pod-2", tc.name, code, status.Message)
		}
		t.Logf("%s: %d %s", tc.name, code, status.Message)
	}
	code, body := get("/api/v1/namespaces/default/pods/pod-1", "application/json")
	var p corev1.Pod
	if err := json.Unmarshal(body, &p); code != http.StatusOK || err != nil || p.Name != "pod-1" {
		t.Errorf("an intact pod: %d %v %.200q", code, err, body)
	}
}
