package cachemgr

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fakeConfigAPI is just enough of an apiserver for the cache_agents ConfigMap
// watch: a list that can fail, watches fed by the test, the watch-list request
// (sendInitialEvents) refused as an old apiserver does.
type fakeConfigAPI struct {
	t  *testing.T
	ns string // namespace of the ConfigMap; "" = ConfigMapNamespace

	mu        sync.Mutex
	value     string // cache_agents; "" with deleted
	deleted   bool
	rv        int
	listFails int // answer this many lists with 500
	lists     int
	watches   int

	events chan string   // watch event lines for the open watch
	end    chan struct{} // ends the open watch
}

func (f *fakeConfigAPI) cm() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace(), Name: ConfigMapName, ResourceVersion: fmt.Sprint(f.rv)},
		Data:       map[string]string{CacheAgentsKey: f.value},
	}
}

func (f *fakeConfigAPI) namespace() string {
	if f.ns == "" {
		return ConfigMapNamespace
	}
	return f.ns
}

func (f *fakeConfigAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := "/api/v1/namespaces/" + f.namespace() + "/configmaps"
	q := r.URL.Query()
	if r.URL.Path != path || q.Get("fieldSelector") != "metadata.name="+ConfigMapName {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	if a := r.Header.Get("Accept"); a != "application/vnd.kubernetes.protobuf,application/json" {
		f.t.Errorf("Accept %q", a)
	}
	w.Header().Set("Content-Type", "application/json")
	status := func(code int, reason string) {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d}`, reason, code)
	}
	if q.Get("watch") != "true" {
		f.mu.Lock()
		f.lists++
		if f.listFails > 0 {
			f.listFails--
			f.mu.Unlock()
			status(http.StatusInternalServerError, "InternalError")
			return
		}
		list := &corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMapList"},
			ListMeta: metav1.ListMeta{ResourceVersion: fmt.Sprint(f.rv)}}
		if !f.deleted {
			list.Items = append(list.Items, *f.cm())
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(list)
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		status(http.StatusBadRequest, "BadRequest")
		return
	}
	f.mu.Lock()
	f.watches++
	f.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case line := <-f.events:
			fmt.Fprintln(w, line)
			w.(http.Flusher).Flush()
		case <-f.end:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// event changes the ConfigMap (value, or deleted) and returns the watch event line.
func (f *fakeConfigAPI) event(typ, value string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.value, f.deleted = value, typ == "DELETED"
	obj, _ := json.Marshal(f.cm())
	return fmt.Sprintf(`{"type":%q,"object":%s}`, typ, obj)
}

func (f *fakeConfigAPI) counts() (lists, watches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.watches
}

// TestWatchConfigNamespace: with --namespace (Options.ConfigNamespace) the
// yurt-hub-cfg ConfigMap is read from that namespace (the fake answers nothing else).
func TestWatchConfigNamespace(t *testing.T) {
	f := &fakeConfigAPI{t: t, ns: "openyurt-system", value: "a1", rv: 10, events: make(chan string), end: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	m, _ := newMgr(t, Options{ConfigNamespace: "openyurt-system"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.WatchConfigFromREST(ctx, &rest.Config{Host: srv.URL, UserAgent: "yurthub", QPS: -1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !m.agents.Load().has("a1") {
		if time.Now().After(deadline) {
			t.Fatalf("cache_agents of openyurt-system/yurt-hub-cfg not applied: %v", m.CacheAgents())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchConfig follows cache_agents through a failed first list, live watch
// events, a watch that ends (rewatch), an expired watch (relist, catching up with a
// change made meanwhile) and the ConfigMap's deletion (defaults).
func TestWatchConfig(t *testing.T) {
	f := &fakeConfigAPI{t: t, value: "a1", rv: 10, listFails: 1, events: make(chan string), end: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	m, _ := newMgr(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.WatchConfigFromREST(ctx, &rest.Config{Host: srv.URL, UserAgent: "yurthub", QPS: -1}); err != nil {
		t.Fatal(err)
	}
	has := func(c string) bool { return m.agents.Load().has(c) }
	waitAgents := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				lists, watches := f.counts()
				t.Fatalf("%s: not within 10s (agents %v, %d lists, %d watches)", what, m.CacheAgents(), lists, watches)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send := func(line string) {
		t.Helper()
		select {
		case f.events <- line:
		case <-time.After(10 * time.Second):
			t.Fatal("no watch open for 10s")
		}
	}

	waitAgents("a1 after the failed list is retried", func() bool { return has("a1") })
	if lists, _ := f.counts(); lists < 2 {
		t.Fatalf("%d lists: the failed one was not retried", lists)
	}
	if !has("kubelet") {
		t.Fatal("the defaults are gone")
	}

	send(f.event("MODIFIED", "a2, A3"))
	waitAgents("a2,a3 from a watch event", func() bool { return has("a2") && has("a3") && !has("a1") })

	// The apiserver ends the watch: the informer watches again from where it was.
	_, watches := f.counts()
	f.end <- struct{}{}
	send(f.event("MODIFIED", "a4"))
	waitAgents("a4 on the new watch", func() bool { return has("a4") && !has("a2") })
	if lists, w := f.counts(); lists != 2 || w != watches+1 {
		t.Fatalf("after a closed watch: %d lists, %d watches (want 2, %d)", lists, w, watches+1)
	}

	// The watch expires (410 in the stream) while the ConfigMap changed: a relist.
	f.event("MODIFIED", "*")
	send(`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"too old resource version"}}`)
	waitAgents(`"*" after the relist`, func() bool { return m.agents.Load().all })
	if lists, _ := f.counts(); lists != 3 {
		t.Fatalf("%d lists after an expired watch, want 3", lists)
	}

	send(f.event("DELETED", ""))
	waitAgents("the defaults after the deletion", func() bool {
		a := m.agents.Load()
		return !a.all && len(a.names) == len(DefaultCacheAgents)
	})
	if got := strings.Join(m.CacheAgents(), ","); !strings.Contains(got, "kubelet") {
		t.Fatalf("agents after deletion: %s", got)
	}

	// ctx ends the informer: its watch is closed.
	cancel()
	waitAgents("the watch closed after ctx", func() bool {
		select {
		case f.events <- "":
			return false
		default:
			return true
		}
	})
}
