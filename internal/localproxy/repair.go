package localproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Local EndpointSlice repair (openyurtio/openyurt#2810).
//
// A node that reboots during an outage gets its pods back with new IPs, but the
// EndpointSlices and Endpoints in the cache still name the old ones: ClusterIP
// and DNS to the node's own pods are dead until the cloud returns, because the
// cloud's endpoint controllers, which would rewrite them, cannot be reached.
//
// Offline, kubelet's pod status writes are applied to the cache (serveWrite).
// When one changes a pod's IPs or its readiness, repairEndpoints rewrites every
// cached EndpointSlice (discovery.k8s.io/v1) and Endpoints (v1), of every
// component, that names the pod (targetRef uid, or kind Pod with its namespace
// and name): the pod's addresses become its new IPs of the slice's address
// family, and ready/serving follow the pod's Ready condition (an Endpoints
// address moves between addresses and notReadyAddresses). The rewritten object
// keeps its cached resourceVersion (only the cloud hands out new ones) and is
// sent as MODIFIED to the local watches of that component and resource whose
// namespace and selectors match it.
//
// When the cloud returns, a local watch that delivered such a repair ends with a
// 410 Expired ERROR event rather than quietly: its client relists from the cloud,
// so the cloud's objects replace the local ones in the client and in the cache
// (the list goes through the ordinary proxy and cache path).

// localEvent is an object the offline path changed in the cache.
type localEvent struct {
	key store.ObjectKey
	obj store.Object
}

// notifier fans local changes out to the local watches of a resource.
type notifier struct {
	mu   sync.Mutex
	next int
	subs map[int]subscriber
}

type subscriber struct {
	component string
	resource  store.Resource
	ch        chan localEvent
}

// subscribe registers a watch of component on resource. Events are dropped (and
// logged by publish) when the watch does not keep up: the channel holds 64.
func (n *notifier) subscribe(component string, r store.Resource) (<-chan localEvent, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[int]subscriber{}
	}
	id := n.next
	n.next++
	ch := make(chan localEvent, 64)
	n.subs[id] = subscriber{component: component, resource: r, ch: ch}
	return ch, func() {
		n.mu.Lock()
		delete(n.subs, id)
		n.mu.Unlock()
	}
}

// publish hands ev to the watches of its component and resource; it returns how
// many got it and how many were too far behind.
func (n *notifier) publish(ev localEvent) (sent, dropped int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		if s.component != ev.key.Component || s.resource != ev.key.Resource {
			continue
		}
		select {
		case s.ch <- ev:
			sent++
		default:
			dropped++
		}
	}
	return sent, dropped
}

var (
	resEndpointSlices = store.Resource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	resEndpoints      = store.Resource{Version: "v1", Resource: "endpoints"}
)

// podEndpointState is what endpoints take from a pod.
type podEndpointState struct {
	uid, namespace, name string
	ips                  []string
	ready                bool
}

func podState(doc []byte) (podEndpointState, error) {
	var p corev1.Pod
	if err := json.Unmarshal(doc, &p); err != nil {
		return podEndpointState{}, err
	}
	s := podEndpointState{uid: string(p.UID), namespace: p.Namespace, name: p.Name}
	for _, ip := range p.Status.PodIPs {
		s.ips = append(s.ips, ip.IP)
	}
	if len(s.ips) == 0 && p.Status.PodIP != "" {
		s.ips = []string{p.Status.PodIP}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			s.ready = c.Status == corev1.ConditionTrue
		}
	}
	return s, nil
}

// afterPodStatusWrite runs after kubelet's pod status write was applied offline:
// orig and result are the pod before and after (JSON).
func (h *Handler) afterPodStatusWrite(ctx context.Context, info *requestinfo.Info, orig, result []byte) {
	if info.APIGroup != "" || info.Resource != "pods" || info.Subresource != "status" {
		return
	}
	before, err1 := podState(orig)
	after, err2 := podState(result)
	if err := errors.Join(err1, err2); err != nil {
		h.log.Warn("endpoint repair: cannot read the pod", slog.String("pod", info.Namespace+"/"+info.Name), slog.Any("err", err))
		return
	}
	if len(after.ips) == 0 || slices.Equal(before.ips, after.ips) && before.ready == after.ready {
		return
	}
	n, notified, err := h.repairEndpoints(ctx, after)
	if err != nil {
		h.log.Warn("endpoint repair failed", slog.String("pod", info.Namespace+"/"+info.Name), slog.Any("err", err))
	}
	if n > 0 {
		h.log.Info("endpoints repaired offline", slog.String("pod", after.namespace+"/"+after.name),
			slog.Any("old_ips", before.ips), slog.Any("new_ips", after.ips), slog.Bool("ready", after.ready),
			slog.Int("objects", n), slog.Int("watches_notified", notified))
	}
}

// repairEndpoints rewrites the cached slices and Endpoints that name pod and
// notifies the local watches. It returns how many objects changed.
func (h *Handler) repairEndpoints(ctx context.Context, pod podEndpointState) (changed, notified int, err error) {
	type update struct {
		key store.ObjectKey
		old store.Object
		doc []byte
	}
	var ups []update
	for _, res := range []store.Resource{resEndpointSlices, resEndpoints} {
		werr := h.st.Walk(ctx, store.Filter{Resource: res, Namespace: pod.namespace}, func(k store.ObjectKey, o store.Object) error {
			if k.Resource != res {
				return nil
			}
			doc, err := asJSON(o)
			if err != nil {
				return nil // not readable: left as it is
			}
			var out []byte
			if res == resEndpointSlices {
				out, err = repairSlice(doc, pod)
			} else {
				out, err = repairEndpointsDoc(doc, pod)
			}
			if err == nil && out != nil {
				ups = append(ups, update{key: k, old: o, doc: out})
			}
			return nil
		})
		err = errors.Join(err, werr)
	}
	for _, u := range ups {
		data, e := jsonToStored(u.doc, u.old.Encoding)
		if e != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", u.key, e))
			continue
		}
		o := store.Object{Namespace: u.old.Namespace, Name: u.old.Name, ResourceVersion: u.old.ResourceVersion, Encoding: u.old.Encoding, Data: data}
		if e := h.st.UpdateObject(ctx, u.key, u.old.ResourceVersion, o); e != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", u.key, e))
			continue
		}
		changed++
		if f := h.onLocal.Load(); f != nil {
			(*f)(u.key, o)
		}
		sent, dropped := h.notify.publish(localEvent{key: u.key, obj: o})
		notified += sent
		if dropped > 0 {
			h.log.Warn("endpoint repair: a local watch is too far behind; it misses this change until it relists", slog.String("object", u.key.String()), slog.Int("watches", dropped))
		}
	}
	return changed, notified, err
}

func refersTo(ref *corev1.ObjectReference, pod podEndpointState) bool {
	if ref == nil {
		return false
	}
	if ref.UID != "" && pod.uid != "" {
		return string(ref.UID) == pod.uid
	}
	return (ref.Kind == "" || ref.Kind == "Pod") && ref.Namespace == pod.namespace && ref.Name == pod.name
}

// ipsOfFamily keeps the IPs of one address family (IPv4/IPv6 slices; FQDN none).
func ipsOfFamily(ips []string, t discoveryv1.AddressType) []string {
	var out []string
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (t == discoveryv1.AddressTypeIPv4) && t != discoveryv1.AddressTypeFQDN {
			out = append(out, s)
		}
	}
	return out
}

// repairSlice returns the rewritten slice, or nil when it does not name the pod or
// already says what the pod says.
func repairSlice(doc []byte, pod podEndpointState) ([]byte, error) {
	var s discoveryv1.EndpointSlice
	if err := json.Unmarshal(doc, &s); err != nil {
		return nil, err
	}
	ips := ipsOfFamily(pod.ips, s.AddressType)
	changed := false
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		if !refersTo(e.TargetRef, pod) || len(ips) == 0 {
			continue
		}
		if !slices.Equal(e.Addresses, ips) {
			e.Addresses = slices.Clone(ips)
			changed = true
		}
		if e.Conditions.Ready == nil || *e.Conditions.Ready != pod.ready {
			r := pod.ready
			e.Conditions.Ready = &r
			changed = true
		}
		if e.Conditions.Serving != nil && *e.Conditions.Serving != pod.ready {
			r := pod.ready
			e.Conditions.Serving = &r
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	return json.Marshal(&s)
}

// repairEndpointsDoc is repairSlice for a v1 Endpoints: the pod's address (first
// IP of the subset's family) moves to addresses or notReadyAddresses.
func repairEndpointsDoc(doc []byte, pod podEndpointState) ([]byte, error) {
	var e corev1.Endpoints
	if err := json.Unmarshal(doc, &e); err != nil {
		return nil, err
	}
	changed := false
	for i := range e.Subsets {
		ss := &e.Subsets[i]
		var keepReady, keepNot []corev1.EndpointAddress
		var moved []corev1.EndpointAddress
		for _, lists := range []struct {
			in  []corev1.EndpointAddress
			out *[]corev1.EndpointAddress
		}{{ss.Addresses, &keepReady}, {ss.NotReadyAddresses, &keepNot}} {
			for _, a := range lists.in {
				if !refersTo(a.TargetRef, pod) {
					*lists.out = append(*lists.out, a)
					continue
				}
				old := a.IP
				fam := discoveryv1.AddressTypeIPv4
				if ip := net.ParseIP(old); ip != nil && ip.To4() == nil {
					fam = discoveryv1.AddressTypeIPv6
				}
				if ips := ipsOfFamily(pod.ips, fam); len(ips) > 0 {
					a.IP = ips[0]
				}
				moved = append(moved, a)
				if a.IP != old || (lists.out == &keepReady) != pod.ready {
					changed = true
				}
			}
		}
		if pod.ready {
			keepReady = append(keepReady, moved...)
		} else {
			keepNot = append(keepNot, moved...)
		}
		ss.Addresses, ss.NotReadyAddresses = keepReady, keepNot
	}
	if !changed {
		return nil, nil
	}
	return json.Marshal(&e)
}
