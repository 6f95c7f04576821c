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
	// The cloud's copy at the same RV replaces the local write (the cloud never saw
	// it: the local bytes are the node's guess, the cloud's are the truth); then an
	// equal RV is a no-op again; an older one is refused.
	if err := s.PutObject(ctx, key, obj("ns", "a", 10)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetObject(ctx, key); string(got.Data) != string(obj("ns", "a", 10).Data) || got.Local {
		t.Fatalf("equal-RV cloud copy did not replace the local write: %s (local %v)", got.Data, got.Local)
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

// TestLocalWriteYieldsToCloudAtSameRV: an object changed offline keeps the cloud's
// resourceVersion; the cloud's copy at that resourceVersion, from a list, a watch
// event or a GET, replaces it (issue 15 item 5). A cloud copy written over a cloud
// copy at the same resourceVersion stays a no-op (no write).
func TestLocalWriteYieldsToCloudAtSameRV(t *testing.T) {
	k := ListKey{Component: "kubelet", Resource: Resource{Version: "v1", Resource: "pods"}, Selector: "fieldSelector=spec.nodeName%3Dn"}
	key := ObjectKey{Component: "kubelet", Resource: k.Resource, Namespace: "ns", Name: "a"}
	cloud := obj("ns", "a", 10)
	for _, c := range []struct {
		name  string
		cloud func(s *Store) error
	}{
		{"list", func(s *Store) error { return s.ReplaceList(ctx, k, 25, []Object{cloud, obj("ns", "b", 9)}) }},
		{"watch", func(s *Store) error { return s.ApplyEvents(ctx, k, []Event{{Type: Modified, Object: cloud}}) }},
		{"get", func(s *Store) error { return s.PutObject(ctx, key, cloud) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, Options{})
			// The view is at the object's RV (its last change), as a watch would
			// resend it.
			if err := s.ReplaceList(ctx, k, 10, []Object{cloud, obj("ns", "b", 9)}); err != nil {
				t.Fatal(err)
			}
			local := Object{Namespace: "ns", Name: "a", ResourceVersion: 10, Encoding: EncodingJSON, Data: []byte(`{"local":true}`)}
			if err := s.UpdateObject(ctx, key, 10, local); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.GetObject(ctx, key); !got.Local {
				t.Fatalf("an object written by UpdateObject is not marked local: %+v", got)
			}
			if err := c.cloud(s); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetObject(ctx, key)
			if err != nil || string(got.Data) != string(cloud.Data) || got.Local || got.ResourceVersion != 10 {
				t.Fatalf("after the cloud's copy at the same RV (%s): %v data %s local %v; want the cloud's bytes", c.name, err, got.Data, got.Local)
			}
			var local2 bool
			if _, err := s.List(ctx, k, func(o Object) error {
				local2 = local2 || o.Local
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if local2 {
				t.Fatal("the view still lists a local object")
			}
		})
	}
}
