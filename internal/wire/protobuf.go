package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/yurthub/yurthub/internal/store"
)

// protoObjectMeta reads name, namespace, resourceVersion and the initial-events-end
// annotation from an ObjectMeta message.
func protoObjectMeta(b []byte, it *Item) error {
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
				it.Name = string(v)
			case 3:
				it.Namespace = string(v)
			case 6:
				rv, err := ParseRV(string(v))
				if err != nil {
					return err
				}
				it.RV = rv
			case 12:
				k, val := protoMapEntry(v)
				if k == metav1.InitialEventsAnnotationKey && val == "true" {
					it.InitialEnd = true
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
func parseProtoObject(msg []byte, pod bool, it *Item) error {
	if meta, ok := protoField(msg, 1); ok {
		if err := protoObjectMeta(meta, it); err != nil {
			return fmt.Errorf("decode protobuf metadata: %w", err)
		}
	}
	if pod {
		if spec, ok := protoField(msg, 2); ok {
			if nn, ok := protoField(spec, 10); ok {
				it.NodeName = string(nn)
			}
		}
	}
	return nil
}

// ParseProtoEnvelope fills it from a full "k8s\0"+Unknown document (a GET body or a
// watch event's object); the stored bytes are the envelope as received.
func ParseProtoEnvelope(doc []byte, pod bool, it *Item) error {
	if !bytes.HasPrefix(doc, ProtoMagic) {
		return errors.New("protobuf object without the k8s envelope")
	}
	var u runtime.Unknown
	if err := u.Unmarshal(doc[len(ProtoMagic):]); err != nil {
		return fmt.Errorf("decode protobuf envelope: %w", err)
	}
	*it = Item{Enc: store.EncodingProtobuf, Data: doc}
	return parseProtoObject(u.Raw, pod, it)
}

// envelope wraps a bare item message the way the apiserver encodes a GET.
func Envelope(apiVersion, kind string, msg []byte) ([]byte, error) {
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: msg}
	b := make([]byte, len(ProtoMagic)+u.Size())
	copy(b, ProtoMagic)
	if _, err := u.MarshalToSizedBuffer(b[len(ProtoMagic):]); err != nil {
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

// DecodeProtoList streams a protobuf list: the envelope's raw field (the List
// message) is walked field by field, so only one item is held in memory.
func DecodeProtoList(r io.Reader, pod bool, maxItem uint64, sink ListSink) (ListMeta, error) {
	var lm ListMeta
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(ProtoMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return lm, err
	}
	if !bytes.Equal(magic, ProtoMagic) {
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
				lm.Kind = string(v)
				lm.ItemKind = ItemKind(lm.Kind)
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

func decodeProtoListBody(p *protoReader, apiVersion string, pod bool, maxItem uint64, lm *ListMeta, sink ListSink) error {
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
				rv, err := ParseRV(string(v))
				if err != nil {
					return fmt.Errorf("list metadata: %w", err)
				}
				lm.RV = rv
			}
			if v, ok := protoField(m, 3); ok {
				lm.Continue = string(v)
			}
		case num == 2 && typ == protowire.BytesType: // one item
			msg, err := p.bytesField(maxItem)
			if err != nil {
				return fmt.Errorf("list item: %w", err)
			}
			var it Item
			if err := parseProtoObject(msg, pod, &it); err != nil {
				return err
			}
			if it.Data, err = Envelope(apiVersion, lm.ItemKind, msg); err != nil {
				return err
			}
			it.Enc = store.EncodingProtobuf
			if err := sink.Add(&it); err != nil {
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

// NewProtoWatchDecoder reads a protobuf watch stream from r, events of at most
// max bytes; pod asks for each pod's spec.nodeName.
func NewProtoWatchDecoder(r io.Reader, pod bool, max int) EventDecoder {
	return &protoWatchDecoder{r: bufio.NewReaderSize(r, 64<<10), pod: pod, maxItem: uint32(min(max, math.MaxUint32))}
}

func (d *protoWatchDecoder) Next(ev *Event) error {
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
	if bytes.HasPrefix(frame, ProtoMagic) {
		var u runtime.Unknown
		if err := u.Unmarshal(frame[len(ProtoMagic):]); err != nil {
			return fmt.Errorf("decode watch frame envelope: %w", err)
		}
		frame = u.Raw
	}
	var we metav1.WatchEvent
	if err := we.Unmarshal(frame); err != nil {
		return fmt.Errorf("decode protobuf watch event: %w", err)
	}
	ev.Type = we.Type
	if we.Type == "ERROR" {
		ev.Item = Item{}
		return nil
	}
	raw := we.Object.Raw
	if bytes.HasPrefix(raw, ProtoMagic) {
		return ParseProtoEnvelope(raw, d.pod, &ev.Item)
	}
	// A bare object: parse it; it is stored without envelope information, which
	// an apiserver never sends, so refuse rather than store something unservable.
	return errors.New("protobuf watch event object without the k8s envelope")
}
