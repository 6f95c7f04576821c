package multiplexer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// format is a wire encoding a client asks for; it indexes the lazily encoded forms.
type format int

const (
	formatJSON format = iota
	formatProtobuf
)

// Media types.
const (
	mediaJSON       = "application/json"
	mediaProtobuf   = "application/vnd.kubernetes.protobuf"
	mediaProtoWatch = "application/vnd.kubernetes.protobuf;stream=watch"
)

// negotiate picks the encoding from an Accept header as the apiserver does for
// the two forms served here (the first acceptable range wins). A transformed form
// (as=Table, PartialObjectMetadata) cannot be produced: ok is false, and the
// request takes the ordinary path.
func negotiate(accept string, plainOK bool) (f format, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return formatJSON, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["as"] != "" {
			if plainOK {
				continue // offline: the plain form the client also accepts
			}
			return 0, false // the client wants a transformed form first
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
			continue
		}
		switch mt {
		case "*/*", "application/*", mediaJSON:
			return formatJSON, true
		case mediaProtobuf:
			return formatProtobuf, true
		}
	}
	return 0, false
}

// object is one object of a multiplexed resource, immutable once built: the
// bytes the cloud sent (protobuf envelope, or JSON) and its labels, read once on
// first use. Its other encoding is not kept: an event's frame is encoded once and
// kept in the (bounded) window, while keeping a second form of every object would
// double the state for as long as the object lives.
type object struct {
	namespace, name string
	rv              uint64
	proto           bool   // data is a protobuf envelope
	data            []byte // as the cloud sent it

	attrOnce sync.Once
	attrs    attrs
}

// attrs are what label selectors read of an object.
type attrs struct {
	labels labels.Set
	err    error
}

func newObject(it *wire.Item) *object {
	return &object{namespace: it.Namespace, name: it.Name, rv: it.RV, proto: it.Enc == "protobuf",
		data: append([]byte(nil), it.Data...)}
}

// objectOf is a stored object as the multiplexer handles it; its data aliases
// o.Data (from a list walk: valid only during the walk's callback).
func objectOf(o store.Object) *object {
	return &object{namespace: o.Namespace, name: o.Name, rv: o.ResourceVersion, proto: o.Encoding == store.EncodingProtobuf, data: o.Data}
}

// encoded returns the object in format f (a full document: JSON with kind and
// apiVersion, or the protobuf envelope), encoded once.
func (o *object) encoded(f format) ([]byte, error) {
	if (f == formatProtobuf) == o.proto {
		return o.data, nil
	}
	obj, err := o.typed()
	if err != nil {
		return nil, err
	}
	if f == formatJSON {
		return json.Marshal(obj)
	}
	return kubescheme.EncodeProto(obj)
}

// typed decodes the object into its client-go type (a fresh copy each call).
func (o *object) typed() (runtime.Object, error) {
	if o.proto {
		obj, gvk, err := kubescheme.Protobuf.Decode(o.data, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", o.namespace, o.name, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		return obj, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(o.data, &tm); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", o.namespace, o.name, err)
	}
	gvk := tm.GroupVersionKind()
	obj, err := kubescheme.Scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %s is not a built-in type: %w", o.namespace, o.name, gvk, err)
	}
	if err := json.Unmarshal(o.data, obj); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", o.namespace, o.name, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// attributes returns the object's labels, read once.
func (o *object) attributes() *attrs {
	o.attrOnce.Do(func() {
		obj, err := o.typed()
		if err != nil {
			o.attrs.err = err
			return
		}
		acc, err := meta.Accessor(obj)
		if err != nil {
			o.attrs.err = err
			return
		}
		o.attrs.labels = labels.Set(acc.GetLabels())
	})
	return &o.attrs
}

// doc is the object as a generic map, for field selectors on other fields than
// its name and namespace (rare on pool-scope resources: not kept).
func (o *object) doc() (map[string]any, error) {
	obj, err := o.typed()
	if err != nil {
		return nil, err
	}
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

// selector is one client's namespace, label and field selectors.
type selector struct {
	namespace string
	label     labels.Selector // nil: everything
	field     fields.Selector // nil: everything
}

func newSelector(namespace, labelSelector, fieldSelector string) (*selector, error) {
	ls, fs, err := cachekey.ParseSelectors(labelSelector, fieldSelector)
	if err != nil {
		return nil, err
	}
	return &selector{namespace: namespace, label: ls, field: fs}, nil
}

// matches reports whether o is selected. An object whose fields cannot be read
// does not match (it is logged by the caller once per object: never here).
func (s *selector) matches(o *object) bool {
	if o == nil {
		return false
	}
	if s.namespace != "" && o.namespace != s.namespace {
		return false
	}
	if s.label != nil {
		a := o.attributes()
		if a.err != nil || !s.label.Matches(a.labels) {
			return false
		}
	}
	if s.field != nil {
		var doc map[string]any
		set := fields.Set{}
		for _, req := range s.field.Requirements() {
			if doc == nil && req.Field != "metadata.name" && req.Field != "metadata.namespace" {
				var err error
				if doc, err = o.doc(); err != nil {
					return false
				}
			}
			set[req.Field] = fieldValue(o, doc, req.Field)
		}
		if !s.field.Matches(set) {
			return false
		}
	}
	return true
}

// fieldValue reads a selectable field by its dotted path ("" when absent).
func fieldValue(o *object, doc map[string]any, field string) string {
	switch field {
	case "metadata.name":
		return o.name
	case "metadata.namespace":
		return o.namespace
	}
	var cur any = doc
	for _, p := range strings.Split(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// watchFrame is one event as written on a watch stream: a JSON line, or a
// length-prefixed protobuf WatchEvent (no envelope around it, as the apiserver's
// stream serializer writes it) whose object is a full enveloped document.
func watchFrame(f format, typ string, doc []byte) ([]byte, error) {
	if f == formatProtobuf {
		ev := metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: doc}}
		msg, err := ev.Marshal()
		if err != nil {
			return nil, err
		}
		out := make([]byte, 4, 4+len(msg))
		binary.BigEndian.PutUint32(out, uint32(len(msg)))
		return append(out, msg...), nil
	}
	var b bytes.Buffer
	b.Grow(len(doc) + 32)
	b.WriteString(`{"type":"`)
	b.WriteString(typ)
	b.WriteString(`","object":`)
	b.Write(doc)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// bookmarkDoc is a bookmark's object: only kind, apiVersion and resourceVersion
// (and, ending a watch-list's initial events, the k8s.io/initial-events-end
// annotation).
func bookmarkDoc(f format, gvk schema.GroupVersionKind, rv uint64, initialEnd bool) ([]byte, error) {
	if f == formatJSON {
		return kubescheme.BookmarkJSON(gvk, rv, initialEnd), nil
	}
	return kubescheme.BookmarkProto(gvk, rv, initialEnd)
}
