package wire

import "fmt"

// Walking one JSON document in place, for rewriters that change a few members of
// an object and copy the rest as it is (internal/filter's servicetopology on
// JSON EndpointSlices): the document is validated as it is walked, and the
// offsets given index the document itself.

// JSONMembers calls fn with each member of the JSON object doc: its key
// (unquoted) and the offsets [vs, ve) of its value in doc. Nothing but
// whitespace may follow the object. An error from fn stops the walk and is
// returned as it is.
func JSONMembers(doc []byte, fn func(key string, vs, ve int) error) error {
	s := newJSONBytes(doc)
	if err := s.expect('{'); err != nil {
		return err
	}
	c, err := s.peekIn()
	if err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		return jsonEnd(s)
	}
	for {
		key, err := s.member(len(doc))
		if err != nil {
			return err
		}
		v, err := s.capture(len(doc))
		if err != nil {
			return fmt.Errorf("%q: %w", key, err)
		}
		if err := fn(key, s.pos-len(v), s.pos); err != nil {
			return err
		}
		if done, err := nextOrEnd(s, '}', "an object value"); done || err != nil {
			return err
		}
	}
}

// JSONElements calls fn with the offsets [es, ee) in arr of each element of the
// JSON array arr. Nothing but whitespace may follow the array.
func JSONElements(arr []byte, fn func(es, ee int) error) error {
	s := newJSONBytes(arr)
	if err := s.expect('['); err != nil {
		return err
	}
	c, err := s.peekIn()
	if err != nil {
		return err
	}
	if c == ']' {
		s.pos++
		return jsonEnd(s)
	}
	for n := 0; ; n++ {
		v, err := s.capture(len(arr))
		if err != nil {
			return fmt.Errorf("element %d: %w", n, err)
		}
		if err := fn(s.pos-len(v), s.pos); err != nil {
			return err
		}
		if done, err := nextOrEnd(s, ']', "an array element"); done || err != nil {
			return err
		}
	}
}

// JSONString returns the string a JSON string value holds, unescaped.
func JSONString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", fmt.Errorf("want a JSON string, got %.20s", v)
	}
	return unquoteJSON(v)
}

// nextOrEnd consumes the ',' before the next member or element (done false), or the
// closing byte of the document's outer value, after which only whitespace may
// follow (done true).
func nextOrEnd(s *jsonStream, closing byte, after string) (done bool, err error) {
	c, err := s.peekIn()
	if err != nil {
		return false, err
	}
	switch c {
	case ',':
		s.pos++
		return false, nil
	case closing:
		s.pos++
		return true, jsonEnd(s)
	}
	return false, s.syntax("%s after %s", quoteByte(c), after)
}

// jsonEnd checks that only whitespace is left.
func jsonEnd(s *jsonStream) error {
	c, err := s.peek()
	if err != nil {
		return nil // io.EOF: the end
	}
	return s.syntax("%s after the value", quoteByte(c))
}
