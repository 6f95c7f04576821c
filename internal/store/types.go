package store

import (
	"fmt"
	"strings"
	"time"
)

// Resource is a fully qualified resource; Group is "" for the core group.
type Resource struct{ Group, Version, Resource string }

func (r Resource) String() string {
	if r.Group == "" {
		return r.Resource + "." + r.Version
	}
	return r.Resource + "." + r.Version + "." + r.Group
}

// ParseResource parses "resource.version[.group]" (as String prints it, and as
// hubctl's --resource takes it). A bare "resource" gives Version "".
func ParseResource(s string) Resource {
	parts := strings.SplitN(s, ".", 3)
	r := Resource{Resource: parts[0]}
	if len(parts) > 1 {
		r.Version = parts[1]
	}
	if len(parts) > 2 {
		r.Group = parts[2]
	}
	return r
}

// ObjectKey names one cached object of one component. Cluster-scoped objects have
// Namespace "".
type ObjectKey struct {
	Component string // "kubelet", "kube-proxy", ...; never ""
	Resource  Resource
	Namespace string
	Name      string
}

func (k ObjectKey) String() string {
	return fmt.Sprintf("%s/%s/%s/%s", k.Component, k.Resource, k.Namespace, k.Name)
}

// ListKey names one list view: component + resource + namespace ("" = all
// namespaces) + selector (the canonical string of the label and field selectors;
// "" = everything). Two selectors on one resource are two independent views.
type ListKey struct {
	Component string
	Resource  Resource
	Namespace string
	Selector  string
}

func (k ListKey) String() string {
	return fmt.Sprintf("%s/%s/%s?%s", k.Component, k.Resource, k.Namespace, k.Selector)
}

// Encoding is the encoding of an object's bytes.
type Encoding string

// Encodings.
const (
	EncodingJSON     Encoding = "json"
	EncodingProtobuf Encoding = "protobuf" // the k8s protobuf envelope ("k8s\x00" + runtime.Unknown)
)

// Object is one cached object.
type Object struct {
	Namespace, Name string
	ResourceVersion uint64 // parsed metadata.resourceVersion
	Encoding        Encoding
	Data            []byte // one full object; from List/Walk valid only during the callback
	// Damaged is set by Walk (only) for a stored value that failed its integrity
	// check (errors.Is(Damaged, ErrDamaged)); Data is then nil and ResourceVersion 0.
	Damaged error
	// Local is set on an object changed on this node while the cloud was unreachable
	// (UpdateObject, PutLocalEvent): it keeps the cloud's resourceVersion, but not the
	// cloud's bytes, so the cloud's copy at that same resourceVersion replaces it
	// (from a list, a watch event or a GET). Set by GetObject, List and Walk; ignored
	// on writes (only UpdateObject and PutLocalEvent write local objects).
	Local bool

	record []byte // internal: Data already framed as a stored record (ListWriter's spool)
}

// EventType is a watch event type.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	Bookmark EventType = "BOOKMARK"
)

// Event is one watch event. For BOOKMARK only Object.ResourceVersion matters.
type Event struct {
	Type   EventType
	Object Object
}

// ListInfo describes a list view.
type ListInfo struct {
	ResourceVersion uint64    // the RV to answer a list with
	SyncedAt        time.Time // last full list (ReplaceList) or import
	Count           int       // objects the view covers
	Complete        bool      // false after MarkIncomplete (or a watch without a list)
	Reason          string    // why incomplete, or where the view came from (e.g. OpenYurt import)
}
