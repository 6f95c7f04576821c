package store

import (
	"context"
	"errors"
	"testing"
)

// UpdateObject (the offline path's local writes): a compare-and-swap that writes at
// the same resourceVersion, keeps view membership, and lets the cloud's next
// version win.
func TestUpdateObject(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	k := ListKey{Component: "kubelet", Resource: Resource{Version: "v1", Resource: "pods"}, Selector: "fieldSelector=spec.nodeName%3Dn"}
	if err := s.ReplaceList(ctx, k, 20, []Object{obj("ns", "a", 10), obj("ns", "b", 11)}); err != nil {
		t.Fatal(err)
	}
	key := ObjectKey{Component: "kubelet", Resource: k.Resource, Namespace: "ns", Name: "a"}
	local := Object{Namespace: "ns", Name: "a", ResourceVersion: 10, Encoding: EncodingJSON, Data: []byte(`{"local":true}`)}

	if err := s.UpdateObject(ctx, key, 9, local); !errors.Is(err, ErrStale) {
		t.Fatalf("expected RV 9 against cached 10: want ErrStale, got %v", err)
	}
	missing := key
	missing.Name = "zz"
	if err := s.UpdateObject(ctx, missing, 10, local); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent object: want ErrNotFound, got %v", err)
	}
	if err := s.UpdateObject(ctx, key, 10, local); err != nil {
		t.Fatalf("same-RV local write: %v", err)
	}
	got, err := s.GetObject(ctx, key)
	if err != nil || string(got.Data) != `{"local":true}` || got.ResourceVersion != 10 {
		t.Fatalf("after the local write: %v %+v", err, got)
	}
	names, info, err := listNames(t, s, k)
	if err != nil || len(names) != 2 || info.Count != 2 {
		t.Fatalf("view after the local write: %v %v %+v", err, names, info)
	}
	// The cloud's copy at the same RV does not undo the local write (PutObject: equal
	// is a no-op); an older one is refused; the next one replaces it.
	if err := s.PutObject(ctx, key, obj("ns", "a", 10)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetObject(ctx, key); string(got.Data) != `{"local":true}` {
		t.Fatalf("equal-RV cloud copy replaced the local write: %s", got.Data)
	}
	if err := s.PutObject(ctx, key, obj("ns", "a", 9)); !errors.Is(err, ErrStale) {
		t.Fatalf("older cloud copy: want ErrStale, got %v", err)
	}
	if err := s.PutObject(ctx, key, obj("ns", "a", 30)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetObject(ctx, key); got.ResourceVersion != 30 || string(got.Data) == `{"local":true}` {
		t.Fatalf("newer cloud copy did not replace the local write: %+v", got)
	}
}
