package cachemgr

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A small scanner for the few fields the cache reads from one JSON object that
// encoding/json has already validated (json.Decoder hands out only well-formed
// values): it skips everything else without decoding it, which is several times
// faster than json.Unmarshal into a struct (no second validation pass, no
// reflection, no allocation for skipped values).

var errJSONScan = errors.New("malformed JSON object")

type jsonFields struct {
	kind, apiVersion                 string
	name, namespace, resourceVersion string
	initialEventsEnd                 bool
	nodeName                         string
}

// scanJSONObject reads kind, apiVersion, metadata.{name,namespace,resourceVersion},
// metadata.annotations[k8s.io/initial-events-end] and, when pod, spec.nodeName.
func scanJSONObject(b []byte, pod bool, f *jsonFields) error {
	s := jsonScanner{b: b}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "kind":
			return s.str(&f.kind)
		case "apiVersion":
			return s.str(&f.apiVersion)
		case "metadata":
			return s.object(func(key []byte) error {
				switch string(key) {
				case "name":
					return s.str(&f.name)
				case "namespace":
					return s.str(&f.namespace)
				case "resourceVersion":
					return s.str(&f.resourceVersion)
				case "annotations":
					return s.object(func(key []byte) error {
						if string(key) == "k8s.io/initial-events-end" {
							var v string
							if err := s.str(&v); err != nil {
								return err
							}
							f.initialEventsEnd = v == "true"
							return nil
						}
						return s.skip()
					})
				}
				return s.skip()
			})
		case "spec":
			if !pod {
				return s.skip()
			}
			return s.object(func(key []byte) error {
				if string(key) == "nodeName" {
					return s.str(&f.nodeName)
				}
				return s.skip()
			})
		}
		return s.skip()
	})
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
		start := s.i
		if err := s.skipString(); err != nil {
			return err
		}
		key := s.b[start+1 : s.i-1]
		var unq string
		if hasBackslash(key) {
			if err := json.Unmarshal(s.b[start:s.i], &unq); err != nil {
				return err
			}
			key = []byte(unq)
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
	return json.Unmarshal(s.b[start:s.i], out)
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// skipString moves past a string starting at s.i (on the opening quote).
func (s *jsonScanner) skipString() error {
	s.i++
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return nil
		default:
			s.i++
		}
	}
	return errJSONScan
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
