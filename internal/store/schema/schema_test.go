package schema

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRoundTrips(t *testing.T) {
	for _, tc := range []struct{ g, v, r string }{{"", "v1", "pods"}, {"apps", "v1", "deployments"}, {"coordination.k8s.io", "v1", "leases"}} {
		g, v, r, err := ParseResourceKey(ResourceKey(tc.g, tc.v, tc.r))
		if err != nil || g != tc.g || v != tc.v || r != tc.r {
			t.Errorf("resource key %+v -> %q %q %q %v", tc, g, v, r, err)
		}
	}
	if _, _, _, err := ParseResourceKey([]byte("pods")); err == nil {
		t.Error("bad resource key accepted")
	}
	for _, tc := range []struct{ ns, name string }{{"", "node-1"}, {"kube-system", "p"}} {
		ns, name, err := ParseObjectKey(ObjectKey(tc.ns, tc.name))
		if err != nil || ns != tc.ns || name != tc.name {
			t.Errorf("object key %+v -> %q %q %v", tc, ns, name, err)
		}
	}
	ns, sel, err := ParseViewKey(ViewKey("ns", "labelSelector=a=b?c"))
	if err != nil || ns != "ns" || sel != "labelSelector=a=b?c" {
		t.Errorf("view key -> %q %q %v", ns, sel, err)
	}
	enc, rv, data, err := DecodeObject(EncodeObject(EncodingProto, 42, []byte("k8s\x00x")))
	if err != nil || enc != EncodingProto || rv != 42 || string(data) != "k8s\x00x" {
		t.Errorf("object record -> %c %d %q %v", enc, rv, data, err)
	}
	for _, e := range []byte{EncodingJSON, EncodingProto} {
		rec := EncodeObject(LocalEncoding(e), 9, []byte("x"))
		if enc, rv, _, err := DecodeObject(rec); err != nil || enc != e || rv != 9 || !IsLocal(rec) {
			t.Errorf("local %c record -> %c %d local=%v %v", e, enc, rv, IsLocal(rec), err)
		}
		if IsLocal(EncodeObject(e, 9, []byte("x"))) {
			t.Errorf("cloud %c record reads as local", e)
		}
	}
	rec := NewObjectRecord(EncodingJSON, 7, 2)
	copy(rec[len(rec)-2:], "{}")
	SealObjectRecord(rec)
	if _, rv, data, err := DecodeObject(rec); err != nil || rv != 7 || string(data) != "{}" {
		t.Errorf("NewObjectRecord -> %d %q %v", rv, data, err)
	}
	for _, bad := range [][]byte{nil, {1, 'j'}, {2, 'j', 0, 0, 0, 0, 0, 0, 0, 0}, {2, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		EncodeObject(EncodingJSON, 1, nil)[:10]} {
		if _, _, _, err := DecodeObject(bad); err == nil {
			t.Errorf("bad record %v accepted", bad)
		}
	}
	li := ListInfo{ResourceVersion: 9, SyncedAt: time.Unix(1700000000, 5).UTC(), Count: 3, Complete: true, Reason: "r"}
	if got, err := DecodeListInfo(EncodeListInfo(li)); err != nil || !reflect.DeepEqual(got, li) {
		t.Errorf("list info %+v -> %+v %v", li, got, err)
	}
	if got, err := DecodeListInfo(EncodeListInfo(ListInfo{})); err != nil || !got.SyncedAt.IsZero() {
		t.Errorf("zero list info -> %+v %v", got, err)
	}
	ct, body, err := DecodeRaw(EncodeRaw("application/json", []byte(`{}`)))
	if err != nil || ct != "application/json" || string(body) != "{}" {
		t.Errorf("raw -> %q %q %v", ct, body, err)
	}
	if _, _, err := DecodeRaw([]byte{2, 0, 0, 0, 0, 0, 9, 'a'}); err == nil {
		t.Error("short raw record accepted")
	}
}

// TestChecksums: a change of any single byte of a record, header or data, is
// ErrChecksum (or ErrBadRecord when it hits the format or encoding byte), never a
// successful decode of different bytes.
func TestChecksums(t *testing.T) {
	records := map[string][]byte{
		"object":    EncodeObject(EncodingJSON, 12345, []byte(`{"kind":"Pod","metadata":{"name":"p"}}`)),
		"list info": EncodeListInfo(ListInfo{ResourceVersion: 9, SyncedAt: time.Unix(1700000000, 5), Count: 3, Reason: "why"}),
		"raw":       EncodeRaw("application/json", []byte(`{"kind":"APIVersions"}`)),
	}
	decode := map[string]func([]byte) error{
		"object":    func(v []byte) error { _, _, _, err := DecodeObject(v); return err },
		"list info": func(v []byte) error { _, err := DecodeListInfo(v); return err },
		"raw":       func(v []byte) error { _, _, err := DecodeRaw(v); return err },
	}
	for name, rec := range records {
		if err := decode[name](rec); err != nil {
			t.Fatalf("%s: intact record refused: %v", name, err)
		}
		for i := range rec {
			bad := append([]byte(nil), rec...)
			bad[i] ^= 0x20
			err := decode[name](bad)
			if !errors.Is(err, ErrChecksum) && !(i <= 1 && errors.Is(err, ErrBadRecord)) {
				t.Errorf("%s: byte %d changed: got %v, want ErrChecksum", name, i, err)
			}
		}
	}
}
