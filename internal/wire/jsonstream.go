package wire

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// jsonStream is a single-pass validating JSON reader over an io.Reader, used to
// cut a list body into its items and a watch stream into its events without
// encoding/json. It reads the stream in chunks into one buffer and walks it once:
// a value is validated as its bytes arrive (a value straddling two reads is
// simply continued after the next read, nothing is scanned twice), and a value
// being captured stays in the buffer until it is complete, so it can be handed
// out as one slice without a copy.
//
// Validation accepts exactly what encoding/json's json.Valid accepts: the
// RFC 8259 grammar (strings with the escapes \" \\ \/ \b \f \n \r \t \uXXXX and no
// control characters, numbers, true/false/null, objects and arrays), nesting at
// most jsonMaxDepth deep (encoding/json's own limit), and, like encoding/json,
// any bytes >= 0x80 inside strings (encoding/json does not reject invalid UTF-8
// there, it substitutes U+FFFD when decoding; the cache keeps bytes as received).
//
// A captured value is bounded (limit, Options.MaxObjectBytes); a skipped value
// is not, as it is never held: the buffer is reused as it is walked.

// jsonMaxDepth is encoding/json's nesting limit (scanner.go maxNestingDepth).
const jsonMaxDepth = 10000

const (
	jsonBufSize = 64 << 10 // initial buffer
	jsonMinRead = 16 << 10 // free space a read is given before the buffer is compacted/grown
)

type jsonStream struct {
	r     io.Reader // nil: buf holds the whole input
	buf   []byte
	pos   int   // next byte to examine
	end   int   // end of the bytes read
	base  int64 // stream offset of buf[0], for error messages
	mark  int   // start of the value being captured, -1 when none
	limit int   // size limit of the value being captured
	rerr  error // sticky read error (io.EOF at the end)
	stack []byte

	spanDepth  int               // record the members of objects this deep in a captured value
	spanParent func([]byte) bool // ... nested in members whose raw key it accepts
	spans      []jsonSpan
}

func newJSONStream(r io.Reader) *jsonStream {
	return &jsonStream{r: r, buf: make([]byte, jsonBufSize), mark: -1}
}

// newJSONBytes reads from an in-memory document (no copy).
func newJSONBytes(b []byte) *jsonStream {
	return &jsonStream{buf: b, end: len(b), mark: -1, rerr: io.EOF}
}

// errJSONTooLarge is returned when a captured value exceeds its limit.
type errJSONTooLarge struct{ limit int }

func (e *errJSONTooLarge) Error() string {
	return fmt.Sprintf("JSON value larger than the %d-byte limit (Options.MaxObjectBytes)", e.limit)
}

// errJSONDepth is returned for values nested deeper than jsonMaxDepth.
var errJSONDepth = fmt.Errorf("JSON nested deeper than %d levels", jsonMaxDepth)

// jsonSyntaxError is malformed JSON at a stream offset.
type jsonSyntaxError struct {
	off int64
	msg string
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg)
}

func (s *jsonStream) syntax(format string, args ...any) error {
	return &jsonSyntaxError{off: s.base + int64(s.pos), msg: fmt.Sprintf(format, args...)}
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// fill reads more bytes, keeping everything from the value being captured (or
// from pos). It returns the read error once no byte was read.
func (s *jsonStream) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	if s.mark >= 0 && s.end-s.mark > s.limit {
		return &errJSONTooLarge{s.limit}
	}
	keep := s.pos
	if s.mark >= 0 && s.mark < keep {
		keep = s.mark
	}
	switch {
	case len(s.buf) >= 4*jsonBufSize && s.end-keep <= jsonBufSize/2:
		// The buffer grew for a large value that is gone: do not keep it for the
		// rest of a long watch.
		s.shift(make([]byte, jsonBufSize), keep)
	case len(s.buf)-s.end < jsonMinRead:
		s.shift(s.buf, keep)
		if len(s.buf)-s.end < jsonMinRead {
			nb := make([]byte, max(2*len(s.buf), s.end+jsonMinRead))
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.rerr = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	s.rerr = io.ErrNoProgress
	return s.rerr
}

// shift moves the bytes from keep on to the start of dst, which becomes the buffer.
func (s *jsonStream) shift(dst []byte, keep int) {
	s.end = copy(dst, s.buf[keep:s.end])
	s.buf = dst
	s.pos -= keep
	s.base += int64(keep)
	if s.mark >= 0 {
		s.mark -= keep
	}
}

// midValue maps the end of the stream inside a value to io.ErrUnexpectedEOF.
func midValue(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// peek moves past whitespace and returns the next byte without consuming it; at
// the end of the stream it returns io.EOF (or the read error).
func (s *jsonStream) peek() (byte, error) {
	for {
		for s.pos < s.end {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, nil
			}
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
}

// peekIn is peek inside a value: the end of the stream is unexpected.
func (s *jsonStream) peekIn() (byte, error) {
	c, err := s.peek()
	return c, midValue(err)
}

// expect consumes the next non-space byte, which must be want.
func (s *jsonStream) expect(want byte) error {
	c, err := s.peekIn()
	if err != nil {
		return err
	}
	if c != want {
		return s.syntax("want %s, got %s", quoteByte(want), quoteByte(c))
	}
	s.pos++
	return nil
}

// capture validates one value and returns its bytes (without surrounding
// whitespace). The slice is valid until the next call on s.
func (s *jsonStream) capture(limit int) ([]byte, error) {
	if _, err := s.peekIn(); err != nil {
		return nil, err
	}
	s.mark, s.limit = s.pos, limit
	err := s.value()
	start := s.mark
	s.mark = -1
	if err != nil {
		return nil, err
	}
	if s.pos-start > limit {
		return nil, &errJSONTooLarge{limit}
	}
	return s.buf[start:s.pos], nil
}

// skipValue validates one value without keeping it.
func (s *jsonStream) skipValue() error { return s.value() }

// member reads an object key and the colon after it; key is valid until the next
// call on s. Keys with escapes are unquoted.
func (s *jsonStream) member(limit int) (string, error) {
	c, err := s.peekIn()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", s.syntax("want an object key, got %s", quoteByte(c))
	}
	raw, err := s.capture(limit)
	if err != nil {
		return "", err
	}
	key, err := unquoteJSON(raw)
	if err != nil {
		return "", err
	}
	return key, s.expect(':')
}

// document validates a whole document: one value and nothing but whitespace after it.
func (s *jsonStream) document() error {
	if err := s.value(); err != nil {
		return err
	}
	c, err := s.peek()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	return s.syntax("%s after the top-level value", quoteByte(c))
}

// validJSON reports whether b is one valid JSON document (json.Valid).
func validJSON(b []byte) error { return newJSONBytes(b).document() }

// strPlain marks the bytes that need no attention inside a string.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

var hexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return
}()

const (
	stValue    = iota // a value is expected
	stArrFirst        // after '[': a value or ']'
	stObjFirst        // after '{': a key or '}'
	stKey             // after ',' in an object: a key
	stColon           // after a key
	stAfter           // after a value
)

// value validates one value starting at the next non-space byte and leaves pos
// just after it. It blocks in fill for more input, so all of its state is local.
// While capturing with spanDepth > 0 it records the members of the objects at
// depth 1 to spanDepth of the value (see jsonSpan).
func (s *jsonStream) value() error {
	stack, spans := s.stack[:0], s.spans
	defer func() { s.stack, s.spans = stack[:0], spans }()
	var pend [maxSpanDepth + 1]jsonSpan // the member being read at each depth
	var want [maxSpanDepth + 1]bool     // whether its value's members are recorded
	rec := s.spanDepth                  // record members of objects at stack depth 1..rec
	st := stValue
	for {
		if st == stAfter && len(stack) == 0 {
			return nil
		}
		if s.pos >= s.end {
			if err := s.fill(); err != nil {
				return midValue(err)
			}
			continue
		}
		c := s.buf[s.pos]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			s.pos++
			continue
		}
		switch st {
		case stArrFirst:
			if c == ']' {
				s.pos++
				stack = stack[:len(stack)-1]
				st = stAfter
				spans = endSpan(stack, rec, &want, &pend, spans, int32(s.pos-s.mark))
				continue
			}
			st = stValue
			fallthrough
		case stValue:
			if d := len(stack); recorded(stack, d, rec, &want) {
				pend[d].vs = int32(s.pos - s.mark)
			}
			switch {
			case c == '{' || c == '[':
				if len(stack) >= jsonMaxDepth {
					return errJSONDepth
				}
				stack = append(stack, c)
				s.pos++
				if c == '{' {
					st = stObjFirst
				} else {
					st = stArrFirst
				}
				continue
			case c == '"':
				s.pos++
				if err := s.stringBody(); err != nil {
					return err
				}
			case c == 't':
				if err := s.literal("true"); err != nil {
					return err
				}
			case c == 'f':
				if err := s.literal("false"); err != nil {
					return err
				}
			case c == 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
			case c == '-' || (c >= '0' && c <= '9'):
				if err := s.number(); err != nil {
					return err
				}
			default:
				return s.syntax("%s looking for the beginning of a value", quoteByte(c))
			}
			st = stAfter
			spans = endSpan(stack, rec, &want, &pend, spans, int32(s.pos-s.mark))
		case stObjFirst, stKey:
			if c == '}' && st == stObjFirst {
				s.pos++
				stack = stack[:len(stack)-1]
				st = stAfter
				spans = endSpan(stack, rec, &want, &pend, spans, int32(s.pos-s.mark))
				continue
			}
			if c != '"' {
				return s.syntax("%s looking for the beginning of an object key", quoteByte(c))
			}
			d := len(stack)
			r := d <= rec && wanted(&want, d)
			if r {
				pend[d].ks = int32(s.pos - s.mark)
			}
			s.pos++
			if err := s.stringBody(); err != nil {
				return err
			}
			if r {
				pend[d].ke = int32(s.pos - s.mark)
				want[d] = s.spanParent(s.buf[s.mark+int(pend[d].ks)+1 : s.pos-1])
			}
			st = stColon
		case stColon:
			if c != ':' {
				return s.syntax("%s after an object key", quoteByte(c))
			}
			s.pos++
			st = stValue
		case stAfter:
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				s.pos++
				if top == '{' {
					st = stKey
				} else {
					st = stValue
				}
			case c == '}' && top == '{', c == ']' && top == '[':
				s.pos++
				stack = stack[:len(stack)-1]
				spans = endSpan(stack, rec, &want, &pend, spans, int32(s.pos-s.mark))
			default:
				if top == '{' {
					return s.syntax("%s after an object value", quoteByte(c))
				}
				return s.syntax("%s after an array element", quoteByte(c))
			}
		}
	}
}

// recorded reports whether the member being read at stack depth d, a member of an
// object, has its span recorded.
func recorded(stack []byte, d, rec int, want *[maxSpanDepth + 1]bool) bool {
	return d > 0 && d <= rec && stack[d-1] == '{' && wanted(want, d)
}

// endSpan ends the member being read at the top of stack at offset end and appends
// its span to spans when it is recorded.
func endSpan(stack []byte, rec int, want *[maxSpanDepth + 1]bool, pend *[maxSpanDepth + 1]jsonSpan, spans []jsonSpan, end int32) []jsonSpan {
	if d := len(stack); recorded(stack, d, rec, want) {
		pend[d].depth, pend[d].ve = int32(d), end
		spans = append(spans, pend[d])
	}
	return spans
}

// maxSpanDepth bounds spanDepth.
const maxSpanDepth = 3

// wanted reports whether the members at depth d are recorded: all the members
// they are nested in are accepted by the caller's spanParent.
func wanted(want *[maxSpanDepth + 1]bool, d int) bool {
	for j := 1; j < d; j++ {
		if !want[j] {
			return false
		}
	}
	return true
}

// jsonSpan is one member of an object inside a captured value, as offsets from
// the value's first byte: the key from its opening quote (ks) to after its closing
// quote (ke), the value from vs to ve. depth is the object's nesting (1: a member
// of the captured object itself). Spans are recorded in the order members end, so
// a member's nested members come before it. Offsets fit in int32: captureSpans
// bounds the value to 2 GiB.
type jsonSpan struct {
	depth, ks, ke, vs, ve int32
}

// captureSpans is capture that also returns the members of the objects nested at
// most depth deep in the value (valid until the next call on s). Below the top
// level, only the members of members whose raw key (between the quotes) parent
// accepts are recorded; the others are validated and left alone. The stream knows
// JSON only: which members matter is the caller's knowledge.
func (s *jsonStream) captureSpans(limit, depth int, parent func(key []byte) bool) ([]byte, []jsonSpan, error) {
	s.spans, s.spanDepth, s.spanParent = s.spans[:0], depth, parent
	v, err := s.capture(min(limit, math.MaxInt32))
	s.spanDepth, s.spanParent = 0, nil
	return v, s.spans, err
}

// stringBody moves past a string whose opening quote has been consumed.
func (s *jsonStream) stringBody() error {
	for {
		b := s.buf[s.pos:s.end]
		j := plainRun(b, true)
		for j < len(b) && strPlain[b[j]] {
			j++
		}
		s.pos += j
		if j == len(b) {
			if err := s.fill(); err != nil {
				return midValue(err)
			}
			continue
		}
		switch c := b[j]; c {
		case '"':
			s.pos++
			return nil
		case '\\':
			if err := s.escape(); err != nil {
				return err
			}
		default:
			return s.syntax("control character %s in a string", quoteByte(c))
		}
	}
}

// byteAt returns the byte k positions after pos, reading more if needed.
func (s *jsonStream) byteAt(k int) (byte, error) {
	for s.pos+k >= s.end {
		if err := s.fill(); err != nil {
			return 0, midValue(err)
		}
	}
	return s.buf[s.pos+k], nil
}

// escape moves past an escape sequence starting at the backslash.
func (s *jsonStream) escape() error {
	e, err := s.byteAt(1)
	if err != nil {
		return err
	}
	switch e {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos += 2
		return nil
	case 'u':
		for k := 2; k < 6; k++ {
			h, err := s.byteAt(k)
			if err != nil {
				return err
			}
			if !hexDigit[h] {
				s.pos += k
				return s.syntax("%s in a \\u escape", quoteByte(h))
			}
		}
		s.pos += 6
		return nil
	}
	s.pos++
	return s.syntax("%s in a string escape", quoteByte(e))
}

// literal moves past true, false or null.
func (s *jsonStream) literal(lit string) error {
	for k := 1; k < len(lit); k++ {
		c, err := s.byteAt(k)
		if err != nil {
			return err
		}
		if c != lit[k] {
			s.pos += k
			return s.syntax("%s in literal %s", quoteByte(c), lit)
		}
	}
	s.pos += len(lit)
	return nil
}

// numByte returns the next byte of a number, ok=false at the end of the stream
// (which may end a number).
func (s *jsonStream) numByte() (c byte, ok bool, err error) {
	if s.pos >= s.end {
		if err := s.fill(); err != nil {
			if err == io.EOF {
				return 0, false, nil
			}
			return 0, false, err
		}
	}
	return s.buf[s.pos], true, nil
}

// digits moves past a run of digits and returns how many there were.
func (s *jsonStream) digits() (int, error) {
	n := 0
	for {
		b := s.buf[s.pos:s.end]
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		s.pos += j
		n += j
		if j < len(b) {
			return n, nil
		}
		if err := s.fill(); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

// number moves past a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonStream) number() error {
	c := s.buf[s.pos]
	if c == '-' {
		s.pos++
		var ok bool
		var err error
		if c, ok, err = s.numByte(); err != nil {
			return err
		} else if !ok {
			return io.ErrUnexpectedEOF
		}
		if c < '0' || c > '9' {
			return s.syntax("%s in a number after '-'", quoteByte(c))
		}
	}
	if c == '0' {
		s.pos++
	} else if _, err := s.digits(); err != nil {
		return err
	}
	c, ok, err := s.numByte()
	if err != nil || !ok {
		return err
	}
	if c == '.' {
		s.pos++
		n, err := s.digits()
		if err != nil {
			return err
		}
		if n == 0 {
			return s.numEnd("after the decimal point")
		}
		if c, ok, err = s.numByte(); err != nil || !ok {
			return err
		}
	}
	if c == 'e' || c == 'E' {
		s.pos++
		c, ok, err = s.numByte()
		if err != nil {
			return err
		}
		if ok && (c == '+' || c == '-') {
			s.pos++
		}
		n, err := s.digits()
		if err != nil {
			return err
		}
		if n == 0 {
			return s.numEnd("in the exponent")
		}
	}
	return nil
}

// numEnd is a number missing its digits: the end of the stream or another byte.
func (s *jsonStream) numEnd(where string) error {
	if s.pos >= s.end {
		return io.ErrUnexpectedEOF
	}
	return s.syntax("%s %s of a number", quoteByte(s.buf[s.pos]), where)
}

// unquoteJSON returns the value of a valid JSON string literal (quotes included).
func unquoteJSON(raw []byte) (string, error) {
	body := raw[1 : len(raw)-1]
	if !hasBackslash(body) {
		return string(body), nil
	}
	// Escapes are rare in the fields the cache reads: encoding/json decodes them
	// (surrogate pairs, U+FFFD for invalid ones) exactly as a client would.
	var v string
	err := json.Unmarshal(raw, &v)
	return v, err
}
