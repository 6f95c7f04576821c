// Package filter holds the hub's response filters: the seven object rewrites
// OpenYurt's YurtHub applies to what some node components read, so that pods and
// kube-proxy on an edge node reach the cloud through the hub and see only the
// endpoints and services that make sense on this node (REFERENCE section 6).
//
// # The API, one object at a time
//
// A Filter rewrites or drops one decoded object. A Chain is the filters that apply
// to one (component, verb, resource), in OpenYurt's registration order, built by
// Settings.ChainFor from the live configuration (flags plus the filter keys of
// ConfigMap yurt-hub-cfg). A Chain works on one object at a time, whatever carried
// it:
//
//   - Chain.Object takes a typed runtime.Object (a *corev1.Service, a
//     *discoveryv1.EndpointSlice, ...), rewrites it in place and says whether it is
//     kept.
//   - Chain.Bytes takes one encoded object: JSON (with or without kind/apiVersion,
//     as a list item is), protobuf inside the k8s envelope ("k8s\x00" + Unknown, as
//     a GET or a watch event carries it), or bare protobuf (a list item inside a
//     protobuf List). It returns the bytes to send in the same form: the input
//     itself when no filter changed anything (no re-encoding), new bytes when one
//     did, and keep=false when the object is dropped.
//   - Chain.NewWatch returns the per-stream state a watch needs: an object that
//     stops passing is sent as DELETED, one that starts passing as ADDED
//     (Watch.Event).
//
// The proxy's response path (streamed lists and watches) and the node-level
// multiplexer (which applies the chain per client on the way out of one shared
// upstream stream) both use this API; neither filters whole lists in memory.
//
// # Failure
//
// A filter that cannot decide (a Service it needs is unknown, the pool membership
// is not loaded yet) leaves the object as it is. A filter error, or an object that
// cannot be decoded, passes the object through unchanged: the error is returned
// next to the original bytes so the caller can log it, and counted. Filters check
// everything they need before they change an object, so an error never leaves a
// half-rewritten object behind. A response is never cut because of a filter.
package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/wire"
)

// The filter names, as OpenYurt v1.7 spells them (flags and yurt-hub-cfg use them).
const (
	MasterService         = "masterservice"
	ServiceEnvUpdater     = "serviceenvupdater"
	InClusterConfig       = "inclusterconfig"
	ServiceTopology       = "servicetopology"
	DiscardCloudService   = "discardcloudservice"
	NodePortIsolation     = "nodeportisolation"
	ForwardKubeSvcTraffic = "forwardkubesvctraffic"
)

// Outcome is what a filter did to one object.
type Outcome int

const (
	Unchanged Outcome = iota // left as it was
	Rewritten                // changed in place
	Dropped                  // must not reach the client
)

func (o Outcome) String() string {
	switch o {
	case Rewritten:
		return "rewritten"
	case Dropped:
		return "dropped"
	default:
		return "unchanged"
	}
}

// Filter rewrites or drops one object. Apply is called only with the Go types of
// the resources the filter is registered for (see Spec) and must not change obj
// when it returns an error.
type Filter interface {
	Name() string
	Apply(obj runtime.Object) (Outcome, error)
}

// Skipper is implemented by a filter that can tell from an object's encoded
// bytes (JSON or protobuf: both hold strings as they are) that it would keep the
// object as it is, without decoding it. A chain whose filters all say so passes
// the object on untouched: decoding and re-encoding every item is what filtering
// costs (serviceenvupdater runs on each of kubelet's pods, and almost none has the
// variables it rewrites).
type Skipper interface {
	Skips(data []byte) bool
}

// escapedJSON reports whether data may spell a string with JSON \u escapes, which
// a Skipper's search for plain bytes would miss ("by\u002dnode" is "by-node"):
// such an object is never skipped. The apiserver escapes only <, > and & (and
// non-UTF-8), so this costs nothing on what it sends.
func escapedJSON(data []byte) bool { return bytes.Contains(data, []byte(`\u`)) }

// bytesRewriter is implemented by a filter that can apply itself to an encoded
// object of resource gvr without decoding it into its Go type (servicetopology on
// EndpointSlices, JSON and protobuf): out is data itself when the outcome is
// Unchanged. It returns errNeedDecode for an object it cannot handle so, and the
// chain then takes the decoding path from the original bytes.
type bytesRewriter interface {
	RewriteBytes(gvr schema.GroupVersionResource, data []byte, enc Encoding) (out []byte, o Outcome, err error)
}

// errNeedDecode: the object needs the decoding path (bytesRewriter).
var errNeedDecode = errors.New("filter: object needs decoding")

// Encoding is how one object is encoded in Chain.Bytes.
type Encoding int

const (
	JSON     Encoding = iota
	Protobuf          // enveloped ("k8s\x00" + Unknown) or bare message, told apart by the prefix
)

// protoMagic prefixes every Kubernetes protobuf envelope (runtime.Unknown).
var protoMagic = wire.ProtoMagic

// marshalEnvelope writes u as a protobuf document ("k8s\x00" + Unknown), keeping
// every field the input envelope had (content type and encoding included).
func marshalEnvelope(u *runtime.Unknown) ([]byte, error) {
	b := make([]byte, len(protoMagic)+u.Size())
	copy(b, protoMagic)
	if _, err := u.MarshalToSizedBuffer(b[len(protoMagic):]); err != nil {
		return nil, err
	}
	return b, nil
}

// protoMessage is what the generated k8s.io/api types implement.
type protoMessage interface {
	runtime.Object
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// newObject returns an empty object of the Go type served for gvr, or nil when no
// filter handles that resource (or that version of it).
func newObject(gvr schema.GroupVersionResource) protoMessage {
	switch gvr {
	case corev1.SchemeGroupVersion.WithResource("services"):
		return &corev1.Service{}
	case corev1.SchemeGroupVersion.WithResource("endpoints"):
		return &corev1.Endpoints{}
	case corev1.SchemeGroupVersion.WithResource("configmaps"):
		return &corev1.ConfigMap{}
	case corev1.SchemeGroupVersion.WithResource("pods"):
		return &corev1.Pod{}
	case discoveryv1.SchemeGroupVersion.WithResource("endpointslices"):
		return &discoveryv1.EndpointSlice{}
	}
	return nil
}

// Chain is the filters for one (component, verb, resource), in order. It is
// immutable and safe for concurrent use; a configuration change builds new chains
// (a stream keeps the chain it started with).
type Chain struct {
	gvr     schema.GroupVersionResource
	filters []Filter
	count   func(filter string, o Outcome) // nil: not counted
	countE  func(filter string)
}

// Names returns the chain's filter names, in order.
func (c *Chain) Names() []string {
	out := make([]string, len(c.filters))
	for i, f := range c.filters {
		out[i] = f.Name()
	}
	return out
}

// Resource is the resource the chain was built for.
func (c *Chain) Resource() schema.GroupVersionResource { return c.gvr }

// NewObject returns an empty object of the chain's resource type, to decode into.
func (c *Chain) NewObject() runtime.Object { return newObject(c.gvr) }

// FilterError is an error of one filter on one object; the object passed through
// as the filter found it.
type FilterError struct {
	Filter string
	Object string // namespace/name
	Err    error
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("filter %s on %s: %v (object passed through unchanged)", e.Filter, e.Object, e.Err)
}

func (e *FilterError) Unwrap() error { return e.Err }

// Object runs the chain on obj (rewritten in place) and reports whether it is
// kept and whether any filter changed it. A filter's error is returned (joined
// when several fail) with the object as the other filters left it: the failing
// filter itself changed nothing.
func (c *Chain) Object(obj runtime.Object) (keep, changed bool, err error) {
	var errs []error
	for _, f := range c.filters {
		o, ferr := f.Apply(obj)
		if ferr != nil {
			errs = append(errs, &FilterError{Filter: f.Name(), Object: objectName(obj), Err: ferr})
			if c.countE != nil {
				c.countE(f.Name())
			}
			continue
		}
		if o != Unchanged && c.count != nil {
			c.count(f.Name(), o)
		}
		switch o {
		case Dropped:
			return false, changed, errors.Join(errs...)
		case Rewritten:
			changed = true
		}
	}
	return true, changed, errors.Join(errs...)
}

// Decoded is one object decoded by Chain.Decode, with what is needed to encode it
// back in the form it came in.
type Decoded struct {
	Obj      runtime.Object
	enc      Encoding
	envelope *runtime.Unknown // protobuf with envelope: the original TypeMeta
	kind     bool             // JSON that carried kind/apiVersion
}

// Decode decodes one object of the chain's resource.
func (c *Chain) Decode(data []byte, enc Encoding) (*Decoded, error) {
	obj := newObject(c.gvr)
	if obj == nil {
		return nil, fmt.Errorf("filter: no Go type for %s", c.gvr)
	}
	d := &Decoded{Obj: obj, enc: enc}
	switch enc {
	case JSON:
		if err := json.Unmarshal(data, obj); err != nil {
			return nil, fmt.Errorf("filter: decode %s JSON: %w", c.gvr.Resource, err)
		}
		d.kind = obj.GetObjectKind().GroupVersionKind().Kind != ""
	case Protobuf:
		raw := data
		if bytes.HasPrefix(data, protoMagic) {
			u := &runtime.Unknown{}
			if err := u.Unmarshal(data[len(protoMagic):]); err != nil {
				return nil, fmt.Errorf("filter: decode %s protobuf envelope: %w", c.gvr.Resource, err)
			}
			raw, u.Raw = u.Raw, nil
			d.envelope = u
		}
		if err := obj.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("filter: decode %s protobuf: %w", c.gvr.Resource, err)
		}
	default:
		return nil, fmt.Errorf("filter: unknown encoding %d", enc)
	}
	return d, nil
}

// Encode encodes d.Obj back in the form Decode found it.
func (d *Decoded) Encode() ([]byte, error) {
	switch d.enc {
	case JSON:
		if !d.kind {
			// typed list items carry no kind; keep it that way
			d.Obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		}
		return json.Marshal(d.Obj)
	default:
		msg, err := d.Obj.(protoMessage).Marshal()
		if err != nil {
			return nil, err
		}
		if d.envelope == nil {
			return msg, nil
		}
		u := *d.envelope
		u.Raw = msg
		return marshalEnvelope(&u)
	}
}

// Bytes runs the chain on one encoded object. It returns the bytes to send (data
// itself when nothing changed) and whether the object is kept. On an error
// (undecodable object, failing filter) it returns data unchanged, keep=true, and
// the error for the caller to log.
func (c *Chain) Bytes(data []byte, enc Encoding) (out []byte, keep bool, err error) {
	out, keep, _, err = c.bytes(data, enc)
	return out, keep, err
}

func (c *Chain) bytes(data []byte, enc Encoding) (out []byte, keep bool, key string, err error) {
	if c.skips(data) {
		return data, true, "", nil // kept as it is: a watch does not track it (no filter of the chain drops it)
	}
	if out, ok, err := c.rewriteBytes(data, enc); ok {
		return out, true, "", err // no filter of such a chain drops objects: not tracked either
	}
	d, err := c.Decode(data, enc)
	if err != nil {
		c.countFailure()
		return data, true, "", err
	}
	key = objectName(d.Obj)
	keep, changed, ferr := c.Object(d.Obj)
	if !keep {
		return nil, false, key, ferr
	}
	if !changed {
		return data, true, key, ferr
	}
	b, err := d.Encode()
	if err != nil {
		c.countFailure()
		return data, true, key, fmt.Errorf("filter: encode %s %s: %w", c.gvr.Resource, key, err)
	}
	return b, true, key, ferr
}

// rewriteBytes runs a chain whose filters each skip data (Skipper) or rewrite it
// in place (bytesRewriter) without decoding it; ok is false when some filter needs
// the object decoded, and the caller starts over on the decoding path.
func (c *Chain) rewriteBytes(data []byte, enc Encoding) (out []byte, ok bool, err error) {
	cur := data
	var errs []error
	escaped := escapedJSON(data)
	for _, f := range c.filters {
		if s, is := f.(Skipper); is && !escaped && s.Skips(cur) {
			continue
		}
		r, is := f.(bytesRewriter)
		if !is {
			return nil, false, nil
		}
		next, o, ferr := r.RewriteBytes(c.gvr, cur, enc)
		if errors.Is(ferr, errNeedDecode) {
			return nil, false, nil
		}
		if ferr != nil {
			errs = append(errs, &FilterError{Filter: f.Name(), Err: ferr})
			if c.countE != nil {
				c.countE(f.Name())
			}
			continue
		}
		if o == Dropped {
			return nil, false, nil // a bytesRewriter never drops; the decoding path handles it if one did
		}
		if o == Rewritten {
			cur = next
			if c.count != nil {
				c.count(f.Name(), o)
			}
		}
	}
	return cur, true, errors.Join(errs...)
}

// skips reports whether every filter of the chain is a Skipper that skips data.
func (c *Chain) skips(data []byte) bool {
	if escapedJSON(data) {
		return false
	}
	for _, f := range c.filters {
		if s, ok := f.(Skipper); !ok || !s.Skips(data) {
			return false
		}
	}
	return len(c.filters) > 0
}

func (c *Chain) countFailure() {
	if c.countE != nil {
		c.countE("decode")
	}
}

// Watch event types, as the apiserver writes them.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
	Bookmark = "BOOKMARK"
	Error    = "ERROR"
)

// Watch is the filtering state of one watch stream: which objects the client has
// been sent, so that an object that stops passing becomes DELETED and one that
// starts passing becomes ADDED. Not safe for concurrent use (one stream, one
// goroutine).
type Watch struct {
	chain *Chain
	// sent: key -> true when the client holds the object (sent as ADDED/MODIFIED),
	// false when it was held back. A key not in the map was not seen on this
	// stream: the client may hold it from its list.
	sent map[string]bool
}

// NewWatch starts the state of one watch stream.
func (c *Chain) NewWatch() *Watch { return &Watch{chain: c, sent: map[string]bool{}} }

// Event filters one watch event. It returns the event type and object to send,
// and send=false when the event is held back. BOOKMARK and ERROR events pass as
// they are. The rules:
//
//   - ADDED that passes: ADDED; that is dropped: held back.
//   - MODIFIED that passes: MODIFIED, or ADDED when the client was last told the
//     object is gone; that is dropped: DELETED (the client may hold it from its
//     list or an earlier event), or held back when it was already held back.
//   - DELETED: sent, unless the object was held back on this stream (the client
//     never had it). A DELETED for an object the client does not hold is a no-op
//     for client-go's informers.
//
// On an error the event passes unchanged and the error is returned for logging.
func (w *Watch) Event(typ string, data []byte, enc Encoding) (outType string, out []byte, send bool, err error) {
	switch typ {
	case Added, Modified, Deleted:
	default:
		return typ, data, true, nil
	}
	out, keep, key, err := w.chain.bytes(data, enc)
	if key == "" {
		// skipped or rewritten in place: kept (no such chain drops), not tracked
		return typ, out, true, err
	}
	had, seen := w.sent[key]
	switch typ {
	case Deleted:
		delete(w.sent, key)
		if seen && !had {
			return typ, nil, false, err
		}
		if !keep {
			out = data
		}
		return Deleted, out, true, err
	case Added:
		w.sent[key] = keep
		if !keep {
			return typ, nil, false, err
		}
		return Added, out, true, err
	default: // Modified
		w.sent[key] = keep
		if !keep {
			if seen && !had {
				return typ, nil, false, err
			}
			return Deleted, data, true, err
		}
		if seen && !had {
			return Added, out, true, err
		}
		return Modified, out, true, err
	}
}

func objectName(obj runtime.Object) string {
	m, ok := obj.(metav1.Object)
	if !ok {
		return "?"
	}
	if m.GetNamespace() == "" {
		return m.GetName()
	}
	return m.GetNamespace() + "/" + m.GetName()
}
