// Package wire reads Kubernetes API responses on the wire, without building typed
// objects: a list body item by item, a watch stream event by event, one object
// (a GET body, a stored object), in JSON and in protobuf. The cache (internal/cachemgr)
// needs only each object's bytes, namespace, name, resourceVersion (and a pod's
// spec.nodeName, and a bookmark's initial-events-end annotation); so does any
// other stage that streams a response item by item.
//
// JSON (json.go) is validated in one pass by a streaming reader (jsonstream.go),
// each item cut out of the read buffer once complete, and the few fields read by
// a small scanner over the recorded members (jsonscan.go). Protobuf (protobuf.go)
// is walked with protowire over the fields every Kubernetes object shares
// (metadata = 1 with name 1, namespace 3, resourceVersion 6, annotations 12; List:
// metadata 1 with resourceVersion 2 and continue 3, items 2; Pod: spec 2 with
// nodeName 10), the same field numbers client-go's generated code uses. Built-in
// and custom types are therefore handled alike, and an item is never decoded into
// a Go struct. Only one item is held in memory at a time; any error fails the
// whole list, so a caller never stores or serves a torn one.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/yurthub/yurthub/internal/store"
)

// ProtoMagic prefixes every Kubernetes protobuf document (the runtime.Unknown envelope).
var ProtoMagic = []byte{'k', '8', 's', 0}

// Item is one decoded object.
type Item struct {
	Namespace, Name string
	RV              uint64
	NodeName        string // a pod's spec.nodeName (read only when asked for)
	InitialEnd      bool   // bookmark with k8s.io/initial-events-end=true
	Data            []byte // the object as a GET returns it
	Enc             store.Encoding
}

// Object is the item as the store keeps it.
func (it *Item) Object() store.Object {
	return store.Object{Namespace: it.Namespace, Name: it.Name, ResourceVersion: it.RV, Encoding: it.Enc, Data: it.Data}
}

// ListMeta is what a list says of itself.
type ListMeta struct {
	RV       uint64
	Continue string
	Kind     string
	ItemKind string
}

// ListSink receives a list's items as they are decoded. The item is reused after
// Add returns: a sink copies what it keeps.
type ListSink interface {
	Add(it *Item) error
}

// Event is one decoded watch event.
type Event struct {
	Type string
	Item Item
}

// EventDecoder reads a watch stream one event at a time. The stream's end between
// two events is io.EOF, inside one io.ErrUnexpectedEOF; a read error is returned
// as it is.
type EventDecoder interface {
	Next(*Event) error
}

// ErrOpaqueRV is wrapped by every decode error caused by a resourceVersion that is
// not a decimal number fitting 64 bits. By API convention a resourceVersion is
// opaque; kube-apiserver's (etcd's revision) and every common aggregated server's
// are numbers, which the cache relies on to order objects, lists and events. A
// caller tells this error from a malformed body with errors.Is.
var ErrOpaqueRV = errors.New("resourceVersion is not a number")

// ParseRV reads a resourceVersion ("" is 0).
func ParseRV(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrOpaqueRV, s)
	}
	return rv, nil
}

// WriteJSONString writes s as a JSON string.
func WriteJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

// ItemKind is the kind of a list's items: "PodList" => "Pod".
func ItemKind(listKind string) string { return strings.TrimSuffix(listKind, "List") }
