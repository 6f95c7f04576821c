package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Reference decoders built on encoding/json: the previous decoding path
// (json.Decoder tokens down to "items", json.Decoder.Decode per watch event) with
// the documented semantics of the streaming path where they differ from it:
// members are matched by exact name (encoding/json's struct decoding ignores
// case), list items and watch objects must be JSON objects (the old path stored
// an empty item for anything else), and "object": null is refused.

func refDecodeJSONList(r io.Reader, pod bool, sink ListSink) (ListMeta, error) {
	var lm ListMeta
	dec := json.NewDecoder(r)
	if err := refExpectDelim(dec, '{'); err != nil {
		return lm, err
	}
	var apiVersion string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return lm, err
		}
		key, _ := tok.(string)
		switch key {
		case "kind":
			if err := dec.Decode(&lm.Kind); err != nil {
				return lm, err
			}
			lm.ItemKind = ItemKind(lm.Kind)
		case "apiVersion":
			if err := dec.Decode(&apiVersion); err != nil {
				return lm, err
			}
		case "metadata":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return lm, err
			}
			var rv, cont string
			if err := refMembers(raw, func(key string, md *json.Decoder) error {
				switch key {
				case "resourceVersion":
					return md.Decode(&rv)
				case "continue":
					return md.Decode(&cont)
				}
				var skip json.RawMessage
				return md.Decode(&skip)
			}); err != nil {
				return lm, err
			}
			n, err := ParseRV(rv)
			if err != nil {
				return lm, err
			}
			lm.RV, lm.Continue = n, cont
		case "items":
			tok, err := dec.Token()
			if err != nil {
				return lm, err
			}
			if tok == nil {
				continue
			}
			if d, ok := tok.(json.Delim); !ok || d != '[' {
				return lm, fmt.Errorf("list items: want '[', got %v", tok)
			}
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return lm, err
				}
				if raw[0] != '{' {
					return lm, errors.New("list item: not an object")
				}
				var it Item
				if err := ParseJSONItem(raw, lm.ItemKind, apiVersion, pod, &it); err != nil {
					return lm, err
				}
				if err := sink.Add(&it); err != nil {
					return lm, err
				}
			}
			if err := refExpectDelim(dec, ']'); err != nil {
				return lm, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return lm, err
			}
		}
	}
	return lm, refExpectDelim(dec, '}')
}

// refMembers calls fn for each member of the object raw (null: none) in order,
// with a decoder positioned on the member's value.
func refMembers(raw json.RawMessage, fn func(key string, dec *json.Decoder) error) error {
	if string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return errors.New("not an object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := refExpectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if err := fn(tok.(string), dec); err != nil {
			return err
		}
	}
	return nil
}

func refExpectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("JSON: want %q, got %v", want, tok)
	}
	return nil
}

type refWatchDecoder struct {
	dec *json.Decoder
	pod bool
}

func (d *refWatchDecoder) Next(ev *Event) error {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return err
	}
	var typ string
	var obj json.RawMessage
	if err := refMembers(raw, func(key string, dec *json.Decoder) error {
		switch key {
		case "type":
			return dec.Decode(&typ)
		case "object":
			obj = nil
			return dec.Decode(&obj)
		}
		var skip json.RawMessage
		return dec.Decode(&skip)
	}); err != nil || string(raw) == "null" {
		return fmt.Errorf("watch event: %v", err)
	}
	ev.Type = typ
	if typ == "ERROR" {
		ev.Item = Item{}
		return nil
	}
	if len(obj) == 0 || obj[0] != '{' {
		return errors.New("watch object is not an object")
	}
	return ParseJSONItem(obj, "", "", d.pod, &ev.Item)
}
