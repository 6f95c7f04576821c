package wire

import (
	"bytes"
	"errors"
	"testing"
)

type discardSink struct{}

func (discardSink) Add(*Item) error { return nil }

// TestOpaqueRVIsTold: a resourceVersion that is not a number fails every decoder
// with an error that wraps ErrOpaqueRV (so the cache can stop caching the resource
// instead of counting a malformed body), in JSON and protobuf, in a list's metadata,
// in an item, in a single object and in a watch event.
func TestOpaqueRVIsTold(t *testing.T) {
	good := pod("a", "p", "n", 5)
	bad := good
	bad.ResourceVersion = "2026-12-07T05:00:00Z/3"
	list := podList(9, "", good)
	list.ResourceVersion = "opaque-9"
	items := podList(9, "", bad)
	watch := []byte(`{"type":"ADDED","object":` + string(jsonBytes(t, &bad)) + "}\n")
	for name, decode := range map[string]func() error{
		"json list metadata": func() error {
			_, err := DecodeJSONList(bytes.NewReader(jsonBytes(t, list)), true, 1<<20, discardSink{})
			return err
		},
		"json list item": func() error {
			_, err := DecodeJSONList(bytes.NewReader(jsonBytes(t, items)), true, 1<<20, discardSink{})
			return err
		},
		"protobuf list metadata": func() error {
			_, err := DecodeProtoList(bytes.NewReader(protoBytes(t, list)), true, 1<<20, discardSink{})
			return err
		},
		"protobuf list item": func() error {
			_, err := DecodeProtoList(bytes.NewReader(protoBytes(t, items)), true, 1<<20, discardSink{})
			return err
		},
		"json object":     func() error { var it Item; return ParseJSONItem(jsonBytes(t, &bad), "", "", true, &it) },
		"protobuf object": func() error { var it Item; return ParseProtoEnvelope(protoBytes(t, &bad), true, &it) },
		"json watch event": func() error {
			var ev Event
			return NewJSONWatchDecoder(bytes.NewReader(watch), true, 1<<20).Next(&ev)
		},
	} {
		if err := decode(); !errors.Is(err, ErrOpaqueRV) {
			t.Errorf("%s: got %v, want an error wrapping ErrOpaqueRV", name, err)
		}
	}
}
