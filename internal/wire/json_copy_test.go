package wire

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// CopyJSONList copies the envelope as it is and each item through fn, reading the
// body in pieces of any size; a torn or malformed list is an error, never a
// shorter list.
func TestCopyJSONList(t *testing.T) {
	body := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","remainingItemCount":3,"continue":"x"},"items":[{"metadata":{"name":"a"}} , {"metadata":{"name":"drop"}},{"metadata":{"name":"b\u00e9"},"spec":{"x":[1,2,{"y":null}]}}],"extra":true}`
	fn := func(item []byte) ([]byte, bool) {
		if bytes.Contains(item, []byte(`"drop"`)) {
			return nil, false
		}
		if bytes.Contains(item, []byte(`"a"`)) {
			return []byte(`{"metadata":{"name":"A"}}`), true
		}
		return item, true
	}
	want := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","remainingItemCount":3,"continue":"x"},"items":[{"metadata":{"name":"A"}},{"metadata":{"name":"b\u00e9"},"spec":{"x":[1,2,{"y":null}]}}],"extra":true}`
	for name, r := range map[string]func() io.Reader{
		"whole":  func() io.Reader { return strings.NewReader(body) },
		"1 byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
	} {
		var out bytes.Buffer
		if err := CopyJSONList(r(), &out, 1<<20, fn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.String() != want {
			t.Fatalf("%s:\n got %s\nwant %s", name, out.String(), want)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("%s: output is not valid JSON", name)
		}
	}
	for _, bad := range []string{body[:len(body)/2], strings.Replace(body, `"b\u00e9"}`, `"b\u00e9",}`, 1), `{"items":{}}`, `[]`} {
		if err := CopyJSONList(strings.NewReader(bad), io.Discard, 1<<20, fn); err == nil {
			t.Errorf("no error for %.60s", bad)
		}
	}
	if err := CopyJSONList(strings.NewReader(body), io.Discard, 20, fn); err == nil {
		t.Error("an item over maxItem was copied")
	}
	var out bytes.Buffer
	if err := CopyJSONList(strings.NewReader(`{"items":null, "kind":"X"}`), &out, 100, fn); err != nil || out.String() != `{"items":null,"kind":"X"}` {
		t.Fatalf("null items: %q %v", out.String(), err)
	}
}
