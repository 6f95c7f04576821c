package localproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// Media types the local proxy answers with.
const (
	mediaJSON       = "application/json"
	mediaProtobuf   = "application/vnd.kubernetes.protobuf"
	mediaProtoWatch = "application/vnd.kubernetes.protobuf;stream=watch"
)

// format is the encoding of a response.
type format int

const (
	formatJSON format = iota
	formatProtobuf
)

func (f format) contentType() string {
	if f == formatProtobuf {
		return mediaProtobuf
	}
	return mediaJSON
}

var (
	scheme   = kubescheme.Scheme
	protoSer = kubescheme.Protobuf

	kindsOnce sync.Once
	kinds     map[schema.GroupVersionResource]string // built-in resource => kind
)

// builtinKind returns the kind of a built-in resource (kubescheme.Scheme), guessed
// from the kind names the way the apiserver's RESTMapper pluralizes them.
func builtinKind(gvr schema.GroupVersionResource) (string, bool) {
	kindsOnce.Do(func() {
		kinds = map[schema.GroupVersionResource]string{}
		for gvk := range scheme.AllKnownTypes() {
			if strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") {
				continue
			}
			plural, _ := meta.UnsafeGuessKindToResource(gvk)
			if _, dup := kinds[plural]; !dup {
				kinds[plural] = gvk.Kind
			}
		}
	})
	k, ok := kinds[gvr]
	return k, ok
}

// negotiate picks the response encoding from an Accept header the way the
// apiserver does for the forms the hub can produce: the first acceptable media
// range wins; JSON for "", */*, application/*, application/json; protobuf when
// protoOK (a built-in type). A transformed form (as=Table, as=PartialObjectMetadata)
// is not produced offline: a range asking for one is skipped, so kubectl's
// "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" gets plain JSON,
// as the API allows. ok is false when nothing in the header can be produced (406).
func negotiate(accept string, protoOK bool) (f format, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return formatJSON, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["as"] != "" {
			continue
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
			continue
		}
		switch mt {
		case "*/*", "application/*", mediaJSON:
			return formatJSON, true
		case mediaProtobuf:
			if protoOK {
				return formatProtobuf, true
			}
		}
	}
	return formatJSON, false
}

// typeMeta is the part of a JSON object naming its type.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// unwrapProto returns the TypeMeta and the bare message of a protobuf envelope.
func unwrapProto(doc []byte) (runtime.Unknown, error) {
	var u runtime.Unknown
	if !bytes.HasPrefix(doc, wire.ProtoMagic) {
		return u, errors.New("protobuf object without the k8s envelope")
	}
	if err := u.Unmarshal(doc[len(wire.ProtoMagic):]); err != nil {
		return u, fmt.Errorf("decode protobuf envelope: %w", err)
	}
	return u, nil
}

// decodeTyped decodes a cached object into its client-go type.
func decodeTyped(o store.Object) (runtime.Object, schema.GroupVersionKind, error) {
	switch o.Encoding {
	case store.EncodingProtobuf:
		obj, gvk, err := protoSer.Decode(o.Data, nil, nil)
		if err != nil {
			return nil, schema.GroupVersionKind{}, fmt.Errorf("decode cached protobuf %s/%s: %w", o.Namespace, o.Name, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		return obj, *gvk, nil
	default:
		return decodeJSONTyped(o.Data)
	}
}

// decodeJSONTyped decodes JSON into its client-go type (error for unknown kinds).
func decodeJSONTyped(data []byte) (runtime.Object, schema.GroupVersionKind, error) {
	var tm typeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, schema.GroupVersionKind{}, fmt.Errorf("decode JSON object: %w", err)
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, gvk, fmt.Errorf("%s is not a built-in type: %w", gvk, err)
	}
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, gvk, fmt.Errorf("decode %s: %w", gvk.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, gvk, nil
}

// asJSON returns a cached object as a JSON document (with kind and apiVersion).
func asJSON(o store.Object) ([]byte, error) {
	if o.Encoding != store.EncodingProtobuf {
		return o.Data, nil
	}
	obj, _, err := decodeTyped(o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// asProtobuf returns a cached object as a protobuf envelope.
func asProtobuf(o store.Object) ([]byte, error) {
	if o.Encoding == store.EncodingProtobuf {
		return o.Data, nil
	}
	obj, _, err := decodeJSONTyped(o.Data)
	if err != nil {
		return nil, err
	}
	return kubescheme.EncodeProto(obj)
}

// encodeAs returns a cached object in format f.
func encodeAs(o store.Object, f format) ([]byte, error) {
	if f == formatProtobuf {
		return asProtobuf(o)
	}
	return asJSON(o)
}

// jsonToStored turns a JSON document into the bytes to store in encoding enc.
func jsonToStored(doc []byte, enc store.Encoding) ([]byte, error) {
	if enc != store.EncodingProtobuf {
		return doc, nil
	}
	obj, _, err := decodeJSONTyped(doc)
	if err != nil {
		return nil, err
	}
	return kubescheme.EncodeProto(obj)
}

// bodyToJSON turns a request body (JSON or protobuf, per its Content-Type) into JSON.
func bodyToJSON(body []byte, contentType string) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == mediaProtobuf {
		return asJSON(store.Object{Encoding: store.EncodingProtobuf, Data: body})
	}
	return body, nil
}

func jsonQuote(s string) ([]byte, error) { return json.Marshal(s) }

// kindOfJSON is the kind named by a JSON document ("" if none).
func kindOfJSON(doc []byte) string {
	var tm typeMeta
	_ = json.Unmarshal(doc, &tm)
	return tm.Kind
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
