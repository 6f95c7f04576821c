package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// CopyJSONList copies a JSON list document from r to w as it reads it, handing
// each element of its top-level "items" array to fn, which returns the bytes to
// write in its place (the element itself when unchanged) and keep=false to leave
// it out. Every other member (kind, apiVersion, metadata with remainingItemCount,
// unknown ones) is copied as it is, in its place. The document is validated as it
// streams, with the same single-pass reader the cache decodes lists with; an
// element longer than maxItem bytes or any syntax error ends the copy with an
// error, and the caller cuts the response, so a client never takes a torn list
// for a whole one. item is valid only during fn (it lies in the read buffer).
// Bytes after the list's closing brace are not read.
func CopyJSONList(r io.Reader, w io.Writer, maxItem int, fn func(item []byte) (out []byte, keep bool)) error {
	s := newJSONStream(r)
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := s.expect('{'); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	bw.WriteByte('{')
	c, err := s.peekIn()
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if c == '}' {
		s.pos++
		bw.WriteByte('}')
		return bw.Flush()
	}
	var kb bytes.Buffer
	for first := true; ; first = false {
		key, err := s.member(maxItem)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if !first {
			bw.WriteByte(',')
		}
		kb.Reset()
		WriteJSONString(&kb, key)
		bw.Write(kb.Bytes())
		bw.WriteByte(':')
		if key == "items" {
			if err := copyJSONItems(s, bw, maxItem, fn); err != nil {
				return err
			}
		} else {
			v, err := s.capture(maxItem)
			if err != nil {
				return fmt.Errorf("list %s: %w", key, err)
			}
			bw.Write(v)
		}
		c, err := s.peekIn()
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		s.pos++
		if c == '}' {
			bw.WriteByte('}')
			return bw.Flush()
		}
		if c != ',' {
			s.pos--
			return fmt.Errorf("list: %w", s.syntax("%s after an object value", quoteByte(c)))
		}
	}
}

// copyJSONItems copies the value of "items": null, or an array whose elements go
// through fn.
func copyJSONItems(s *jsonStream, bw *bufio.Writer, maxItem int, fn func([]byte) ([]byte, bool)) error {
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
			bw.WriteString("null")
			return nil
		}
		return fmt.Errorf("list items: want an array, got %.20s", v)
	}
	s.pos++
	bw.WriteByte('[')
	if c, err = s.peekIn(); err != nil {
		return fmt.Errorf("list items: %w", err)
	}
	if c == ']' {
		s.pos++
		bw.WriteByte(']')
		return nil
	}
	n := 0
	for i := 0; ; i++ {
		raw, err := s.capture(maxItem)
		if err != nil {
			return fmt.Errorf("list item %d: %w", i, err)
		}
		if out, keep := fn(raw); keep {
			if n > 0 {
				bw.WriteByte(',')
			}
			n++
			bw.Write(out)
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
			bw.WriteByte(']')
			return nil
		default:
			return fmt.Errorf("list items: %w", s.syntax("%s after an array element", quoteByte(c)))
		}
	}
}
