package kubescheme

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// EncodeProto encodes a built-in object as the apiserver does in protobuf (the
// "k8s\x00" envelope).
func EncodeProto(obj runtime.Object) ([]byte, error) {
	var b bytes.Buffer
	if err := Protobuf.Encode(obj, &b); err != nil {
		return nil, fmt.Errorf("encode protobuf: %w", err)
	}
	return b.Bytes(), nil
}

// BookmarkJSON is the object of a watch bookmark the hub sends itself (the
// offline path, the multiplexer), in JSON: kind, apiVersion and a resourceVersion,
// with the k8s.io/initial-events-end annotation when initialEnd. Any kind.
func BookmarkJSON(gvk schema.GroupVersionKind, rv uint64, initialEnd bool) []byte {
	kind, _ := json.Marshal(gvk.Kind)
	apiVersion, _ := json.Marshal(gvk.GroupVersion().String())
	var b bytes.Buffer
	b.WriteString(`{"kind":`)
	b.Write(kind)
	b.WriteString(`,"apiVersion":`)
	b.Write(apiVersion)
	b.WriteString(`,"metadata":{"resourceVersion":"`)
	b.WriteString(strconv.FormatUint(rv, 10))
	b.WriteByte('"')
	if initialEnd {
		b.WriteString(`,"annotations":{"` + metav1.InitialEventsAnnotationKey + `":"true"}`)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

// BookmarkProto is BookmarkJSON as a protobuf envelope; built-in types only (a
// type not in Scheme has no Go type to encode).
func BookmarkProto(gvk schema.GroupVersionKind, rv uint64, initialEnd bool) ([]byte, error) {
	obj, err := Scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatUint(rv, 10))
	if initialEnd {
		acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return EncodeProto(obj)
}
