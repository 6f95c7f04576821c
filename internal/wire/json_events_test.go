package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestJSONEvents(t *testing.T) {
	stream := `{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"5"}}}` + "\n" +
		` {"object":{"metadata":{"name":"b"}},"ty\u0070e":"MODIFIED"}` + "\n" +
		`{"type":"ERROR","object":{"kind":"Status","code":410}}` + "\n"
	type ev struct{ raw, typ, obj string }
	want := []ev{
		{`{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"5"}}}`, "ADDED", `{"kind":"Pod","metadata":{"name":"a","resourceVersion":"5"}}`},
		{`{"object":{"metadata":{"name":"b"}},"ty\u0070e":"MODIFIED"}`, "MODIFIED", `{"metadata":{"name":"b"}}`},
		{`{"type":"ERROR","object":{"kind":"Status","code":410}}`, "ERROR", `{"kind":"Status","code":410}`},
	}
	for _, oneByte := range []bool{false, true} {
		var r io.Reader = strings.NewReader(stream)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		d := NewJSONEvents(r, 1<<20)
		for i, w := range want {
			raw, typ, obj, err := d.Next()
			if err != nil {
				t.Fatalf("oneByte=%v event %d: %v", oneByte, i, err)
			}
			if got := (ev{string(raw), typ, string(obj)}); got != w {
				t.Fatalf("oneByte=%v event %d = %+v, want %+v", oneByte, i, got, w)
			}
		}
		if _, _, _, err := d.Next(); err != io.EOF {
			t.Fatalf("oneByte=%v after the last event: %v, want io.EOF", oneByte, err)
		}
	}
}

func TestJSONEventsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string
		max      int
	}{
		"truncated":          {`{"type":"ADDED","object":{"metadata":`, "unexpected EOF", 1 << 20},
		"not an object":      {`["ADDED"]`, "not a JSON object", 1 << 20},
		"object not object":  {`{"type":"ADDED","object":"x"}`, "object is not a JSON object", 1 << 20},
		"no object":          {`{"type":"MODIFIED"}`, "object is not a JSON object", 1 << 20},
		"type not a string":  {`{"type":5,"object":{}}`, "watch event type", 1 << 20},
		"malformed":          {`{"type":"ADDED","object":{"a":tru}}`, "watch event", 1 << 20},
		"larger than max":    {`{"type":"ADDED","object":{"a":"` + strings.Repeat("x", 100) + `"}}`, "watch event", 64},
		"garbage after good": {`{"type":"ADDED","object":{}}}`, "watch event", 1 << 20},
	} {
		d := NewJSONEvents(strings.NewReader(tc.in), tc.max)
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			_, _, _, err = d.Next()
		}
		if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
}
