package localproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

const testNode = "edge-1"

var podsRes = store.Resource{Version: "v1", Resource: "pods"}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testPod is a pod on node with resourceVersion rv.
func testPod(ns, name, node string, rv int, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: strconv.Itoa(rv), UID: types.UID("uid-" + name), Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Env: []corev1.EnvVar{{Name: "A", Value: "some value to make the pod a few hundred bytes long"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
}

func stored(t testing.TB, obj runtime.Object, enc store.Encoding) store.Object {
	t.Helper()
	acc := obj.(metav1.Object)
	rv, _ := strconv.ParseUint(acc.GetResourceVersion(), 10, 64)
	var data []byte
	var err error
	if enc == store.EncodingProtobuf {
		data, err = kubescheme.EncodeProto(obj)
	} else {
		data, err = json.Marshal(obj)
	}
	if err != nil {
		t.Fatal(err)
	}
	return store.Object{Namespace: acc.GetNamespace(), Name: acc.GetName(), ResourceVersion: rv, Encoding: enc, Data: data}
}

// listKey is the view key a request with these parameters reads.
func listKey(component, path, labelSel, fieldSel string) store.ListKey {
	r, _ := http.NewRequest(http.MethodGet, "http://x"+path, nil)
	q := r.URL.Query()
	if labelSel != "" {
		q.Set("labelSelector", labelSel)
	}
	if fieldSel != "" {
		q.Set("fieldSelector", fieldSel)
	}
	r.URL.RawQuery = q.Encode()
	r.Header.Set("User-Agent", component+"/v1.36.3")
	info, _ := requestinfo.New().Parse(r)
	return cachekey.List(info)
}

// fillPods stores n pods on testNode (plus one on another node in the all-pods view)
// as kubelet's view (fieldSelector spec.nodeName=edge-1) at list RV 1000+n.
func fillPods(t testing.TB, st *store.Store, component string, n int, enc store.Encoding) store.ListKey {
	t.Helper()
	k := listKey(component, "/api/v1/pods", "", "spec.nodeName="+testNode)
	objs := make([]store.Object, 0, n)
	for i := 0; i < n; i++ {
		objs = append(objs, stored(t, testPod("ns"+strconv.Itoa(i%3), fmt.Sprintf("pod-%05d", i), testNode, 100+i, map[string]string{"app": "a" + strconv.Itoa(i%2)}), enc))
	}
	if err := st.ReplaceList(context.Background(), k, uint64(1000+n), objs); err != nil {
		t.Fatal(err)
	}
	return k
}

type testServer struct {
	*httptest.Server
	h  *Handler
	st *store.Store
}

func newServer(t testing.TB, st *store.Store, opts Options) *testServer {
	t.Helper()
	opts.Store = st
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &testServer{Server: srv, h: h, st: st}
}

func (s *testServer) client(t testing.TB, component string, protobuf bool) *kubernetes.Clientset {
	t.Helper()
	cfg := &rest.Config{Host: s.URL, UserAgent: component + "/v1.36.3 (linux/amd64) kubernetes/test", QPS: -1}
	if protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	} else {
		cfg.ContentType = "application/json"
		cfg.AcceptContentTypes = "application/json"
	}
	return kubernetes.NewForConfigOrDie(cfg)
}
