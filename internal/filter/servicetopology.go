package filter

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/wire"
)

// serviceTopology is filter "servicetopology".
//
//   - Components: kube-proxy, coredns, nginx-ingress-controller.
//   - Resources and verbs: endpointslices (discovery.k8s.io/v1) and endpoints;
//     list, watch.
//   - Rewrite: when the slice's Service (label kubernetes.io/service-name; for
//     Endpoints the object's own name) carries the annotation
//     openyurt.io/topologyKeys, only the endpoints in that scope are kept:
//     "kubernetes.io/hostname" keeps those whose nodeName is this node;
//     "openyurt.io/nodepool" or "kubernetes.io/zone" keeps those on a node of this
//     node's NodePool. An endpoint without a nodeName is in no scope. A slice may
//     end up with no endpoints; it is still sent (kube-proxy must learn that the
//     other endpoints are gone). For Endpoints, addresses and notReadyAddresses
//     are filtered and empty subsets removed.
//   - Pool scope needs --enable-pool-service-topology (or --enable-node-pool) and
//     a known membership: without them pool-scoped objects are left unfiltered;
//     a node in no pool falls back to its own node's scope, as in OpenYurt.
//   - A Service the hub does not know (not listed yet, deleted) leaves the
//     object unfiltered.
type serviceTopology struct{ env *Env }

const (
	topologyKeysAnnotation = "openyurt.io/topologyKeys"
	topologyNode           = "kubernetes.io/hostname"
	topologyZone           = "kubernetes.io/zone"
	topologyPool           = "openyurt.io/nodepool"
)

func (f *serviceTopology) Name() string { return ServiceTopology }

// maxTopologyNames bounds the names Skips looks for; with more Services carrying
// topologyKeys every object is decoded.
const maxTopologyNames = 64

// Skips implements Skipper: an object keeps its bytes when no Service carrying
// openyurt.io/topologyKeys is named anywhere in them (a slice names its Service
// in the kubernetes.io/service-name label, Endpoints by its own name; both
// encodings hold the name as it is). Most Services carry no such annotation, so
// most slices of kube-proxy's lists pass without being decoded.
func (f *serviceTopology) Skips(data []byte) bool {
	if f.env.Services == nil {
		return true // Apply leaves every object as it is
	}
	tn, ok := f.env.Services.(TopologyNamer)
	if !ok {
		return false
	}
	names, known := tn.TopologyServiceNames()
	if !known || len(names) > maxTopologyNames {
		return false
	}
	for _, n := range names {
		if bytes.Contains(data, []byte(n)) {
			return false
		}
	}
	return true
}

func (f *serviceTopology) Apply(obj runtime.Object) (Outcome, error) {
	var ns, svcName string
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		ns, svcName = o.Namespace, o.Labels[discoveryv1.LabelServiceName]
	case *corev1.Endpoints:
		ns, svcName = o.Namespace, o.Name
	default:
		return Unchanged, nil
	}
	if svcName == "" || f.env.Services == nil {
		return Unchanged, nil
	}
	svc, err := f.env.Services.Service(ns, svcName)
	if errors.Is(err, ErrNotFound) || svc == nil && err == nil {
		return Unchanged, nil
	}
	if err != nil {
		return Unchanged, fmt.Errorf("service %s/%s: %w", ns, svcName, err)
	}
	in, ok := f.scope(svc.Annotations[topologyKeysAnnotation])
	if !ok {
		return Unchanged, nil
	}
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		var kept []discoveryv1.Endpoint
		for _, e := range o.Endpoints {
			if e.NodeName != nil && in(*e.NodeName) {
				kept = append(kept, e)
			}
		}
		if len(kept) == len(o.Endpoints) {
			return Unchanged, nil
		}
		o.Endpoints = kept
		return Rewritten, nil
	case *corev1.Endpoints:
		return filterEndpoints(o, in), nil
	}
	return Unchanged, nil
}

// scope returns the node test for a topologyKeys value, ok=false when the
// object is to be left unfiltered.
func (f *serviceTopology) scope(keys string) (in func(node string) bool, ok bool) {
	node := func(n string) bool { return n == f.env.NodeName }
	switch keys {
	case topologyNode:
		return node, true
	case topologyPool, topologyZone:
		if !f.env.PoolTopology || f.env.Pool == nil {
			return nil, false
		}
		pool := f.env.Pool.PoolName()
		if pool == "" {
			return node, true
		}
		members, known := f.env.Pool.PoolNodes(pool)
		if !known {
			return nil, false
		}
		return func(n string) bool { return slices.Contains(members, n) }, true
	}
	return nil, false
}

func filterEndpoints(e *corev1.Endpoints, in func(string) bool) Outcome {
	keep := func(as []corev1.EndpointAddress) ([]corev1.EndpointAddress, bool) {
		var out []corev1.EndpointAddress
		for _, a := range as {
			if a.NodeName != nil && in(*a.NodeName) {
				out = append(out, a)
			}
		}
		return out, len(out) != len(as)
	}
	changed := false
	var subsets []corev1.EndpointSubset
	for _, s := range e.Subsets {
		var c1, c2 bool
		s.Addresses, c1 = keep(s.Addresses)
		s.NotReadyAddresses, c2 = keep(s.NotReadyAddresses)
		changed = changed || c1 || c2
		if len(s.Addresses) == 0 && len(s.NotReadyAddresses) == 0 {
			changed = true
			continue
		}
		subsets = append(subsets, s)
	}
	if !changed {
		return Unchanged
	}
	e.Subsets = subsets
	return Rewritten
}

// RewriteJSON implements jsonRewriter: the same rewrite as Apply on a JSON
// EndpointSlice, in place: the endpoints outside the scope are cut out of the
// "endpoints" array and every other byte is kept (decoding and re-encoding a slice
// through its Go type made kube-proxy's 10k-slice JSON list 2.2-3.6x direct in make
// bench). Endpoints objects, and anything this walk does not expect, take the
// decoding path (errNeedDecode).
func (f *serviceTopology) RewriteJSON(gvr schema.GroupVersionResource, data []byte) ([]byte, Outcome, error) {
	if gvr.Resource != "endpointslices" {
		return nil, Unchanged, errNeedDecode
	}
	var ns, svcName string
	epsStart, epsEnd := -1, -1
	err := wire.JSONMembers(data, func(key string, vs, ve int) error {
		switch key {
		case "kind":
			if k, err := wire.JSONString(data[vs:ve]); err != nil || k != "EndpointSlice" {
				return errNeedDecode
			}
		case "metadata":
			return wire.JSONMembers(data[vs:ve], func(key string, ms, me int) error {
				v := data[vs+ms : vs+me]
				switch key {
				case "namespace":
					s, err := wire.JSONString(v)
					if err != nil {
						return errNeedDecode
					}
					ns = s
				case "labels":
					if string(v) == "null" {
						return nil
					}
					return wire.JSONMembers(v, func(key string, ls, le int) error {
						if key == discoveryv1.LabelServiceName {
							s, err := wire.JSONString(v[ls:le])
							if err != nil {
								return errNeedDecode
							}
							svcName = s
						}
						return nil
					})
				}
				return nil
			})
		case "endpoints":
			epsStart, epsEnd = vs, ve
		}
		return nil
	})
	if err != nil {
		return nil, Unchanged, errNeedDecode
	}
	if svcName == "" || f.env.Services == nil {
		return data, Unchanged, nil
	}
	svc, err := f.env.Services.Service(ns, svcName)
	if errors.Is(err, ErrNotFound) || svc == nil && err == nil {
		return data, Unchanged, nil
	}
	if err != nil {
		return data, Unchanged, fmt.Errorf("service %s/%s: %w", ns, svcName, err)
	}
	in, ok := f.scope(svc.Annotations[topologyKeysAnnotation])
	if !ok || epsStart < 0 || string(data[epsStart:epsEnd]) == "null" {
		return data, Unchanged, nil
	}
	eps := data[epsStart:epsEnd]
	var kept [][2]int
	total := 0
	err = wire.JSONElements(eps, func(es, ee int) error {
		total++
		node := ""
		if err := wire.JSONMembers(eps[es:ee], func(key string, vs, ve int) error {
			if key == "nodeName" {
				if v := eps[es+vs : es+ve]; string(v) != "null" {
					s, err := wire.JSONString(v)
					if err != nil {
						return err
					}
					node = s
				}
			}
			return nil
		}); err != nil {
			return errNeedDecode
		}
		if node != "" && in(node) {
			kept = append(kept, [2]int{es, ee})
		}
		return nil
	})
	if err != nil {
		return nil, Unchanged, errNeedDecode
	}
	if len(kept) == total {
		return data, Unchanged, nil
	}
	out := make([]byte, 0, len(data))
	out = append(out, data[:epsStart]...)
	if len(kept) == 0 {
		out = append(out, "null"...) // as the apiserver writes a slice without endpoints
	} else {
		out = append(out, '[')
		for i, k := range kept {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, eps[k[0]:k[1]]...)
		}
		out = append(out, ']')
	}
	out = append(out, data[epsEnd:]...)
	return out, Rewritten, nil
}
