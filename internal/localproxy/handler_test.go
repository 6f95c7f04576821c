package localproxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/store"
)

var encodings = []store.Encoding{store.EncodingJSON, store.EncodingProtobuf}

func TestGetAndListBothEncodings(t *testing.T) {
	for _, stEnc := range encodings {
		for _, proto := range []bool{false, true} {
			name := string(stEnc) + "-stored/"
			if proto {
				name += "protobuf-client"
			} else {
				name += "json-client"
			}
			t.Run(name, func(t *testing.T) {
				st := openStore(t)
				fillPods(t, st, "kubelet", 10, stEnc)
				s := newServer(t, st, Options{})
				cs := s.client(t, "kubelet", proto)
				ctx := context.Background()

				p, err := cs.CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("get: %v", err)
				}
				if p.Spec.NodeName != testNode || p.ResourceVersion != "101" || p.Status.Phase != corev1.PodRunning {
					t.Fatalf("get returned %+v", p.ObjectMeta)
				}
				if _, err := cs.CoreV1().Pods("ns1").Get(ctx, "absent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Fatalf("get absent: want 404, got %v", err)
				}

				l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				if len(l.Items) != 10 || l.ResourceVersion != "1010" {
					t.Fatalf("list: %d items at RV %s, want 10 at 1010", len(l.Items), l.ResourceVersion)
				}
				// A namespace and a label selector never listed: served from the
				// component's wider view, filtered.
				l, err = cs.CoreV1().Pods("ns0").List(ctx, metav1.ListOptions{LabelSelector: "app=a0", FieldSelector: "spec.nodeName=" + testNode})
				if err != nil {
					t.Fatalf("filtered list: %v", err)
				}
				for _, p := range l.Items {
					if p.Namespace != "ns0" || p.Labels["app"] != "a0" {
						t.Fatalf("filter let through %s/%s %v", p.Namespace, p.Name, p.Labels)
					}
				}
				if len(l.Items) != 2 { // i in {0,6} of 0..9 with i%3==0 and i%2==0
					t.Fatalf("filtered list: %d items, want 2", len(l.Items))
				}
				l, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode + ",metadata.name=pod-00003,status.phase=Running"})
				if err != nil || len(l.Items) != 1 || l.Items[0].Name != "pod-00003" {
					t.Fatalf("field-selected list: %v %d", err, len(l.Items))
				}
				// kubelet gets 404 rather than an empty pod list.
				if _, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode + ",status.phase=Pending"}); !apierrors.IsNotFound(err) {
					t.Fatalf("status.phase=Pending: want 404, got %v", err)
				}
			})
		}
	}
}

func TestListErrors(t *testing.T) {
	st := openStore(t)
	k := fillPods(t, st, "kubelet", 3, store.EncodingJSON)
	s := newServer(t, st, Options{})
	ctx := context.Background()

	// Another component never listed pods: a clear 503, not an empty list.
	if _, err := s.client(t, "kube-proxy", false).CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("get of a resource the component never read: want 503, got %v", err)
	}
	_, err := s.client(t, "kube-proxy", false).CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "never listed") {
		t.Fatalf("never-synced view: want 503 saying so, got %v", err)
	}
	// kubelet's pod list with no items is 404.
	empty := listKey("kubelet", "/api/v1/pods", "", "spec.nodeName=empty-node")
	if err := st.ReplaceList(ctx, empty, 5, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.client(t, "kubelet", false).CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=empty-node"})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("kubelet empty pod list: want 404, got %v", err)
	}
	_, err = s.client(t, "kubelet", true).CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=empty-node"})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("kubelet empty pod list (protobuf): want 404, got %v", err)
	}
	// An empty list for another component is a list.
	if err := st.ReplaceList(ctx, listKey("coredns", "/api/v1/pods", "", ""), 5, nil); err != nil {
		t.Fatal(err)
	}
	if l, err := s.client(t, "coredns", false).CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 || l.ResourceVersion != "5" {
		t.Fatalf("coredns empty list: %v %+v", err, l)
	}
	// An incomplete view is refused, never served partially.
	if err := st.MarkIncomplete(ctx, k, "cache fell behind"); err != nil {
		t.Fatal(err)
	}
	_, err = s.client(t, "kubelet", false).CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode})
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("incomplete view: want 503 saying so, got %v", err)
	}
}

func TestTableAcceptFallsBackToJSON(t *testing.T) {
	st := openStore(t)
	fillPods(t, st, "kubectl", 2, store.EncodingProtobuf)
	s := newServer(t, st, Options{})
	get := func(accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/pods?fieldSelector=spec.nodeName%3D"+testNode, nil)
		req.Header.Set("User-Agent", "kubectl/v1.36.3")
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("table accept: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var l corev1.PodList
	if err := json.Unmarshal(body, &l); err != nil || len(l.Items) != 2 || l.Kind != "PodList" {
		t.Fatalf("table accept body: %v %d %s", err, len(l.Items), l.Kind)
	}
	resp, body = get("application/json;as=Table;v=v1;g=meta.k8s.io")
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("table only: want 406, got %d %s", resp.StatusCode, body)
	}
}

func collectWatch(t *testing.T, w watch.Interface, until func(watch.Event) bool) []watch.Event {
	t.Helper()
	var evs []watch.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
			if until != nil && until(ev) {
				return evs
			}
		case <-timeout:
			t.Fatalf("watch: timed out after %d events", len(evs))
		}
	}
}

func TestWatch(t *testing.T) {
	for _, proto := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "protobuf"}[proto], func(t *testing.T) {
			st := openStore(t)
			fillPods(t, st, "kubelet", 4, store.EncodingJSON)
			var cloud atomic.Bool
			s := newServer(t, st, Options{CloudHealthy: cloud.Load, BookmarkInterval: 100 * time.Millisecond, HealthPollInterval: 20 * time.Millisecond})
			cs := s.client(t, "kubelet", proto)
			ctx := context.Background()
			sel := "spec.nodeName=" + testNode

			// watch-list: ADDED for each cached object, then the initial-events-end bookmark.
			w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: sel, SendInitialEvents: ptr.To(true),
				AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
			if err != nil {
				t.Fatal(err)
			}
			evs := collectWatch(t, w, func(ev watch.Event) bool { return ev.Type == watch.Bookmark })
			w.Stop()
			if len(evs) != 5 {
				t.Fatalf("watch-list: %d events, want 4 ADDED + bookmark: %+v", len(evs), evs)
			}
			for _, ev := range evs[:4] {
				if ev.Type != watch.Added {
					t.Fatalf("watch-list: %s before the bookmark", ev.Type)
				}
			}
			bm := evs[4].Object.(*corev1.Pod)
			if bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || bm.ResourceVersion != "1004" {
				t.Fatalf("bookmark: %+v", bm.ObjectMeta)
			}

			// A watch from the list RV: bookmarks only, no invented events, and it ends
			// when the cloud comes back.
			w, err = cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: "1004", AllowWatchBookmarks: true})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			evs = collectWatch(t, w, func(ev watch.Event) bool {
				n++
				if n == 3 {
					cloud.Store(true)
				}
				return false
			})
			for _, ev := range evs {
				if ev.Type != watch.Bookmark {
					t.Fatalf("invented %s event", ev.Type)
				}
			}
			if len(evs) < 3 {
				t.Fatalf("%d bookmarks, want >= 3", len(evs))
			}
			cloud.Store(false)

			// Older than the cache: 410 so the client relists.
			w, err = cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: "900"})
			if err != nil {
				t.Fatal(err)
			}
			evs = collectWatch(t, w, nil)
			if len(evs) != 1 || evs[0].Type != watch.Error || apierrors.FromObject(evs[0].Object).(apierrors.APIStatus).Status().Code != http.StatusGone {
				t.Fatalf("old RV: want one 410 ERROR event, got %+v", evs)
			}

			// timeoutSeconds is honoured.
			start := time.Now()
			w, err = cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: "1004", TimeoutSeconds: ptr.To(int64(1))})
			if err != nil {
				t.Fatal(err)
			}
			collectWatch(t, w, nil)
			if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
				t.Fatalf("timeoutSeconds=1 watch lasted %s", d)
			}
		})
	}
}

// TestInformers starts informers against the local handler, watch-list on and off,
// JSON and protobuf: they sync to the cached contents.
func TestInformers(t *testing.T) {
	for _, watchList := range []bool{false, true} {
		for _, proto := range []bool{false, true} {
			name := map[bool]string{false: "list-watch", true: "watch-list"}[watchList] + "/" + map[bool]string{false: "json", true: "protobuf"}[proto]
			t.Run(name, func(t *testing.T) {
				setWatchList(t, watchList)
				st := openStore(t)
				fillPods(t, st, "kubelet", 25, store.EncodingProtobuf)
				s := newServer(t, st, Options{})
				var watchLists atomic.Int64
				inner := s.Config.Handler
				s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Query().Get("sendInitialEvents") == "true" {
						watchLists.Add(1)
					}
					inner.ServeHTTP(w, r)
				})
				cs := s.client(t, "kubelet", proto)
				f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
					o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", testNode).String()
				}))
				inf := f.Core().V1().Pods().Informer()
				stop := make(chan struct{})
				defer close(stop)
				f.Start(stop)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
					t.Fatal("informer did not sync from the cache")
				}
				if got := len(inf.GetStore().List()); got != 25 {
					t.Fatalf("informer has %d pods, want 25", got)
				}
				if used := watchLists.Load() > 0; used != watchList {
					t.Fatalf("watch-list requests seen: %v, want %v", used, watchList)
				}
			})
		}
	}
}

func TestOfflineWrites(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	fillPods(t, st, "kubelet", 2, store.EncodingProtobuf)
	node := &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: testNode, ResourceVersion: "50", UID: "node-uid"},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	nodeKey := listKey("kubelet", "/api/v1/nodes", "", "metadata.name="+testNode)
	if err := st.ReplaceList(ctx, nodeKey, 60, []store.Object{stored(t, node, store.EncodingJSON)}); err != nil {
		t.Fatal(err)
	}
	lease := &coordv1.Lease{TypeMeta: metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-node-lease", Name: testNode, ResourceVersion: "70", UID: "lease-uid"},
		Spec:       coordv1.LeaseSpec{HolderIdentity: ptr.To(testNode), LeaseDurationSeconds: ptr.To(int32(40))}}
	if err := st.PutObject(ctx, store.ObjectKey{Component: "kubelet", Resource: store.Resource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"},
		Namespace: "kube-node-lease", Name: testNode}, stored(t, lease, store.EncodingProtobuf)); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, st, Options{})
	for _, proto := range []bool{false, true} {
		kubelet := s.client(t, "kubelet", proto)

		// Pod status patch (strategic merge, as kubelet sends it) applied to the cached copy.
		patch := `{"metadata":{"uid":"uid-pod-00001"},"status":{"phase":"Failed","message":"offline"}}`
		p, err := kubelet.CoreV1().Pods("ns1").Patch(ctx, "pod-00001", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
		if err != nil || p.Status.Phase != corev1.PodFailed || p.Status.Message != "offline" || p.ResourceVersion != "101" {
			t.Fatalf("pod status patch: %v %+v", err, p)
		}
		p, err = kubelet.CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodFailed || p.Spec.NodeName != testNode {
			t.Fatalf("pod after patch: %v %+v", err, p.Status)
		}
		l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + testNode + ",status.phase=Failed"})
		if err != nil || len(l.Items) != 1 {
			t.Fatalf("list after patch: %v %d", err, len(l.Items))
		}
		// Wrong UID precondition: conflict.
		_, err = kubelet.CoreV1().Pods("ns1").Patch(ctx, "pod-00001", types.StrategicMergePatchType, []byte(`{"metadata":{"uid":"other"},"status":{"phase":"Running"}}`), metav1.PatchOptions{}, "status")
		if !apierrors.IsConflict(err) {
			t.Fatalf("pod status patch with a wrong uid: want 409, got %v", err)
		}

		// Node status (update through the status subresource; spec changes ignored).
		n, err := kubelet.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions[0].Reason = "KubeletReadyOffline"
		n.Spec.Unschedulable = true
		n, err = kubelet.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil || n.Status.Conditions[0].Reason != "KubeletReadyOffline" || n.Spec.Unschedulable {
			t.Fatalf("node status update: %v %+v", err, n)
		}

		// Lease renewals, with the RV the previous answer gave.
		le, err := kubelet.CoordinationV1().Leases("kube-node-lease").Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			now := metav1.NewMicroTime(time.Now().Truncate(time.Microsecond))
			le.Spec.RenewTime = &now
			if le, err = kubelet.CoordinationV1().Leases("kube-node-lease").Update(ctx, le, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("lease update %d: %v", i, err)
			}
			if !le.Spec.RenewTime.Equal(&now) || string(le.UID) != "lease-uid" {
				t.Fatalf("lease update answered %+v", le)
			}
		}
		stale := le.DeepCopy()
		stale.ResourceVersion = "1"
		if _, err := kubelet.CoordinationV1().Leases("kube-node-lease").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			t.Fatalf("lease update from an older RV: want 409, got %v", err)
		}

		// Events are kept; then patched (the recorder's count increment).
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "pod-00001.offline" + map[bool]string{false: "j", true: "p"}[proto]},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns1", Name: "pod-00001"}, Reason: "Offline", Count: 1, Type: "Normal"}
		got, err := kubelet.CoreV1().Events("ns1").Create(ctx, ev, metav1.CreateOptions{})
		if err != nil || got.UID == "" || got.Reason != "Offline" {
			t.Fatalf("event create: %v %+v", err, got)
		}
		if _, err := kubelet.CoreV1().Events("ns1").Create(ctx, ev, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
			t.Fatalf("event create twice: want 409 AlreadyExists, got %v", err)
		}
		got, err = kubelet.CoreV1().Events("ns1").Patch(ctx, ev.Name, types.StrategicMergePatchType, []byte(`{"count":2}`), metav1.PatchOptions{})
		if err != nil || got.Count != 2 {
			t.Fatalf("event patch: %v %+v", err, got)
		}
		if got, err = kubelet.CoreV1().Events("ns1").Get(ctx, ev.Name, metav1.GetOptions{}); err != nil || got.Count != 2 {
			t.Fatalf("event get: %v %+v", err, got)
		}

		// Everything else is refused with a clear Status, not answered with an old object.
		_, err = kubelet.CoreV1().Pods("ns1").Create(ctx, testPod("ns1", "new", testNode, 0, nil), metav1.CreateOptions{})
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("pod create: want 503, got %v", err)
		}
		// A create of an object the component has cached gets the apiserver's answer
		// for an existing name (kubelet registering its node again after a restart).
		_, err = kubelet.CoreV1().Pods("ns1").Create(ctx, testPod("ns1", "pod-00001", testNode, 0, nil), metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) || !strings.Contains(err.Error(), "nothing was created") {
			t.Fatalf("create of a cached pod: want 409 AlreadyExists, got %v", err)
		}
		_, err = s.client(t, "kube-proxy", proto).CoreV1().Pods("ns1").Create(ctx, testPod("ns1", "pod-00001", testNode, 0, nil), metav1.CreateOptions{})
		if !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("create of an object another component has cached: want 503, got %v", err)
		}
		p, _ = kubelet.CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{})
		p.Labels = map[string]string{"changed": "yes"}
		if _, err := kubelet.CoreV1().Pods("ns1").Update(ctx, p, metav1.UpdateOptions{}); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("pod spec update: want 503, got %v", err)
		}
		if _, err := s.client(t, "kube-proxy", proto).CoreV1().Pods("ns1").Patch(ctx, "pod-00001", types.MergePatchType, []byte(`{"status":{"phase":"Running"}}`), metav1.PatchOptions{}, "status"); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("another component's status patch: want 503, got %v", err)
		}
		if err := kubelet.CoreV1().Pods("ns1").Delete(ctx, "pod-00001", metav1.DeleteOptions{}); !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("delete: want 503, got %v", err)
		}
		if _, err := kubelet.CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{}); err != nil {
			t.Fatalf("pod gone after a refused delete: %v", err)
		}
	}

	// The cloud's next version replaces the local copy; nothing older does.
	k := store.ObjectKey{Component: "kubelet", Resource: podsRes, Namespace: "ns1", Name: "pod-00001"}
	if err := st.PutObject(ctx, k, stored(t, testPod("ns1", "pod-00001", testNode, 99, nil), store.EncodingJSON)); err == nil {
		t.Fatal("an older cloud copy overwrote the cache")
	}
	if err := st.PutObject(ctx, k, stored(t, testPod("ns1", "pod-00001", testNode, 2000, nil), store.EncodingJSON)); err != nil {
		t.Fatalf("the cloud's newer copy was refused: %v", err)
	}
	p, _ := s.client(t, "kubelet", false).CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{})
	if p.Status.Phase != corev1.PodRunning || p.ResourceVersion != "2000" {
		t.Fatalf("after the cloud's copy: %s %s", p.Status.Phase, p.ResourceVersion)
	}
}

func TestDiscoveryAndEmptyCache(t *testing.T) {
	st := openStore(t)
	s := newServer(t, st, Options{})
	cs := s.client(t, "kubectl", false)
	// Empty cache: clear errors.
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Fatalf("empty cache /version: %v", err)
	}
	_, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("empty cache list: %v", err)
	}
	// /version and /api cached by another component serve kubectl too.
	ctx := context.Background()
	if err := st.PutRaw(ctx, "kubelet", "/version", "application/json", []byte(`{"major":"1","minor":"36","gitVersion":"v1.36.3"}`)); err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil || v.GitVersion != "v1.36.3" {
		t.Fatalf("/version: %v %+v", err, v)
	}
}

var _ = kubernetes.Interface(nil)
