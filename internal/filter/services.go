package filter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// ServiceStore is the hub's own view of every Service, kept by an informer,
// for servicetopology. The daemon runs it over the hub's own proxy port as
// component "yurthub", so its list and watch are cached like any response and a
// hub restarted offline still knows the Services.
// It is created first (NewServiceStore, handed to Env.Services) and started once
// the hub can reach itself (Start).
type ServiceStore struct {
	run     atomic.Pointer[runningStore]
	created time.Time // lookups before Start wait until created+serviceSyncWait at most

	topoMu sync.Mutex
	topo   map[string]string        // namespace/name -> name of the Services carrying topologyKeys
	names  atomic.Pointer[[]string] // their distinct names, for TopologyServiceNames
}

type runningStore struct {
	inf cache.SharedIndexInformer
	// reg is the handlers' registration: its HasSynced is true once they have
	// seen the first list (the informer's own HasSynced may come first: handlers
	// run behind it), so the set of topology Services is complete.
	reg cache.ResourceEventHandlerRegistration
	// waitUntil: lookups before the first list wait until then at most.
	waitUntil time.Time
}

// NewServiceStore returns a store that knows no Service until Start.
func NewServiceStore() *ServiceStore { return &ServiceStore{created: time.Now()} }

// serviceSyncWait bounds how long a lookup waits for the first list: a filtered
// response that arrives before it would otherwise pass unfiltered and be cached
// so (OpenYurt's filter waits for its informers without a bound).
const serviceSyncWait = 10 * time.Second

// Start starts the Service informer over c (a core/v1 REST client); it stops
// with ctx. A second call does nothing. onTopologyChange is called (from the informer's goroutine)
// when a Service's openyurt.io/topologyKeys annotation appears, changes or goes,
// or a Service carrying it is added or deleted after the first list.
func (s *ServiceStore) Start(ctx context.Context, c rest.Interface, log *slog.Logger, onTopologyChange func(ns, name string)) {
	if s.run.Load() != nil {
		return
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			out := &corev1.ServiceList{}
			err := c.Get().UseProtobufAsDefault().Resource("services").VersionedParams(&o, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.Watch = true
			return c.Get().UseProtobufAsDefault().Resource("services").VersionedParams(&o, metav1.ParameterCodec).Watch(ctx)
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, c), &corev1.Service{},
		cache.SharedIndexInformerOptions{ResyncPeriod: 0})
	track := func(svc *corev1.Service, present bool) {
		s.topoMu.Lock()
		defer s.topoMu.Unlock()
		key := svc.Namespace + "/" + svc.Name
		if _, had := s.topo[key]; had == present {
			return
		}
		if s.topo == nil {
			s.topo = map[string]string{}
		}
		if present {
			s.topo[key] = svc.Name
		} else {
			delete(s.topo, key)
		}
		seen := map[string]bool{}
		names := make([]string, 0, len(s.topo))
		for _, n := range s.topo {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		s.names.Store(&names)
	}
	changed := func(svc *corev1.Service, why string) {
		if onTopologyChange == nil || !inf.HasSynced() {
			return
		}
		log.Info("service topology changed", slog.String("service", svc.Namespace+"/"+svc.Name), slog.String("change", why),
			slog.String(topologyKeysAnnotation, svc.Annotations[topologyKeysAnnotation]))
		onTopologyChange(svc.Namespace, svc.Name)
	}
	reg, _ := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if svc, ok := obj.(*corev1.Service); ok && svc.Annotations[topologyKeysAnnotation] != "" {
				track(svc, true)
				changed(svc, "added")
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Service)
			n, ok2 := newObj.(*corev1.Service)
			if ok1 && ok2 && o.Annotations[topologyKeysAnnotation] != n.Annotations[topologyKeysAnnotation] {
				track(n, n.Annotations[topologyKeysAnnotation] != "")
				changed(n, "annotation")
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if svc, ok := obj.(*corev1.Service); ok && svc.Annotations[topologyKeysAnnotation] != "" {
				track(svc, false)
				changed(svc, "deleted")
			}
		},
	})
	if !s.run.CompareAndSwap(nil, &runningStore{inf: inf, reg: reg, waitUntil: time.Now().Add(serviceSyncWait)}) {
		return
	}
	go inf.RunWithContext(ctx)
}

// Service returns the Service namespace/name, ErrNotFound when the store does not
// hold it. Before the first list it waits, until serviceSyncWait after the
// store started at most.
func (s *ServiceStore) Service(ns, name string) (*corev1.Service, error) {
	r := s.run.Load()
	// The daemon starts the store once the hub can reach itself, just after it
	// serves: a response filtered before that waits for it too (without the wait
	// kube-proxy's first list, served by the multiplexer from its first request,
	// passed unfiltered: TestFiltersThroughHub in a fresh-clone CI run).
	for r == nil && time.Since(s.created) < serviceSyncWait {
		time.Sleep(50 * time.Millisecond)
		r = s.run.Load()
	}
	if r == nil {
		return nil, fmt.Errorf("services not watched yet")
	}
	if !r.inf.HasSynced() {
		for !r.inf.HasSynced() && time.Now().Before(r.waitUntil) {
			time.Sleep(50 * time.Millisecond)
		}
		if !r.inf.HasSynced() {
			return nil, fmt.Errorf("services not listed yet")
		}
	}
	obj, ok, err := r.inf.GetIndexer().GetByKey(ns + "/" + name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return obj.(*corev1.Service), nil
}

// TopologyServiceNames implements TopologyNamer: the names of the Services that
// carry openyurt.io/topologyKeys, once the handlers that keep the set have seen
// the first list (their registration's HasSynced; the informer's own HasSynced
// can turn true while they are still behind, and a slice skipped then would pass
// unfiltered: TestFiltersThroughHub caught it in a fresh-clone CI run).
func (s *ServiceStore) TopologyServiceNames() ([]string, bool) {
	r := s.run.Load()
	if r == nil || r.reg == nil || !r.reg.HasSynced() {
		return nil, false
	}
	if p := s.names.Load(); p != nil {
		return *p, true
	}
	return nil, true
}

// HasSynced reports whether the first list is in.
func (s *ServiceStore) HasSynced() bool {
	r := s.run.Load()
	return r != nil && r.inf.HasSynced()
}
