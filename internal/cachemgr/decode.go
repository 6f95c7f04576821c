package cachemgr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/store"
)

// Decoding works on the wire form, without building typed objects: the cache
// needs only each object's bytes, namespace, name, resourceVersion (and a pod's
// spec.nodeName, and a bookmark's initial-events-end annotation). JSON items are
// scanned with encoding/json into a few fields; protobuf items are walked with
// protowire over the fields every Kubernetes object shares (metadata = 1 with
// name 1, namespace 3, resourceVersion 6, annotations 12; List: metadata 1 with
// resourceVersion 2 and continue 3, items 2; Pod: spec 2 with nodeName 10), the
// same field numbers client-go's generated code uses. Built-in and custom types
// are therefore handled alike, and an item is never decoded into a Go struct.

// protoMagic prefixes every Kubernetes protobuf envelope (runtime.Unknown).
var protoMagic = []byte{'k', '8', 's', 0}

// item is one decoded object.
type item struct {
	namespace, name string
	rv              uint64
	nodeName        string
	initialEnd      bool // bookmark with k8s.io/initial-events-end=true
	data            []byte
	enc             store.Encoding
}

func (it *item) object() store.Object {
	return store.Object{Namespace: it.namespace, Name: it.name, ResourceVersion: it.rv, Encoding: it.enc, Data: it.data}
}

func parseRV(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("resourceVersion %q is not a number: %w", s, err)
	}
	return rv, nil
}

// ---- JSON ----

// parseJSONItem fills it from one JSON document held whole (a GET body, a stored
// object): it is validated (as json.Valid would) and must be an object, and the
// cache's fields are read from the members recorded during that one pass, as for
// a list item. When the object has no kind (items of a typed list carry none),
// kind and apiVersion are put first, as a GET would return them, so a cached item
// is the same document as a cached GET.
func parseJSONItem(raw []byte, kind, apiVersion string, pod bool, it *item) error {
	s := newJSONBytes(raw)
	obj, spans, err := s.captureSpans(math.MaxInt32, 2)
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
	writeJSONString(&b, kind)
	b.WriteString(`,"apiVersion":`)
	writeJSONString(&b, apiVersion)
	return b.Bytes()
}

// parseJSONObject fills it from obj, a validated JSON object without surrounding
// whitespace, whose members sp the stream recorded while validating it.
// The stored bytes are own, or a copy of obj when own is nil (obj is
// then borrowed from a read buffer), or prefix + obj's members when obj has no
// kind. A panic while scanning is returned as an error: a malformed object must
// never take the proxy down.
func parseJSONObject(obj []byte, sp *jsonSpans, own, prefix []byte, pod bool, it *item) (err error) {
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
	*it = item{namespace: strs[:nsEnd], name: strs[nsEnd:nameEnd], nodeName: strs[nameEnd:], rv: rv, enc: store.EncodingJSON, initialEnd: f.initialEventsEnd}
	switch {
	case len(f.kind) == 0 && prefix != nil:
		rest := bytes.TrimLeft(obj[1:], " \t\r\n")
		data := make([]byte, 0, len(prefix)+1+len(rest))
		data = append(data, prefix...)
		if rest[0] != '}' {
			data = append(data, ',')
		}
		it.data = append(data, rest...)
	case own != nil:
		it.data = own
	default:
		it.data = bytes.Clone(obj)
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
			return parseRV(string(b)) // rare: the error, or a value near the top
		}
		rv = rv*10 + uint64(c-'0')
	}
	return rv, nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

// itemKind is the kind of a list's items: "PodList" => "Pod".
func itemKind(listKind string) string { return strings.TrimSuffix(listKind, "List") }

// listSink receives a list's items as they are decoded.
type listSink interface {
	add(it *item) error
}

type listMeta struct {
	rv       uint64
	cont     string
	kind     string
	itemKind string
}

// decodeJSONList streams a JSON list ({"kind","apiVersion","metadata":
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
func decodeJSONList(r io.Reader, pod bool, maxItem int, sink listSink) (listMeta, error) {
	var lm listMeta
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
				dst = &lm.kind
			}
			if err := jsonStringOrNull(v, dst); err != nil {
				return lm, fmt.Errorf("list %s: %w", key, err)
			}
			lm.itemKind = itemKind(lm.kind)
		case "metadata":
			v, err := s.capture(maxItem)
			if err != nil {
				return lm, fmt.Errorf("list metadata: %w", err)
			}
			if err := jsonListMeta(v, &lm); err != nil {
				return lm, fmt.Errorf("list metadata: %w", err)
			}
		case "items":
			if err := decodeJSONItems(s, pod, maxItem, kindPrefix(lm.itemKind, apiVersion), sink); err != nil {
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
func decodeJSONItems(s *jsonStream, pod bool, maxItem int, prefix []byte, sink listSink) error {
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
	var it item // reused: sink copies what it keeps
	var sp jsonSpans
	for n := 0; ; n++ {
		raw, spans, err := s.captureSpans(maxItem, 2)
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
		if err := sink.add(&it); err != nil {
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
func jsonListMeta(v []byte, lm *listMeta) error {
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
	n, err := parseRV(rv)
	if err != nil {
		return err
	}
	lm.rv, lm.cont = n, cont
	return nil
}

// watchEvent is one decoded watch event.
type watchEvent struct {
	typ string
	it  item
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

func newJSONWatchDecoder(r io.Reader, pod bool, max int) *jsonWatchDecoder {
	return &jsonWatchDecoder{s: newJSONStream(r), pod: pod, max: max}
}

func (d *jsonWatchDecoder) next(ev *watchEvent) error {
	if _, err := d.s.peek(); err != nil {
		return err
	}
	raw, spans, err := d.s.captureSpans(d.max, 3)
	if err != nil {
		return fmt.Errorf("watch event: %w", err)
	}
	if raw[0] != '{' {
		return errors.New("watch event: not a JSON object")
	}
	ev.typ = ""
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
			if err := jsonEventType(raw[m.vs:m.ve], &ev.typ); err != nil {
				return fmt.Errorf("watch event type: %w", err)
			}
		case "object":
			obj, haveObj, objFirst, objEnd = m, true, first, i
		}
		first = i + 1
	}
	if ev.typ == "ERROR" {
		ev.it = item{}
		return nil
	}
	if !haveObj || raw[obj.vs] != '{' {
		return fmt.Errorf("watch event %q: object is not a JSON object", ev.typ)
	}
	sp := jsonSpans{spans: spans[objFirst:objEnd], off: obj.vs, dd: 1}
	return parseJSONObject(raw[obj.vs:obj.ve], &sp, nil, nil, d.pod, &ev.it)
}

// ---- protobuf ----

// protoObjectMeta reads name, namespace, resourceVersion and the initial-events-end
// annotation from an ObjectMeta message.
func protoObjectMeta(b []byte, it *item) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 3 || num == 6 || num == 12) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case 1:
				it.name = string(v)
			case 3:
				it.namespace = string(v)
			case 6:
				rv, err := parseRV(string(v))
				if err != nil {
					return err
				}
				it.rv = rv
			case 12:
				k, val := protoMapEntry(v)
				if k == metav1.InitialEventsAnnotationKey && val == "true" {
					it.initialEnd = true
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

func protoMapEntry(b []byte) (key, val string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if num == 1 {
				key = string(v)
			} else if num == 2 {
				val = string(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return
		}
		b = b[n:]
	}
	return
}

// protoField returns the bytes of the first length-delimited field num of message b.
func protoField(b []byte, num protowire.Number) ([]byte, bool) {
	for len(b) > 0 {
		n2, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if n2 == num && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			return v, true
		}
		n = protowire.ConsumeFieldValue(n2, typ, b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	return nil, false
}

// parseProtoObject fills it from a bare object message (no envelope); data is set
// by the caller.
func parseProtoObject(msg []byte, pod bool, it *item) error {
	if meta, ok := protoField(msg, 1); ok {
		if err := protoObjectMeta(meta, it); err != nil {
			return fmt.Errorf("decode protobuf metadata: %w", err)
		}
	}
	if pod {
		if spec, ok := protoField(msg, 2); ok {
			if nn, ok := protoField(spec, 10); ok {
				it.nodeName = string(nn)
			}
		}
	}
	return nil
}

// parseProtoEnvelope fills it from a full "k8s\0"+Unknown document (a GET body or a
// watch event's object); the stored bytes are the envelope as received.
func parseProtoEnvelope(doc []byte, pod bool, it *item) error {
	if !bytes.HasPrefix(doc, protoMagic) {
		return errors.New("protobuf object without the k8s envelope")
	}
	var u runtime.Unknown
	if err := u.Unmarshal(doc[len(protoMagic):]); err != nil {
		return fmt.Errorf("decode protobuf envelope: %w", err)
	}
	*it = item{enc: store.EncodingProtobuf, data: doc}
	return parseProtoObject(u.Raw, pod, it)
}

// envelope wraps a bare item message the way the apiserver encodes a GET.
func envelope(apiVersion, kind string, msg []byte) ([]byte, error) {
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: msg}
	b := make([]byte, len(protoMagic)+u.Size())
	copy(b, protoMagic)
	if _, err := u.MarshalToSizedBuffer(b[len(protoMagic):]); err != nil {
		return nil, err
	}
	return b, nil
}

// protoReader reads protobuf wire data from a stream.
type protoReader struct {
	r   *bufio.Reader
	buf []byte
}

func (p *protoReader) varint() (uint64, error) { return binary.ReadUvarint(p.r) }

func (p *protoReader) tag() (protowire.Number, protowire.Type, error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < 1 {
		return 0, 0, fmt.Errorf("protobuf: bad field number in tag %d", v)
	}
	return num, typ, nil
}

// bytesField reads a length-delimited value into a fresh slice (capped at max).
func (p *protoReader) bytesField(max uint64) ([]byte, error) {
	n, err := p.varint()
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("protobuf: field of %d bytes exceeds the %d-byte limit", n, max)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(p.r, b)
	return b, err
}

func (p *protoReader) skip(typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := p.varint()
		return err
	case protowire.Fixed32Type:
		_, err := p.r.Discard(4)
		return err
	case protowire.Fixed64Type:
		_, err := p.r.Discard(8)
		return err
	case protowire.BytesType:
		n, err := p.varint()
		if err != nil {
			return err
		}
		_, err = io.CopyN(io.Discard, p.r, int64(n))
		return err
	}
	return fmt.Errorf("protobuf: unsupported wire type %d", typ)
}

// decodeProtoList streams a protobuf list: the envelope's raw field (the List
// message) is walked field by field, so only one item is held in memory.
func decodeProtoList(r io.Reader, pod bool, maxItem uint64, sink listSink) (listMeta, error) {
	var lm listMeta
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(protoMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return lm, err
	}
	if !bytes.Equal(magic, protoMagic) {
		return lm, errors.New("protobuf list without the k8s envelope")
	}
	p := &protoReader{r: br}
	var apiVersion string
	sawRaw := false
	for {
		num, typ, err := p.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return lm, err
		}
		switch {
		case num == 1 && typ == protowire.BytesType: // typeMeta
			tm, err := p.bytesField(1 << 16)
			if err != nil {
				return lm, err
			}
			if v, ok := protoField(tm, 1); ok {
				apiVersion = string(v)
			}
			if v, ok := protoField(tm, 2); ok {
				lm.kind = string(v)
				lm.itemKind = itemKind(lm.kind)
			}
		case num == 2 && typ == protowire.BytesType: // raw: the List message
			sawRaw = true
			n, err := p.varint()
			if err != nil {
				return lm, err
			}
			if err := decodeProtoListBody(&protoReader{r: bufio.NewReaderSize(io.LimitReader(br, int64(n)), 64<<10)}, apiVersion, pod, maxItem, &lm, sink); err != nil {
				return lm, err
			}
		default:
			if err := p.skip(typ); err != nil {
				return lm, err
			}
		}
	}
	if !sawRaw {
		return lm, errors.New("protobuf list envelope without a body")
	}
	return lm, nil
}

func decodeProtoListBody(p *protoReader, apiVersion string, pod bool, maxItem uint64, lm *listMeta, sink listSink) error {
	for {
		num, typ, err := p.tag()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType: // ListMeta
			m, err := p.bytesField(1 << 20)
			if err != nil {
				return err
			}
			if v, ok := protoField(m, 2); ok {
				rv, err := parseRV(string(v))
				if err != nil {
					return fmt.Errorf("list metadata: %w", err)
				}
				lm.rv = rv
			}
			if v, ok := protoField(m, 3); ok {
				lm.cont = string(v)
			}
		case num == 2 && typ == protowire.BytesType: // one item
			msg, err := p.bytesField(maxItem)
			if err != nil {
				return fmt.Errorf("list item: %w", err)
			}
			var it item
			if err := parseProtoObject(msg, pod, &it); err != nil {
				return err
			}
			if it.data, err = envelope(apiVersion, lm.itemKind, msg); err != nil {
				return err
			}
			it.enc = store.EncodingProtobuf
			if err := sink.add(&it); err != nil {
				return err
			}
		default:
			if err := p.skip(typ); err != nil {
				return err
			}
		}
	}
}

// protoWatchDecoder reads a protobuf watch stream: frames of a 4-byte big-endian
// length and a WatchEvent (optionally in the k8s envelope) whose object is a full
// k8s protobuf document.
type protoWatchDecoder struct {
	r       *bufio.Reader
	pod     bool
	maxItem uint32
}

func (d *protoWatchDecoder) next(ev *watchEvent) error {
	var hdr [4]byte
	if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > d.maxItem {
		return fmt.Errorf("protobuf watch frame of %d bytes exceeds the %d-byte limit", n, d.maxItem)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(d.r, frame); err != nil {
		return err
	}
	if bytes.HasPrefix(frame, protoMagic) {
		var u runtime.Unknown
		if err := u.Unmarshal(frame[len(protoMagic):]); err != nil {
			return fmt.Errorf("decode watch frame envelope: %w", err)
		}
		frame = u.Raw
	}
	var we metav1.WatchEvent
	if err := we.Unmarshal(frame); err != nil {
		return fmt.Errorf("decode protobuf watch event: %w", err)
	}
	ev.typ = we.Type
	if we.Type == "ERROR" {
		ev.it = item{}
		return nil
	}
	raw := we.Object.Raw
	if bytes.HasPrefix(raw, protoMagic) {
		return parseProtoEnvelope(raw, d.pod, &ev.it)
	}
	// A bare object: parse it; it is stored without envelope information, which
	// an apiserver never sends, so refuse rather than store something unservable.
	return errors.New("protobuf watch event object without the k8s envelope")
}
