package localproxy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/store"
)

// matcher applies a list's label and field selectors (and namespace) to cached
// objects, the way the apiserver does: labels against metadata.labels; fields
// against the object's fields by dotted path (metadata.name, metadata.namespace,
// spec.nodeName, status.phase, involvedObject.name, type, ...), a missing field
// being "" and a boolean "true"/"false". Field names the apiserver renames are
// mapped (an Event's "source" is source.component).
type matcher struct {
	namespace string // "" = any
	label     labels.Selector
	field     fields.Selector
	resource  string
}

func newMatcher(namespace, labelSelector, fieldSelector, resource string) (*matcher, error) {
	ls, fs, err := cachekey.ParseSelectors(labelSelector, fieldSelector)
	if err != nil {
		return nil, err
	}
	return &matcher{namespace: namespace, resource: resource, label: ls, field: fs}, nil
}

// needsBody reports whether matching reads the object's content.
func (m *matcher) needsBody() bool { return m.label != nil || m.field != nil }

func (m *matcher) empty() bool { return m.namespace == "" && !m.needsBody() }

// match reports whether o is selected.
func (m *matcher) match(o store.Object) (bool, error) {
	if m.namespace != "" && o.Namespace != m.namespace {
		return false, nil
	}
	if !m.needsBody() {
		return true, nil
	}
	obj, err := objectMap(o)
	if err != nil {
		return false, err
	}
	if m.label != nil {
		md, _ := obj["metadata"].(map[string]any)
		ls := labels.Set{}
		if l, ok := md["labels"].(map[string]any); ok {
			for k, v := range l {
				ls[k], _ = v.(string)
			}
		}
		if !m.label.Matches(ls) {
			return false, nil
		}
	}
	if m.field != nil {
		fs := fields.Set{}
		for _, req := range m.field.Requirements() {
			fs[req.Field] = fieldValue(obj, m.resource, req.Field)
		}
		if !m.field.Matches(fs) {
			return false, nil
		}
	}
	return true, nil
}

// objectMap decodes a cached object into a generic map.
func objectMap(o store.Object) (map[string]any, error) {
	if o.Encoding == store.EncodingProtobuf {
		obj, _, err := decodeTyped(o)
		if err != nil {
			return nil, err
		}
		return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	}
	var m map[string]any
	if err := json.Unmarshal(o.Data, &m); err != nil {
		return nil, fmt.Errorf("decode cached %s/%s: %w", o.Namespace, o.Name, err)
	}
	return m, nil
}

// fieldAliases are selectable fields whose name is not their path.
var fieldAliases = map[string]map[string]string{
	"events": {"source": "source.component"},
}

func fieldValue(obj map[string]any, resource, field string) string {
	path := field
	if a, ok := fieldAliases[resource][field]; ok {
		path = a
	}
	var cur any = obj
	for _, p := range strings.Split(path, ".") {
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
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// immutableFields are selector fields whose value a cached object cannot change
// after the view was listed with them (so the view's membership, computed by the
// apiserver, stays right without re-checking each object).
func immutableField(resource, field string) bool {
	switch field {
	case "metadata.name", "metadata.namespace":
		return true
	case "spec.nodeName":
		return resource == "pods" // set once by the scheduler
	}
	return false
}
