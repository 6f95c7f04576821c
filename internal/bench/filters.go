package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The servicetopology figures (issue 16): --large EndpointSlices of Services
// annotated openyurt.io/topologyKeys=kubernetes.io/hostname, each with 4
// endpoints of which one is on the bench node, listed by a kube-proxy-shaped
// client through the hub (filtered, item by item) and directly; and the hub's
// anonymous memory (heap, stacks) at its peak during the hub's lists, above idle.

const (
	sliceNS      = "bench-slices"
	sliceSvc     = 50 // Services the slices belong to
	kubeProxyUA  = "kube-proxy/v1.36.3 (linux/amd64) kubernetes/bench"
	sliceListURL = "/apis/discovery.k8s.io/v1/namespaces/" + sliceNS + "/endpointslices"
)

func (b *bench) populateSlices() error {
	ctx := context.Background()
	cfg := b.c.AdminConfig()
	cfg.ContentType = protobuf
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{}
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sliceNS}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for i := 0; i < sliceSvc; i++ {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%02d", i),
			Annotations: map[string]string{"openyurt.io/topologyKeys": "kubernetes.io/hostname"}},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		if _, err := cs.CoreV1().Services(sliceNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	began := time.Now()
	jobs := make(chan int)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if _, err := cs.DiscoveryV1().EndpointSlices(sliceNS).Create(ctx, benchSlice(i), metav1.CreateOptions{}); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for i := 0; i < b.f.large; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("create endpointslices: %w", *e)
	}
	log.Printf("created %d EndpointSlices in %.1fs", b.f.large, time.Since(began).Seconds())
	return nil
}

func benchSlice(i int) *discoveryv1.EndpointSlice {
	ready, port, proto, pname := true, int32(8080), corev1.ProtocolTCP, "http"
	var eps []discoveryv1.Endpoint
	for j := 0; j < 4; j++ {
		n := fmt.Sprintf("other-node-%d", j)
		if j == 0 {
			n = node
		}
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", j+1, i/250, i%250+1)}, NodeName: &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: sliceNS, Name: fmt.Sprintf("pod-%05d-%d", i, j)}})
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("slice-%05d", i), Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%02d", i%sliceSvc)}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		Ports: []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
	}
}

// sliceFigures lists the slices as kube-proxy (its User-Agent: servicetopology
// applies through the hub), --list-runs times, the target that goes first
// alternating run by run (inTurn), and samples the
// hub's anonymous memory during the hub's lists.
func (b *bench) sliceFigures() {
	label := countLabel(b.f.large)
	time.Sleep(2 * time.Second)
	idle := b.hub.mem().anon
	for _, enc := range []struct{ label, accept string }{{"JSON", "application/json"}, {"protobuf", protobuf}} {
		name := fmt.Sprintf("LIST %s EndpointSlices as kube-proxy, servicetopology on (%s)", label, enc.label)
		failed := map[string]bool{}
		for _, t := range b.targets() {
			_, _ = doAs(t, sliceListURL, enc.accept, kubeProxyUA)
		}
		var peak atomic.Int64
		if b.f.profileDir != "" {
			go b.hub.cpuProfile("slices-"+enc.label+".pprof", 3)
		}
		for run := 0; run < b.f.listRuns; run++ {
			for _, t := range inTurn(b.targets(), run) {
				if failed[t.name] {
					continue
				}
				stop := make(chan struct{})
				sampled := make(chan struct{})
				if t.name == "hub" {
					go func() {
						defer close(sampled)
						for {
							if m := b.hub.mem(); m.anon > peak.Load() {
								peak.Store(m.anon)
							}
							select {
							case <-stop:
								return
							case <-time.After(20 * time.Millisecond):
							}
						}
					}()
				} else {
					close(sampled)
				}
				t0 := time.Now()
				_, err := doAs(t, sliceListURL, enc.accept, kubeProxyUA)
				b.res.add(name, "ms", t.name, float64(time.Since(t0).Microseconds())/1000, err)
				close(stop)
				<-sampled
				failed[t.name] = err != nil
			}
		}
		b.res.add(fmt.Sprintf("↳ hub anonymous memory above idle at the peak of those lists (%s)", enc.label), "MiB", "hub",
			float64(peak.Load()-idle)/(1<<20), nil)
	}
}
