package filter

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// testEnv is the node and hub the table tests assume.
func testEnv() Env {
	pool := &StaticPool{}
	pool.Set("pool-a", map[string][]string{"pool-a": {"node-1", "node-2"}, "pool-b": {"node-3"}})
	return Env{NodeName: "node-1", HubHost: "169.254.2.1", HubPort: 10268, PoolTopology: true, Pool: pool,
		Services: mapServices{}}
}

// mapServices is a ServiceGetter over a map (namespace/name => Service).
type mapServices map[string]*corev1.Service

func (m mapServices) Service(ns, name string) (*corev1.Service, error) {
	if s, ok := m[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, ErrNotFound
}

// TopologyServiceNames makes mapServices a TopologyNamer, so every servicetopology
// case also runs the Skipper's byte test (and its result must not change).
func (m mapServices) TopologyServiceNames() ([]string, bool) {
	var names []string
	for _, s := range m {
		if s.Annotations[topologyKeysAnnotation] != "" {
			names = append(names, s.Name)
		}
	}
	return names, true
}

var (
	gvrServices       = corev1.SchemeGroupVersion.WithResource("services")
	gvrEndpoints      = corev1.SchemeGroupVersion.WithResource("endpoints")
	gvrConfigMaps     = corev1.SchemeGroupVersion.WithResource("configmaps")
	gvrPods           = corev1.SchemeGroupVersion.WithResource("pods")
	gvrEndpointSlices = discoveryv1.SchemeGroupVersion.WithResource("endpointslices")
)

// chainOf builds a one-filter chain for gvr over env.
func chainOf(name string, env *Env, gvr schema.GroupVersionResource) *Chain {
	return &Chain{gvr: gvr, filters: []Filter{newFilter(name, env)}}
}

type filterCase struct {
	name string
	in   runtime.Object
	want runtime.Object // nil: dropped
}

// runCases checks every case four ways: on the typed object, and through Bytes as
// JSON without kind (a list item), JSON with kind (a GET), bare protobuf (a
// protobuf list item) and enveloped protobuf (a GET or a watch event). When the
// want equals the input, Bytes must return the input bytes themselves (no
// re-encoding).
func runCases(t *testing.T, c *Chain, kind string, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.in.DeepCopyObject()
			keep, changed, err := c.Object(obj)
			if err != nil {
				t.Fatalf("Object: %v", err)
			}
			if keep != (tc.want != nil) {
				t.Fatalf("Object: keep=%v, want %v", keep, tc.want != nil)
			}
			if keep {
				if !reflect.DeepEqual(normalize(obj), normalize(tc.want)) {
					t.Fatalf("Object:\n got  %+v\n want %+v", obj, tc.want)
				}
				if changed == reflect.DeepEqual(tc.in, tc.want) {
					t.Fatalf("Object: changed=%v but in==want is %v", changed, reflect.DeepEqual(tc.in, tc.want))
				}
			}
			for _, form := range []string{"json", "json+kind", "proto", "proto+envelope"} {
				data, enc := encodeAs(t, tc.in, kind, form)
				out, keep, err := c.Bytes(data, enc)
				if err != nil {
					t.Fatalf("%s: Bytes: %v", form, err)
				}
				if keep != (tc.want != nil) {
					t.Fatalf("%s: keep=%v, want %v", form, keep, tc.want != nil)
				}
				if !keep {
					continue
				}
				if reflect.DeepEqual(tc.in, tc.want) && !bytes.Equal(out, data) {
					t.Fatalf("%s: unchanged object re-encoded", form)
				}
				d, err := c.Decode(out, enc)
				if err != nil {
					t.Fatalf("%s: decode output: %v", form, err)
				}
				want := tc.want.DeepCopyObject()
				if form == "json+kind" {
					want.GetObjectKind().SetGroupVersionKind(c.gvr.GroupVersion().WithKind(kind))
					if d.Obj.GetObjectKind().GroupVersionKind().Kind != kind {
						t.Fatalf("%s: kind lost: %s", form, out)
					}
				}
				if form == "json" && bytes.Contains(out, []byte(`"kind"`)) {
					t.Fatalf("%s: kind added to a list item: %s", form, out)
				}
				if form == "proto+envelope" && !bytes.HasPrefix(out, protoMagic) {
					t.Fatalf("%s: envelope lost", form)
				}
				if !reflect.DeepEqual(normalize(d.Obj), normalize(want)) {
					t.Fatalf("%s:\n got  %+v\n want %+v", form, d.Obj, want)
				}
			}
		})
	}
}

// normalize round-trips through JSON so nil and empty slices compare equal (the
// wire does not tell them apart).
func normalize(o runtime.Object) map[string]any {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func encodeAs(t *testing.T, obj runtime.Object, kind, form string) ([]byte, Encoding) {
	t.Helper()
	o := obj.DeepCopyObject()
	switch form {
	case "json":
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return b, JSON
	case "json+kind":
		gv := corev1.SchemeGroupVersion
		if _, ok := o.(*discoveryv1.EndpointSlice); ok {
			gv = discoveryv1.SchemeGroupVersion
		}
		o.GetObjectKind().SetGroupVersionKind(gv.WithKind(kind))
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return b, JSON
	}
	msg, err := o.(protoMessage).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if form == "proto" {
		return msg, Protobuf
	}
	gv := corev1.SchemeGroupVersion
	if _, ok := o.(*discoveryv1.EndpointSlice); ok {
		gv = discoveryv1.SchemeGroupVersion
	}
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: gv.String(), Kind: kind}, Raw: msg, ContentType: "application/vnd.kubernetes.protobuf"}
	b := make([]byte, len(protoMagic)+u.Size())
	copy(b, protoMagic)
	if _, err := u.MarshalToSizedBuffer(b[len(protoMagic):]); err != nil {
		t.Fatal(err)
	}
	return b, Protobuf
}

func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), ResourceVersion: "7"}
}

func ptr[T any](v T) *T { return &v }
