package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns b in chunks of random sizes in [1, max].
type chunkReader struct {
	b   []byte
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.Intn(c.max), len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// readers returns the ways a test feeds b to a stream: whole, one byte at a time,
// random small and large chunks, data together with EOF.
func readers(b []byte, seed int64) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":     func() io.Reader { return bytes.NewReader(b) },
		"one-byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"chunks-7":  func() io.Reader { return &chunkReader{b: b, rng: rand.New(rand.NewSource(seed)), max: 7} },
		"chunks-4k": func() io.Reader { return &chunkReader{b: b, rng: rand.New(rand.NewSource(seed)), max: 4096} },
		"data-err":  func() io.Reader { return iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(b))) },
	}
}

var jsonValidityCases = []string{
	// valid
	`{}`, `[]`, `0`, `-0`, `1.5e10`, `-12.25E-3`, `1E+2`, `true`, `false`, `null`, `""`,
	` {"a" : [1, 2.0, -3e2, true, false, null, "x", {}, []] } `,
	`"\"\\\/\b\f\n\r\t\u00e9\uD834\uDD1E"`, `"é中文😀"`, "\"\xff\xfe invalid UTF-8 is accepted by encoding/json\"",
	`"\ud800 lone surrogate"`, `{"a":{"b":{"c":[[[[]]]]}}}`, "\t\n\r [ ] \n",
	`123456789012345678901234567890`, `[1,[2,[3]]]`, `{"":""}`,
	// invalid
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a":1 "b":2}`,
	`{"a" 1}`, `{a:1}`, `{'a':1}`, `01`, `-`, `-a`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x10`, `1.e3`,
	`tru`, `truee`, `nul`, `NaN`, `Infinity`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01b\"",
	"\"tab\tinside\"", `"\`, `[1 2]`, `{} {}`, `{}x`, `1 2`, "\xef\xbb\xbf{}", `[1]]`, `{"a":1}}`,
	`[}`, `{]`, `{"a":[}`, "{\"a\":\x00}", `/* c */ {}`, `{"a":1}/`,
}

// The validator accepts exactly what json.Valid accepts, however the bytes arrive.
func TestJSONStreamValidity(t *testing.T) {
	for i, in := range jsonValidityCases {
		b := []byte(in)
		want := json.Valid(b)
		for name, r := range readers(b, int64(i)) {
			err := newJSONStream(r()).document()
			if (err == nil) != want {
				t.Errorf("%q via %s: err = %v, json.Valid = %v", in, name, err, want)
			}
		}
	}
}

func TestJSONStreamDepthLimit(t *testing.T) {
	for _, depth := range []int{jsonMaxDepth, jsonMaxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			close := "]"
			if open != "[" {
				close = "}"
			}
			b := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth))
			err := validJSON(b)
			if (err == nil) != json.Valid(b) || (err == nil) != (depth <= jsonMaxDepth) {
				t.Errorf("depth %d %s: err = %v, json.Valid = %v", depth, open, err, json.Valid(b))
			}
			if depth > jsonMaxDepth && !errors.Is(err, errJSONDepth) {
				t.Errorf("depth %d: err = %v, want errJSONDepth", depth, err)
			}
		}
	}
}

// testList is a list whose items exercise escapes, non-ASCII, numbers, nesting and
// whitespace, so that read boundaries fall everywhere.
func testList(n int) []byte {
	var b bytes.Buffer
	b.WriteString("{ \"kind\" : \"PodList\",\"apiVersion\":\"v1\",\"extra\":{\"x\":[1,2.5e3,-0,true,null]},\n\"metadata\":{\"resourceVersion\":\"900\",\"continue\":\"c\\u0031\"},\"items\":[ ")
	for i := range n {
		if i > 0 {
			b.WriteString(" ,\n")
		}
		fmt.Fprintf(&b, `{"metadata":{"name":"p-%d","namespace":"n\u00e9\"s","resourceVersion":"%d","annotations":{"a":"}{[\\\"]"}},`+
			`"spec":{"nodeName":"node-%d","containers":[{"name":"c","args":["a\tb","\\","日本語 😀"],"n":%d.%de-%d}]},"status":{"phase":"Running","x":[[[]],{}]}}`,
			i, 100+i, i%3, i, i, i%5)
	}
	b.WriteString("] }\n")
	return b.Bytes()
}

type collectSink struct{ items []Item }

func (c *collectSink) Add(it *Item) error { c.items = append(c.items, *it); return nil }

func itemString(it Item) string {
	return fmt.Sprintf("%s/%s@%d node=%q end=%v %s", it.Namespace, it.Name, it.RV, it.NodeName, it.InitialEnd, it.Data)
}

func itemsString(its []Item) string {
	var b strings.Builder
	for _, it := range its {
		b.WriteString(itemString(it))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestDecodeJSONListChunkBoundaries(t *testing.T) {
	body := testList(50)
	var want collectSink
	wantLM, err := refDecodeJSONList(bytes.NewReader(body), true, &want)
	if err != nil || len(want.items) != 50 {
		t.Fatalf("reference: %d items, %v", len(want.items), err)
	}
	if wantLM.RV != 900 || wantLM.Continue != "c1" || wantLM.ItemKind != "Pod" {
		t.Fatalf("reference list meta %+v", wantLM)
	}
	if !bytes.HasPrefix(want.items[0].Data, []byte(`{"kind":"Pod","apiVersion":"v1","metadata":`)) || want.items[0].Namespace != `né"s` {
		t.Fatalf("reference item %s", itemString(want.items[0]))
	}
	for seed := range int64(5) {
		for name, r := range readers(body, seed) {
			var got collectSink
			lm, err := DecodeJSONList(r(), true, 16<<20, &got)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if lm != wantLM || itemsString(got.items) != itemsString(want.items) {
				t.Fatalf("%s: got %+v\n%s\nwant %+v\n%s", name, lm, itemsString(got.items), wantLM, itemsString(want.items))
			}
		}
	}
}

// Every cut of a list body is an error: a torn list is never reported complete.
func TestDecodeJSONListTruncated(t *testing.T) {
	body := testList(3)
	for n := range len(body) - 1 { // the trailing newline is not part of the document
		var s collectSink
		if _, err := DecodeJSONList(bytes.NewReader(body[:n]), true, 1<<20, &s); err == nil {
			t.Fatalf("a list cut after %d of %d bytes decoded without error", n, len(body))
		}
		if _, err := DecodeJSONList(iotest.OneByteReader(bytes.NewReader(body[:n])), true, 1<<20, &s); err == nil {
			t.Fatalf("a list cut after %d bytes decoded without error (one byte at a time)", n)
		}
	}
}

func TestDecodeJSONListErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`[]`, `want '{'`},
		{`{"items":[1]}`, "not a JSON object"},
		{`{"items":{}}`, "want an array"},
		{`{"items":[{"metadata":{"resourceVersion":"x"}}]}`, "not a number"},
		{`{"metadata":{"resourceVersion":5}}`, "want a string"},
		{`{"metadata":[]}`, "want an object"},
		{`{"kind":1}`, "want a string"},
		{`{"items":[{"a":1} {"b":2}]}`, "after an array element"},
		{`{"items":[{"a":01}]}`, "invalid JSON"},
		{`{"items":[{"a":"b`, "unexpected EOF"},
	} {
		_, err := DecodeJSONList(strings.NewReader(c.body), false, 1<<20, &collectSink{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.body, err, c.want)
		}
	}
	// null items and a null kind are accepted (as encoding/json does).
	lm, err := DecodeJSONList(strings.NewReader(`{"kind":"XList","kind":null,"items":null,"metadata":{"resourceVersion":"7"}}`), false, 1<<20, &collectSink{})
	if err != nil || lm.Kind != "XList" || lm.RV != 7 {
		t.Errorf("null members: %+v %v", lm, err)
	}
}

func TestJSONSizeLimit(t *testing.T) {
	item := `{"metadata":{"name":"x"},"data":"` + strings.Repeat("a", 1000) + `"}`
	body := []byte(`{"kind":"XList","items":[` + item + `]}`)
	for name, r := range readers(body, 1) {
		if _, err := DecodeJSONList(r(), false, len(item), &collectSink{}); err != nil {
			t.Errorf("%s: item of exactly the limit: %v", name, err)
		}
		_, err := DecodeJSONList(r(), false, len(item)-1, &collectSink{})
		var tl *errJSONTooLarge
		if !errors.As(err, &tl) || !strings.Contains(err.Error(), "Options.MaxObjectBytes") {
			t.Errorf("%s: item over the limit: %v", name, err)
		}
	}
	// A large item (bigger than the read buffer) within the limit.
	big := `{"metadata":{"name":"big"},"data":"` + strings.Repeat("b", 3*jsonBufSize) + `"}`
	var s collectSink
	if _, err := DecodeJSONList(strings.NewReader(`{"items":[`+big+`,`+big+`]}`), false, 4*jsonBufSize, &s); err != nil || len(s.items) != 2 || string(s.items[1].Data) != big {
		t.Fatalf("big items: %d, %v", len(s.items), err)
	}
	// The buffer grown for a large watch event is not kept for the events after it.
	big2 := `{"type":"ADDED","object":` + big + "}\n"
	small := `{"type":"ADDED","object":{"metadata":{"name":"s"}}}` + "\n"
	wd := NewJSONWatchDecoder(strings.NewReader(big2+strings.Repeat(small, 3000)), false, 4*jsonBufSize)
	res := runWatch(wd)
	if res.err != io.EOF || len(res.events) != 3001 || len(wd.s.buf) != jsonBufSize {
		t.Fatalf("big then small events: %d events, %v, buffer of %d bytes", len(res.events), res.err, len(wd.s.buf))
	}
	// Watch events are bounded too; skipped list members are not held, so not bounded.
	ev := `{"type":"ADDED","object":` + item + "}\n"
	d := NewJSONWatchDecoder(strings.NewReader(ev+ev), false, len(ev)-2)
	var we Event
	if err := d.Next(&we); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("watch event over the limit: %v", err)
	}
	if _, err := DecodeJSONList(strings.NewReader(`{"skipped":"`+strings.Repeat("c", 1<<20)+`","items":[]}`), false, 1000, &collectSink{}); err != nil {
		t.Errorf("large skipped member: %v", err)
	}
}

func testWatch() []byte {
	var b bytes.Buffer
	for i := range 20 {
		typ := []string{"ADDED", "MODIFIED", "DELETED", "BOOKMARK"}[i%4]
		fmt.Fprintf(&b, `{"type":"%s","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p\u0020%d","resourceVersion":"%d","annotations":{"k8s.io/initial-events-end":"%v"}},"spec":{"nodeName":"n"}}}`, typ, i, 10+i, i == 3)
		b.WriteString([]string{"\n", "", " \r\n\t"}[i%3])
	}
	b.WriteString(`{"object":{"kind":"Status","code":410},"type":"ERROR"}` + "\n")
	return b.Bytes()
}

type watchResult struct {
	events []string
	err    error // io.EOF at a clean end
}

func runWatch(dec EventDecoder) watchResult {
	var res watchResult
	for {
		var ev Event
		if err := dec.Next(&ev); err != nil {
			res.err = err
			return res
		}
		res.events = append(res.events, ev.Type+" "+itemString(ev.Item))
	}
}

// errClass is how the manager treats a watch decoder's error: the end of the
// stream, a cut inside an event, or a failure.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	}
	return "error"
}

func TestJSONWatchChunkBoundariesAndCuts(t *testing.T) {
	body := testWatch()
	want := runWatch(&refWatchDecoder{dec: json.NewDecoder(bytes.NewReader(body)), pod: true})
	if want.err != io.EOF || len(want.events) != 21 || !strings.Contains(want.events[3], "end=true") {
		t.Fatalf("reference: %v %q", want.err, want.events)
	}
	for seed := range int64(3) {
		for name, r := range readers(body, seed) {
			got := runWatch(NewJSONWatchDecoder(r(), true, 1<<20))
			if got.err != io.EOF || strings.Join(got.events, "\n") != strings.Join(want.events, "\n") {
				t.Fatalf("%s: %v\n%s", name, got.err, strings.Join(got.events, "\n"))
			}
		}
	}
	// Cut anywhere: the events before the cut are decoded, then EOF (between
	// events) or io.ErrUnexpectedEOF (inside one), as with encoding/json.
	for n := range len(body) {
		ref := runWatch(&refWatchDecoder{dec: json.NewDecoder(bytes.NewReader(body[:n])), pod: true})
		got := runWatch(NewJSONWatchDecoder(iotest.OneByteReader(bytes.NewReader(body[:n])), true, 1<<20))
		if errClass(got.err) != errClass(ref.err) || len(got.events) != len(ref.events) {
			t.Fatalf("cut at %d: %d events, %v; reference %d events, %v", n, len(got.events), got.err, len(ref.events), ref.err)
		}
	}
	// A read error other than EOF is returned as is.
	cut := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(body[:100]), iotest.ErrReader(cut))
	if got := runWatch(NewJSONWatchDecoder(r, true, 1<<20)); !errors.Is(got.err, cut) {
		t.Fatalf("read error: %v", got.err)
	}
}

func TestJSONWatchErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`[]`, "not a JSON object"},
		{`{"type":"ADDED","object":null}`, "not a JSON object"},
		{`{"type":"ADDED","object":[1]}`, "not a JSON object"},
		{`{"type":"ADDED"}`, "not a JSON object"},
		{`{"type":1,"object":{}}`, "want a string"},
		{`{"type":"ADDED","object":{}]`, "invalid JSON"},
	} {
		var ev Event
		err := NewJSONWatchDecoder(strings.NewReader(c.body), false, 1<<20).Next(&ev)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.body, err, c.want)
		}
	}
	// Last member wins; unknown members and ERROR objects are not looked at.
	var ev Event
	d := NewJSONWatchDecoder(strings.NewReader(`{"type":"ADDED","x":[{}],"object":{"metadata":{"name":"a"}},"object":{"metadata":{"name":"b"}},"type":"MODIFIED"}{"type":"ERROR","object":7}`), false, 1<<20)
	if err := d.Next(&ev); err != nil || ev.Type != "MODIFIED" || ev.Item.Name != "b" {
		t.Fatalf("duplicate members: %v %+v", err, ev)
	}
	if err := d.Next(&ev); err != nil || ev.Type != "ERROR" {
		t.Fatalf("ERROR event: %v %+v", err, ev)
	}
}

// A panic while scanning an object is an error, not a crash of the proxy path.
func TestParseJSONItemPanicGuard(t *testing.T) {
	testScanHook = func() { panic("boom") }
	defer func() { testScanHook = nil }()
	var it Item
	if err := ParseJSONItem([]byte(`{"metadata":{"name":"a"}}`), "", "", false, &it); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if _, err := DecodeJSONList(strings.NewReader(`{"items":[{}]}`), false, 100, &collectSink{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("list: err = %v", err)
	}
	var ev Event
	if err := NewJSONWatchDecoder(strings.NewReader(`{"type":"ADDED","object":{}}`), false, 100).Next(&ev); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("watch: err = %v", err)
	}
}

func TestParseJSONItemValidates(t *testing.T) {
	var it Item
	for _, in := range []string{`{"metadata":{"name":"a"}`, `[]`, `{"metadata":{"name":"a"}} x`, `{"a":tru}`} {
		if err := ParseJSONItem([]byte(in), "", "", false, &it); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	in := "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"18446744073709551615\"}}\n"
	if err := ParseJSONItem([]byte(in), "", "", false, &it); err != nil || it.RV != 1<<64-1 || string(it.Data) != in {
		t.Errorf("GET body: %v %+v", err, it)
	}
	for _, rv := range []string{"18446744073709551616", "-1", "1x", "+1", " 1"} {
		if err := ParseJSONItem([]byte(`{"metadata":{"resourceVersion":"`+rv+`"}}`), "", "", false, &it); err == nil {
			t.Errorf("resourceVersion %q: no error", rv)
		}
	}
}

// FuzzJSONDecode checks, for any input, that the streaming validator agrees with
// json.Valid (however the bytes are chunked), and that the list and watch decoders
// agree with the encoding/json reference decoders (jsonref_test.go).
func FuzzJSONDecode(f *testing.F) {
	f.Add(testList(2))
	f.Add(testWatch())
	for _, c := range jsonValidityCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"kind":"PodList","items":[{"metadata":{"name":"a","resourceVersion":"1"},"spec":{"nodeName":"n"}}],"metadata":{"resourceVersion":"2"}}`))
	f.Add([]byte(`{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5","annotations":{"k8s.io/initial-events-end":"true"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if err := validJSON(b); (err == nil) != want {
			t.Fatalf("validJSON = %v, json.Valid = %v", err, want)
		}
		seed := int64(len(b))
		if len(b) > 0 {
			seed += int64(b[0]) << 8
		}
		r := &chunkReader{b: b, rng: rand.New(rand.NewSource(seed)), max: 1 + int(seed%13)}
		if err := newJSONStream(r).document(); (err == nil) != want {
			t.Fatalf("chunked: %v, json.Valid = %v", err, want)
		}

		var got, ref collectSink
		lm, err := DecodeJSONList(iotest.OneByteReader(bytes.NewReader(b)), true, 1<<20, &got)
		rlm, rerr := refDecodeJSONList(bytes.NewReader(b), true, &ref)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("list: err = %v, reference err = %v", err, rerr)
		}
		if err == nil && (lm != rlm || itemsString(got.items) != itemsString(ref.items)) {
			t.Fatalf("list: %+v\n%s\nreference %+v\n%s", lm, itemsString(got.items), rlm, itemsString(ref.items))
		}

		w := runWatch(NewJSONWatchDecoder(&chunkReader{b: b, rng: rand.New(rand.NewSource(seed)), max: 5}, true, 1<<20))
		rw := runWatch(&refWatchDecoder{dec: json.NewDecoder(bytes.NewReader(b)), pod: true})
		if errClass(w.err) != errClass(rw.err) || strings.Join(w.events, "\n") != strings.Join(rw.events, "\n") {
			t.Fatalf("watch: %v %q\nreference %v %q", w.err, w.events, rw.err, rw.events)
		}
	})
}

// Reading the fields through the recorded members gives what the scanner reads.
func TestScanJSONSpansAgreesWithScanner(t *testing.T) {
	inputs := append(scanInputs(),
		`{"m\u0065tadata":{"n\u0061me":"escaped-key"}}`,
		`{"metadata":{"name":"first","namespace":"ns"},"metadata":{"name":"second"},"kind":"A","kind":7,"spec":{"nodeName":"x"},"spec":[]}`)
	for _, in := range inputs {
		var want, got jsonFields
		if err := scanJSONObject([]byte(in), true, &want); err != nil {
			t.Fatal(err)
		}
		s := newJSONBytes([]byte(in))
		raw, spans, err := s.captureSpans(1<<20, 2, objectParents)
		if err != nil {
			t.Fatal(err)
		}
		if err := scanJSONSpans(raw, &jsonSpans{spans: spans}, true, &got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s:\n spans   %v\n scanner %v", in, &got, &want)
		}
	}
}

// scanInputs are objects the field readers are checked on: nested and escaped
// strings, non-object metadata and spec, nulls, spaces, a custom resource, {}.
func scanInputs() []string {
	return []string{
		`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"b","resourceVersion":"12"},"spec":{"nodeName":"n"}}`,
		`{"metadata":{"annotations":{"x":"}{][\"","k8s.io/initial-events-end":"true"},"name":"a\"b\\c","resourceVersion":"7"},"spec":{"containers":[{"name":"{[\"]}"}],"nodeName":"n\u00e9"}}`,
		`{"spec":"not an object","metadata":null,"kind":"X"}`,
		`{"spec":{"nodeName":null},"metadata":{"name":"x","labels":{"a":"b"},"managedFields":[{"f:spec":{"f:x":{}}}],"resourceVersion":"99"}}`,
		`{ "kind" : "Widget" , "apiVersion":"example.com/v1", "metadata" : { "name" : "w" , "namespace":"ns" } , "spec" : { "size" : 3.5e2, "on": true, "list": [1, 2, [3]] } }`,
		`{}`,
	}
}

// The JSON field scanner must agree with encoding/json on whatever it reads.
func TestScanJSONObjectAgreesWithEncodingJSON(t *testing.T) {
	inputs := append(scanInputs(), `{"m\u0065tadata":{"name":"escaped-key"}}`)
	for _, in := range inputs {
		var f jsonFields
		if err := scanJSONObject([]byte(in), true, &f); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		var ref struct {
			Kind, APIVersion string
			Metadata         *struct {
				Name, Namespace, ResourceVersion string
				Annotations                      map[string]string
			}
			Spec json.RawMessage
		}
		if err := json.Unmarshal([]byte(in), &ref); err != nil {
			t.Fatal(err)
		}
		var want jsonFields
		want.kind, want.apiVersion = []byte(ref.Kind), []byte(ref.APIVersion)
		if ref.Metadata != nil {
			want.name, want.namespace, want.resourceVersion = []byte(ref.Metadata.Name), []byte(ref.Metadata.Namespace), []byte(ref.Metadata.ResourceVersion)
			want.initialEventsEnd = ref.Metadata.Annotations["k8s.io/initial-events-end"] == "true"
		}
		var spec struct{ NodeName *string }
		if json.Unmarshal(ref.Spec, &spec) == nil && spec.NodeName != nil {
			want.nodeName = []byte(*spec.NodeName)
		}
		if f.String() != want.String() {
			t.Errorf("%s:\n scanner  %v\n encoding/json %v", in, &f, &want)
		}
	}
}
