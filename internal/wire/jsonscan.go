package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A small scanner for the few fields the cache reads from one JSON object that
// has already been validated (by jsonStream, see jsonstream.go): it skips
// everything else without decoding it (no reflection, no allocation for skipped
// values). It assumes valid input; on anything else it returns errJSONScan or
// reads garbage, never more than the slice (and parseJSONObject turns a panic
// into an error).

var errJSONScan = errors.New("malformed JSON object")

// jsonFields are the fields read; they point into the scanned bytes (or a fresh
// unescaped copy), so reading them allocates nothing.
type jsonFields struct {
	kind, apiVersion, resourceVersion []byte
	name, namespace, nodeName         []byte
	initialEventsEnd                  bool
}

// Which object's members a scanner reads.
const (
	lvTop    = iota // the object itself
	lvTopPod        // the object itself, a pod
	lvMeta          // metadata
	lvSpec          // a pod's spec
	lvAnno          // metadata.annotations
)

// members walks an object value (anything else is skipped), reading each member
// as one of level lv.
func (s *jsonScanner) members(lv int, f *jsonFields) error {
	ok, err := s.enter()
	for ok && err == nil {
		var key []byte
		if key, ok, err = s.key(); !ok || err != nil {
			break
		}
		err = s.member(lv, key, f)
	}
	return err
}

// member reads the value of member key of an object of level lv.
func (s *jsonScanner) member(lv int, key []byte, f *jsonFields) error {
	switch lv {
	case lvTop, lvTopPod:
		switch string(key) {
		case "kind":
			return s.raw(&f.kind)
		case "apiVersion":
			return s.raw(&f.apiVersion)
		case "metadata":
			return s.members(lvMeta, f)
		case "spec":
			if lv == lvTopPod {
				return s.members(lvSpec, f)
			}
		}
	case lvSpec:
		if string(key) == "nodeName" {
			return s.raw(&f.nodeName)
		}
	case lvMeta:
		switch string(key) {
		case "name":
			return s.raw(&f.name)
		case "namespace":
			return s.raw(&f.namespace)
		case "resourceVersion":
			return s.raw(&f.resourceVersion)
		case "annotations":
			return s.members(lvAnno, f)
		}
	case lvAnno:
		if string(key) == "k8s.io/initial-events-end" {
			var v []byte
			if err := s.raw(&v); err != nil {
				return err
			}
			f.initialEventsEnd = string(v) == "true"
			return nil
		}
	}
	return s.skip()
}

// jsonSpans are the members a jsonStream recorded while validating an object
// (see jsonSpan): offsets minus off index the object's bytes, depth minus dd is
// the depth relative to the object (1: its own members).
type jsonSpans struct {
	spans   []jsonSpan
	off, dd int32
}

func (sp *jsonSpans) key(b []byte, m jsonSpan) ([]byte, error) {
	raw := b[m.ks-sp.off : m.ke-sp.off]
	key := raw[1 : len(raw)-1]
	if !hasBackslash(key) {
		return key, nil
	}
	unq, err := unquoteJSON(raw)
	return []byte(unq), err
}

// readMember reports whether member key of an object of level lv is read.
func readMember(lv int, key []byte) bool {
	switch string(key) {
	case "name", "namespace", "resourceVersion", "annotations":
		return lv == lvMeta
	case "nodeName":
		return lv == lvSpec
	}
	return false
}

// scanJSONSpans reads kind, apiVersion, metadata.{name,namespace,resourceVersion},
// metadata.annotations[k8s.io/initial-events-end] and, when pod, spec.nodeName
// from the members recorded while b was validated (depth 1 and 2): only the values
// of the fields read are looked at, the rest (status, managedFields, containers) is
// not walked again. Keys match exactly; when a key repeats the last one wins; a
// field whose value is not a string is ignored. The tests check it against
// scanJSONObject, which walks the whole object.
func scanJSONSpans(b []byte, sp *jsonSpans, pod bool, f *jsonFields) error {
	first := 0 // the first span not yet attributed to a member
	for i, m := range sp.spans {
		if m.depth-sp.dd != 1 {
			continue
		}
		kids := sp.spans[first:i] // everything nested in this member's value
		first = i + 1
		key, err := sp.key(b, m)
		if err != nil {
			return err
		}
		var lv int
		switch string(key) {
		case "metadata":
			lv = lvMeta
		case "spec":
			if !pod {
				continue
			}
			lv = lvSpec
		case "kind", "apiVersion":
			s := jsonScanner{b: b[:m.ve-sp.off], i: int(m.vs - sp.off)}
			if err := s.member(lvTop, key, f); err != nil {
				return err
			}
			continue
		default:
			continue // not read: its value is not walked
		}
		for _, k := range kids {
			if k.depth-sp.dd != 2 {
				continue
			}
			ck, err := sp.key(b, k)
			if err != nil {
				return err
			}
			if !readMember(lv, ck) {
				continue
			}
			s := jsonScanner{b: b[:k.ve-sp.off], i: int(k.vs - sp.off)}
			if err := s.member(lv, ck, f); err != nil {
				return err
			}
		}
	}
	return nil
}

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// object walks an object, calling fn for each key with the scanner positioned on
// the value; fn must consume the value. null counts as an empty object.
func (s *jsonScanner) object(fn func(key []byte) error) error {
	switch s.peek() {
	case 'n':
		return s.skip()
	case '{':
	default:
		return s.skip() // not an object where one was expected: ignore the value
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return errJSONScan
		}
		key, err := s.stringAt()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return errJSONScan
		}
		s.i++
		s.ws()
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONScan
		}
	}
}

// str reads a string value (a non-string value is skipped and leaves *out alone).
func (s *jsonScanner) str(out *string) error {
	if s.peek() != '"' {
		return s.skip()
	}
	start := s.i
	if err := s.skipString(); err != nil {
		return err
	}
	raw := s.b[start+1 : s.i-1]
	if !hasBackslash(raw) {
		*out = string(raw)
		return nil
	}
	v, err := unquoteJSON(s.b[start:s.i])
	*out = v
	return err
}

// enter moves into an object value: true when the value is an object (its '{'
// consumed), false when it was something else (skipped; null is an empty object).
func (s *jsonScanner) enter() (bool, error) {
	if s.peek() == '{' {
		s.i++
		return true, nil
	}
	return false, s.skip()
}

// key returns the next key of an object entered with enter, the scanner then on
// its value; false after the closing '}' (consumed).
func (s *jsonScanner) key() ([]byte, bool, error) {
	c := s.peek()
	if c == ',' {
		s.i++
		c = s.peek()
	}
	if c == '}' {
		s.i++
		return nil, false, nil
	}
	if c != '"' {
		return nil, false, errJSONScan
	}
	key, err := s.stringAt()
	if err != nil {
		return nil, false, err
	}
	if s.peek() != ':' {
		return nil, false, errJSONScan
	}
	s.i++
	s.ws()
	return key, true, nil
}

// raw is str into a slice of the scanned bytes (unescaped into a copy if needed).
func (s *jsonScanner) raw(out *[]byte) error {
	if s.peek() != '"' {
		return s.skip()
	}
	v, err := s.stringAt()
	if err != nil {
		return err
	}
	*out = v
	return nil
}

// stringAt reads the string starting at the current '"': a slice of the scanned
// bytes, or an unescaped copy when it has escapes.
func (s *jsonScanner) stringAt() ([]byte, error) {
	start := s.i
	if err := s.skipString(); err != nil {
		return nil, err
	}
	v := s.b[start+1 : s.i-1]
	if !hasBackslash(v) {
		return v, nil
	}
	unq, err := unquoteJSON(s.b[start:s.i])
	if err != nil {
		return nil, err
	}
	return []byte(unq), nil
}

func hasBackslash(b []byte) bool { return bytes.IndexByte(b, '\\') >= 0 }

// skipString moves past a string starting at s.i (on the opening quote).
func (s *jsonScanner) skipString() error {
	s.i++
	s.i += plainRun(s.b[s.i:], false)
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return nil
		default:
			s.i++
			s.i += plainRun(s.b[s.i:], false)
		}
	}
	return errJSONScan
}

// SWAR constants: one in every byte, the top bit of every byte.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// plainRun returns how many leading bytes of b are surely not '"' or '\\' (nor,
// when ctl, a control character below 0x20), 8 bytes at a time: the caller goes
// on byte by byte from there. (x-lo)&^x&hi is non-zero iff x has a zero byte;
// (x-n*lo)&^x&hi iff x has a byte below n (n <= 128).
func plainRun(b []byte, ctl bool) int {
	j := 0
	for ; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		q := x ^ ('"' * swarLo)
		e := x ^ ('\\' * swarLo)
		t := ((q - swarLo) &^ q) | ((e - swarLo) &^ e)
		if ctl {
			t |= (x - 0x20*swarLo) &^ x
		}
		if t&swarHi != 0 {
			break
		}
	}
	return j
}

// skip moves past one value.
func (s *jsonScanner) skip() error {
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if err := s.skipString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return errJSONScan
	case 0:
		return errJSONScan
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			s.i++
		}
		return nil
	}
}

func (f *jsonFields) String() string {
	return fmt.Sprintf("%s %s %s/%s@%s node=%q end=%v", f.apiVersion, f.kind, f.namespace, f.name, f.resourceVersion, f.nodeName, f.initialEventsEnd)
}
