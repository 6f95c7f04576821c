package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/yurthub/yurthub/internal/store"
)

// ParseJSONItem fills it from one JSON document held whole (a GET body, a stored
// object): it is validated (as json.Valid would) and must be an object, and the
// cache's fields are read from the members recorded during that one pass, as for
// a list item. When the object has no kind (items of a typed list carry none),
// kind and apiVersion are put first, as a GET would return them, so a cached item
// is the same document as a cached GET.
func ParseJSONItem(raw []byte, kind, apiVersion string, pod bool, it *Item) error {
	s := newJSONBytes(raw)
	obj, spans, err := s.captureSpans(math.MaxInt32, 2, objectParents)
	if err == nil {
		if c, perr := s.peek(); perr != io.EOF {
			err = perr
			if perr == nil {
				err = s.syntax("%s after the top-level value", quoteByte(c))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("decode JSON object: %w", err)
	}
	if obj[0] != '{' {
		return errors.New("decode JSON object: not a JSON object")
	}
	return parseJSONObject(obj, &jsonSpans{spans: spans}, raw, kindPrefix(kind, apiVersion), pod, it)
}

// kindPrefix is the start of an item of a typed list as a GET returns it:
// {"kind":..,"apiVersion":.. (nil without a kind).
func kindPrefix(kind, apiVersion string) []byte {
	if kind == "" {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(`{"kind":`)
	WriteJSONString(&b, kind)
	b.WriteString(`,"apiVersion":`)
	WriteJSONString(&b, apiVersion)
	return b.Bytes()
}

// parseJSONObject fills it from obj, a validated JSON object without surrounding
// whitespace, whose members sp the stream recorded while validating it.
// The stored bytes are own, or a copy of obj when own is nil (obj is
// then borrowed from a read buffer), or prefix + obj's members when obj has no
// kind. A panic while scanning is returned as an error: a malformed object must
// never take the proxy down.
func parseJSONObject(obj []byte, sp *jsonSpans, own, prefix []byte, pod bool, it *Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode JSON object: scanner panic: %v", r)
		}
	}()
	if testScanHook != nil {
		testScanHook()
	}
	var f jsonFields
	if err = scanJSONSpans(obj, sp, pod, &f); err != nil {
		return fmt.Errorf("decode JSON object: %w", err)
	}
	rv, err := parseRVBytes(f.resourceVersion)
	if err != nil {
		return err
	}
	// One allocation for the three strings.
	strs := string(append(append(append(make([]byte, 0, len(f.namespace)+len(f.name)+len(f.nodeName)), f.namespace...), f.name...), f.nodeName...))
	nsEnd, nameEnd := len(f.namespace), len(f.namespace)+len(f.name)
	*it = Item{Namespace: strs[:nsEnd], Name: strs[nsEnd:nameEnd], NodeName: strs[nameEnd:], RV: rv, Enc: store.EncodingJSON, InitialEnd: f.initialEventsEnd}
	switch {
	case len(f.kind) == 0 && prefix != nil:
		rest := bytes.TrimLeft(obj[1:], " \t\r\n")
		data := make([]byte, 0, len(prefix)+1+len(rest))
		data = append(data, prefix...)
		if rest[0] != '}' {
			data = append(data, ',')
		}
		it.Data = append(data, rest...)
	case own != nil:
		it.Data = own
	default:
		it.Data = bytes.Clone(obj)
	}
	return nil
}

// testScanHook, when set by a test, runs before an object is scanned (to check
// the panic guard).
var testScanHook func()

// parseRVBytes is parseRV without converting the common case to a string.
func parseRVBytes(b []byte) (uint64, error) {
	var rv uint64
	for _, c := range b {
		if c < '0' || c > '9' || rv > (1<<64-1-9)/10 {
			return ParseRV(string(b)) // rare: the error, or a value near the top
		}
		rv = rv*10 + uint64(c-'0')
	}
	return rv, nil
}

// DecodeJSONList streams a JSON list ({"kind","apiVersion","metadata":
// {"resourceVersion","continue"},"items":[...]}) with a jsonStream: the whole body
// is validated in one pass as it arrives, each item is cut out of the read buffer
// once complete (at most maxItem bytes, Options.MaxObjectBytes) and handed to sink,
// so only one item is held in memory. Members are matched by exact name, in any
// order, unknown ones are validated and skipped. As with encoding/json, a later
// kind, apiVersion or metadata replaces an earlier one (null leaves a string as it
// was), but items are handed to sink as they are read, so a list repeating
// "items" yields both arrays and items read before "kind" get no kind. Any error
// (syntax, truncation, an item that is not an object) fails the whole list; the
// caller aborts its ListWriter, so nothing of a torn list is stored. Bytes after
// the closing brace are not examined.
func DecodeJSONList(r io.Reader, pod bool, maxItem int, sink ListSink) (ListMeta, error) {
	var lm ListMeta
	s := newJSONStream(r)
	if err := s.expect('{'); err != nil {
		return lm, fmt.Errorf("list: %w", err)
	}
	c, err := s.peekIn()
	if err != nil {
		return lm, fmt.Errorf("list: %w", err)
	}
	if c == '}' {
		return lm, nil
	}
	var apiVersion string
	for {
		key, err := s.member(maxItem)
		if err != nil {
			return lm, fmt.Errorf("list: %w", err)
		}
		switch key {
		case "kind", "apiVersion":
			v, err := s.capture(maxItem)
			if err != nil {
				return lm, fmt.Errorf("list %s: %w", key, err)
			}
			dst := &apiVersion
			if key == "kind" {
				dst = &lm.Kind
			}
			if err := jsonStringOrNull(v, dst); err != nil {
				return lm, fmt.Errorf("list %s: %w", key, err)
			}
			lm.ItemKind = ItemKind(lm.Kind)
		case "metadata":
			v, err := s.capture(maxItem)
			if err != nil {
				return lm, fmt.Errorf("list metadata: %w", err)
			}
			if err := jsonListMeta(v, &lm); err != nil {
				return lm, fmt.Errorf("list metadata: %w", err)
			}
		case "items":
			if err := decodeJSONItems(s, pod, maxItem, kindPrefix(lm.ItemKind, apiVersion), sink); err != nil {
				return lm, err
			}
		default:
			if err := s.skipValue(); err != nil {
				return lm, fmt.Errorf("list %s: %w", key, err)
			}
		}
		c, err := s.peekIn()
		if err != nil {
			return lm, fmt.Errorf("list: %w", err)
		}
		s.pos++
		if c == '}' {
			return lm, nil
		}
		if c != ',' {
			s.pos--
			return lm, fmt.Errorf("list: %w", s.syntax("%s after an object value", quoteByte(c)))
		}
	}
}

// decodeJSONItems reads the value of "items": null or an array of objects.
func decodeJSONItems(s *jsonStream, pod bool, maxItem int, prefix []byte, sink ListSink) error {
	c, err := s.peekIn()
	if err != nil {
		return fmt.Errorf("list items: %w", err)
	}
	if c != '[' {
		v, err := s.capture(maxItem)
		if err != nil {
			return fmt.Errorf("list items: %w", err)
		}
		if string(v) == "null" {
			return nil
		}
		return fmt.Errorf("list items: want an array, got %.20s", v)
	}
	s.pos++
	if c, err = s.peekIn(); err != nil {
		return fmt.Errorf("list items: %w", err)
	}
	if c == ']' {
		s.pos++
		return nil
	}
	var it Item // reused: sink copies what it keeps
	var sp jsonSpans
	for n := 0; ; n++ {
		raw, spans, err := s.captureSpans(maxItem, 2, objectParents)
		if err != nil {
			return fmt.Errorf("list item %d: %w", n, err)
		}
		if raw[0] != '{' {
			return fmt.Errorf("list item %d: not a JSON object", n)
		}
		sp.spans = spans
		if err := parseJSONObject(raw, &sp, nil, prefix, pod, &it); err != nil {
			return fmt.Errorf("list item %d: %w", n, err)
		}
		if err := sink.Add(&it); err != nil {
			return err
		}
		c, err := s.peekIn()
		if err != nil {
			return fmt.Errorf("list items: %w", err)
		}
		switch c {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return fmt.Errorf("list items: %w", s.syntax("%s after an array element", quoteByte(c)))
		}
	}
}

// jsonStringOrNull sets *dst from a validated value that must be a string; null
// leaves *dst as it was (as encoding/json does).
func jsonStringOrNull(v []byte, dst *string) error {
	switch v[0] {
	case '"':
		s, err := unquoteJSON(v)
		if err != nil {
			return err
		}
		*dst = s
		return nil
	case 'n':
		return nil
	}
	return fmt.Errorf("want a string, got %.20s", v)
}

// jsonEventType is jsonStringOrNull without allocating for the usual types.
func jsonEventType(v []byte, dst *string) error {
	for _, t := range [...]string{"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"} {
		if len(v) == len(t)+2 && string(v[1:len(v)-1]) == t && v[0] == '"' {
			*dst = t
			return nil
		}
	}
	return jsonStringOrNull(v, dst)
}

// jsonListMeta reads resourceVersion and continue from a list's validated
// metadata value (an object, or null for none).
func jsonListMeta(v []byte, lm *ListMeta) error {
	var rv, cont string
	switch v[0] {
	case 'n':
	case '{':
		sc := jsonScanner{b: v}
		err := sc.object(func(key []byte) error {
			var dst *string
			switch string(key) {
			case "resourceVersion":
				dst = &rv
			case "continue":
				dst = &cont
			default:
				return sc.skip()
			}
			start := sc.i
			if err := sc.skip(); err != nil {
				return err
			}
			return jsonStringOrNull(v[start:sc.i], dst)
		})
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("want an object, got %.20s", v)
	}
	n, err := ParseRV(rv)
	if err != nil {
		return err
	}
	lm.RV, lm.Continue = n, cont
	return nil
}

// jsonWatchDecoder reads a JSON watch stream: concatenated {"type":..,"object":..}
// documents (whitespace between them optional), each validated by a jsonStream and
// handed out as soon as its closing brace arrives. An event is at most max bytes
// (Options.MaxObjectBytes, as for a protobuf watch frame). The stream's end
// between two events is io.EOF, inside one io.ErrUnexpectedEOF, and a read error
// is returned as is, so the events before a cut stay applied. "type" must be a
// string (null counts as absent) and, unless the type is ERROR, "object" a JSON
// object; members are matched by exact name, the last of a repeated one wins,
// unknown ones are ignored.
type jsonWatchDecoder struct {
	s   *jsonStream
	pod bool
	max int
}

func NewJSONWatchDecoder(r io.Reader, pod bool, max int) *jsonWatchDecoder {
	return &jsonWatchDecoder{s: newJSONStream(r), pod: pod, max: max}
}

func (d *jsonWatchDecoder) Next(ev *Event) error {
	if _, err := d.s.peek(); err != nil {
		return err
	}
	raw, spans, err := d.s.captureSpans(d.max, 3, objectParents)
	if err != nil {
		return fmt.Errorf("watch event: %w", err)
	}
	if raw[0] != '{' {
		return errors.New("watch event: not a JSON object")
	}
	ev.Type = ""
	var obj jsonSpan
	haveObj := false
	first, objFirst, objEnd := 0, 0, 0
	ek := jsonSpans{spans: spans}
	for i, m := range spans {
		if m.depth != 1 {
			continue
		}
		key, err := ek.key(raw, m)
		if err != nil {
			return fmt.Errorf("watch event: %w", err)
		}
		switch string(key) {
		case "type":
			if err := jsonEventType(raw[m.vs:m.ve], &ev.Type); err != nil {
				return fmt.Errorf("watch event type: %w", err)
			}
		case "object":
			obj, haveObj, objFirst, objEnd = m, true, first, i
		}
		first = i + 1
	}
	if ev.Type == "ERROR" {
		ev.Item = Item{}
		return nil
	}
	if !haveObj || raw[obj.vs] != '{' {
		return fmt.Errorf("watch event %q: object is not a JSON object", ev.Type)
	}
	sp := jsonSpans{spans: spans[objFirst:objEnd], off: obj.vs, dd: 1}
	return parseJSONObject(raw[obj.vs:obj.ve], &sp, nil, nil, d.pod, &ev.Item)
}

// objectParents is the captureSpans parent filter for Kubernetes objects: the
// members recorded are those of the members the scanner reads fields from (a
// watch event's object, metadata, spec). An escaped key is recorded, to be
// compared once unquoted.
func objectParents(key []byte) bool {
	switch string(key) {
	case "object", "metadata", "spec":
		return true
	}
	return hasBackslash(key)
}
