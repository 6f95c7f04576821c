package filter

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
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

// maxTopologyNames bounds the names Skips looks for: each is a search through the
// object's bytes (with the bench's 50 such Services the searches took 40% of the
// hub's CPU on a 10k-slice list). With more, the in-place rewrite (RewriteBytes),
// which reads the slice's own Service name once, decides instead.
const maxTopologyNames = 4

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

// RewriteBytes implements bytesRewriter: Apply's rewrite of an EndpointSlice on
// its JSON or protobuf bytes (rewriteJSON, rewriteProto).
func (f *serviceTopology) RewriteBytes(gvr schema.GroupVersionResource, data []byte, enc Encoding) ([]byte, Outcome, error) {
	if gvr.Resource != "endpointslices" {
		return nil, Unchanged, errNeedDecode
	}
	if enc == Protobuf {
		return f.rewriteProto(data)
	}
	return f.rewriteJSON(data)
}

// rewriteJSON is Apply's rewrite on a JSON EndpointSlice, in place: the endpoints outside the scope are cut out of the
// "endpoints" array and every other byte is kept (decoding and re-encoding a slice
// through its Go type made kube-proxy's 10k-slice JSON list 2.2-3.6x direct in make
// bench). Endpoints objects, and anything this walk does not expect, take the
// decoding path (errNeedDecode).
func (f *serviceTopology) rewriteJSON(data []byte) ([]byte, Outcome, error) {
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
	in, ok, err := f.scopeOf(ns, svcName)
	if err != nil || !ok || epsStart < 0 || string(data[epsStart:epsEnd]) == "null" {
		return data, Unchanged, err
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

// scopeOf looks up Service ns/name and returns the node test of its topologyKeys;
// ok is false when the slice is to be left as it is.
func (f *serviceTopology) scopeOf(ns, svcName string) (in func(string) bool, ok bool, err error) {
	if svcName == "" || f.env.Services == nil {
		return nil, false, nil
	}
	svc, err := f.env.Services.Service(ns, svcName)
	if errors.Is(err, ErrNotFound) || svc == nil && err == nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("service %s/%s: %w", ns, svcName, err)
	}
	in, ok = f.scope(svc.Annotations[topologyKeysAnnotation])
	return in, ok, nil
}

// Protobuf field numbers of discovery/v1 EndpointSlice and Endpoint and of
// meta/v1 ObjectMeta (k8s.io/api's generated.proto), and of a map entry.
const (
	pbSliceMetadata  = 1
	pbSliceEndpoints = 2
	pbMetaNamespace  = 3
	pbMetaLabels     = 11
	pbEndpointNode   = 6
	pbMapKey         = 1
	pbMapValue       = 2
)

// rewriteProto is Apply's rewrite on a protobuf EndpointSlice (the bare message
// of a list item, or a document in the "k8s\x00" envelope), in place: the
// out-of-scope endpoints fields are cut out of the message and every other byte
// is kept. Anything it does not expect takes the decoding path.
func (f *serviceTopology) rewriteProto(data []byte) ([]byte, Outcome, error) {
	msg := data
	var u *runtime.Unknown
	if bytes.HasPrefix(data, protoMagic) {
		u = &runtime.Unknown{}
		if err := u.Unmarshal(data[len(protoMagic):]); err != nil || u.ContentEncoding != "" ||
			u.Kind != "" && u.Kind != "EndpointSlice" {
			return nil, Unchanged, errNeedDecode
		}
		msg = u.Raw
	}
	var ns, svcName string
	type span struct {
		start, end int
		node       string
	}
	var eps []span
	err := protoFields(msg, func(num protowire.Number, typ protowire.Type, v []byte, start, end int) error {
		switch {
		case num == pbSliceMetadata && typ == protowire.BytesType:
			return protoFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _, _ int) error {
				switch {
				case num == pbMetaNamespace && typ == protowire.BytesType:
					ns = string(v)
				case num == pbMetaLabels && typ == protowire.BytesType:
					var key, val string
					if err := protoFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _, _ int) error {
						if typ == protowire.BytesType && num == pbMapKey {
							key = string(v)
						} else if typ == protowire.BytesType && num == pbMapValue {
							val = string(v)
						}
						return nil
					}); err != nil {
						return err
					}
					if key == discoveryv1.LabelServiceName {
						svcName = val
					}
				}
				return nil
			})
		case num == pbSliceEndpoints && typ == protowire.BytesType:
			sp := span{start: start, end: end}
			if err := protoFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _, _ int) error {
				if num == pbEndpointNode && typ == protowire.BytesType {
					sp.node = string(v)
				}
				return nil
			}); err != nil {
				return err
			}
			eps = append(eps, sp)
		}
		return nil
	})
	if err != nil {
		return nil, Unchanged, errNeedDecode
	}
	in, ok, err := f.scopeOf(ns, svcName)
	if err != nil || !ok || len(eps) == 0 {
		return data, Unchanged, err
	}
	out := make([]byte, 0, len(msg))
	at, dropped := 0, 0
	for _, e := range eps {
		if e.node != "" && in(e.node) {
			continue
		}
		out = append(out, msg[at:e.start]...)
		at = e.end
		dropped++
	}
	if dropped == 0 {
		return data, Unchanged, nil
	}
	out = append(out, msg[at:]...)
	if u == nil {
		return out, Rewritten, nil
	}
	u.Raw = out
	b, err := marshalEnvelope(u)
	if err != nil {
		return nil, Unchanged, errNeedDecode
	}
	return b, Rewritten, nil
}

// protoFields calls fn with each field of the protobuf message b: its number, wire
// type, value (the bytes of a length-delimited field, nil otherwise) and the
// offsets [start, end) of the whole field, tag included. A malformed message is
// an error.
func protoFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, start, end int) error) error {
	for at := 0; at < len(b); {
		num, typ, n := protowire.ConsumeTag(b[at:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		start := at
		at += n
		var v []byte
		if typ == protowire.BytesType {
			val, m := protowire.ConsumeBytes(b[at:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			v, at = val, at+m
		} else {
			m := protowire.ConsumeFieldValue(num, typ, b[at:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			at += m
		}
		if err := fn(num, typ, v, start, at); err != nil {
			return err
		}
	}
	return nil
}
