package wire

import (
	"errors"
	"fmt"
	"io"
)

// JSONEvents splits a JSON watch stream ({"type":...,"object":{...}} documents)
// into events without decoding the objects: the response filters' way through a
// watch (internal/filter), where an event is most often passed on as it came.
// It validates each event as JSONWatchDecoder does and reads only the two
// top-level members; limits and errors are the same (io.EOF between events,
// io.ErrUnexpectedEOF inside one).
type JSONEvents struct {
	s   *jsonStream
	max int
}

// NewJSONEvents reads events of at most max bytes each from r.
func NewJSONEvents(r io.Reader, max int) *JSONEvents {
	return &JSONEvents{s: newJSONStream(r), max: max}
}

// Next returns the next event: its whole document (raw), its type, and its object
// (a slice of raw; nil for an ERROR event without one). The slices are valid until
// the next call.
func (d *JSONEvents) Next() (raw []byte, typ string, obj []byte, err error) {
	if _, err := d.s.peek(); err != nil {
		return nil, "", nil, err
	}
	raw, spans, err := d.s.captureSpans(d.max, 1, noParents)
	if err != nil {
		return nil, "", nil, fmt.Errorf("watch event: %w", err)
	}
	if raw[0] != '{' {
		return nil, "", nil, errors.New("watch event: not a JSON object")
	}
	ek := jsonSpans{spans: spans}
	for _, m := range spans {
		if m.depth != 1 {
			continue
		}
		key, err := ek.key(raw, m)
		if err != nil {
			return nil, "", nil, fmt.Errorf("watch event: %w", err)
		}
		switch string(key) {
		case "type":
			if err := jsonEventType(raw[m.vs:m.ve], &typ); err != nil {
				return nil, "", nil, fmt.Errorf("watch event type: %w", err)
			}
		case "object":
			obj = raw[m.vs:m.ve]
		}
	}
	if typ != "ERROR" && (len(obj) == 0 || obj[0] != '{') {
		return nil, "", nil, fmt.Errorf("watch event %q: object is not a JSON object", typ)
	}
	return raw, typ, obj, nil
}

// noParents records no member below the top level.
func noParents([]byte) bool { return false }
