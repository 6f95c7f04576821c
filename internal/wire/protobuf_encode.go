package wire

import (
	"bytes"
	"errors"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Writing protobuf lists item by item, without typed objects: the envelope
// ("k8s\x00" + runtime.Unknown) whose raw field is a List message of ListMeta
// (field 1) and items (field 2, each a bare message). The offline path and the
// multiplexer both write lists this way.

// ProtoListHeader starts a protobuf list document whose list message (ListMeta +
// items) is bodyLen bytes: the envelope up to the start of the list message.
func ProtoListHeader(apiVersion, listKind string, bodyLen int) []byte {
	var tm []byte
	tm = protowire.AppendTag(tm, 1, protowire.BytesType)
	tm = protowire.AppendString(tm, apiVersion)
	tm = protowire.AppendTag(tm, 2, protowire.BytesType)
	tm = protowire.AppendString(tm, listKind)
	b := append([]byte{}, ProtoMagic...)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, tm)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(bodyLen))
	return b
}

// ProtoListMeta is field 1 (ListMeta with resourceVersion) of a list message.
func ProtoListMeta(rv uint64) []byte {
	var lm []byte
	lm = protowire.AppendTag(lm, 2, protowire.BytesType)
	lm = protowire.AppendString(lm, strconv.FormatUint(rv, 10))
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, lm)
}

// AppendProtoItem appends field 2 (one item, a bare message) of a list message.
func AppendProtoItem(b, msg []byte) []byte {
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// ProtoRaw returns the bare message inside a protobuf envelope (runtime.Unknown
// field 2) without copying it.
func ProtoRaw(doc []byte) ([]byte, error) {
	if !bytes.HasPrefix(doc, ProtoMagic) {
		return nil, errors.New("protobuf object without the k8s envelope")
	}
	b := doc[len(ProtoMagic):]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errors.New("bad protobuf envelope")
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, errors.New("bad protobuf envelope")
			}
			return v, nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, errors.New("bad protobuf envelope")
		}
		b = b[m:]
	}
	return nil, errors.New("protobuf envelope without a body")
}
