// Package schema holds the names and byte encodings of the cache file's buckets and
// values. The drawn layout lives in package store's doc comment; this package is
// the single place that spells the names, shared by package store and by the
// top-level migrations package (which cannot import store: store runs migrations).
//
// Every bucket and key name is a package-level []byte. A retired name keeps a
// "deprecated" prefix here so that a migration can still find and remove it.
package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
)

// Name identifies our files: meta/schema holds it. A file whose meta bucket lacks it
// is foreign. It changes only on an incompatible change (then old files are moved
// aside, never read).
const Name = "yurthub-cache/v1"

// Bucket and key names. See package store for the drawing.
var (
	BucketMeta       = []byte("meta")            // top level: schema identity and version
	KeySchema        = []byte("schema")          // meta: Name
	KeyVersion       = []byte("version")         // meta: uint64 big-endian, written last by migrations
	KeyCreated       = []byte("created")         // meta: RFC 3339 time the file was initialised
	KeyOpenYurtInput = []byte("openyurt-import") // meta: one line describing the OpenYurt import

	BucketComponents = []byte("components") // top level: one bucket per component
	BucketObjects    = []byte("objects")    // component: one bucket per resource
	BucketLists      = []byte("lists")      // component: one bucket per resource, then per view
	BucketRaw        = []byte("raw")        // component: non-resource responses by path
	BucketMembers    = []byte("members")    // list view: object keys it covers
	KeyInfo          = []byte("info")       // list view: ListInfo record
)

// ResourceKey is the bucket name of a resource: "<group>/<version>/<resource>", with
// the core group spelled "core" (a real API group always contains a dot, so this
// cannot clash).
func ResourceKey(group, version, resource string) []byte {
	if group == "" {
		group = "core"
	}
	return []byte(group + "/" + version + "/" + resource)
}

// ParseResourceKey is the inverse of ResourceKey.
func ParseResourceKey(k []byte) (group, version, resource string, err error) {
	parts := strings.Split(string(k), "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("resource key %q is not group/version/resource", k)
	}
	if parts[0] == "core" {
		parts[0] = ""
	}
	return parts[0], parts[1], parts[2], nil
}

// ObjectKey is an object's key in its resource bucket (and in list members):
// "<namespace>/<name>", "/<name>" when cluster-scoped. Neither part can contain '/'.
func ObjectKey(namespace, name string) []byte { return []byte(namespace + "/" + name) }

// ParseObjectKey is the inverse of ObjectKey.
func ParseObjectKey(k []byte) (namespace, name string, err error) {
	i := strings.IndexByte(string(k), '/')
	if i < 0 {
		return "", "", fmt.Errorf("object key %q has no '/'", k)
	}
	return string(k[:i]), string(k[i+1:]), nil
}

// ViewKey is a list view's bucket name: "<namespace>?<selector>" (a namespace cannot
// contain '?'; the selector is canonical and may contain anything).
func ViewKey(namespace, selector string) []byte { return []byte(namespace + "?" + selector) }

// ParseViewKey is the inverse of ViewKey.
func ParseViewKey(k []byte) (namespace, selector string, err error) {
	i := strings.IndexByte(string(k), '?')
	if i < 0 {
		return "", "", fmt.Errorf("list view key %q has no '?'", k)
	}
	return string(k[:i]), string(k[i+1:]), nil
}

// Record formats. Every value record (object, list info, raw response) starts with
// its format byte. Format 2 adds a CRC-32C (Castagnoli) of the whole record, so a
// value whose bytes changed on disk while bbolt's pages stayed intact is noticed on
// every read instead of being served. Format 1 (no checksum) is retired: migration 3
// rewrites every format-1 record, and only that migration still reads it.
const (
	DeprecatedRecordFormat1 = 1
	RecordFormat            = 2
)

// Object record: [1 format=2][1 encoding][8 resourceVersion BE][4 CRC-32C BE][data...].
// The checksum covers the first 10 bytes and the data.
//
// The encoding byte is 'j' (JSON) or 'p' (protobuf) for an object as the cloud sent
// it, and the same letter in upper case ('J', 'P') for one changed on the node while
// the cloud was unreachable (the offline path's writes). Such an object keeps the
// cloud's resourceVersion, so the case is what lets the cloud's copy at that same
// resourceVersion replace it. The flag lives in the existing header byte, under the
// checksum, so no record grows and no migration rewrites the file: every record
// written before it is a cloud copy, as it says. A binary older than the flag reads
// an upper-case record as malformed (ErrBadRecord); its next list or GET from the
// cloud overwrites it.
const (
	recordHeaderLen = 14
	EncodingJSON    = 'j'
	EncodingProto   = 'p'
	localBit        = 0x20 // cleared: upper case
)

// LocalEncoding is the encoding byte of an object changed locally (see above).
func LocalEncoding(encoding byte) byte { return encoding &^ localBit }

// IsLocal reports whether the record v (a valid object record) was changed locally.
func IsLocal(v []byte) bool { return len(v) > 1 && v[1]&localBit == 0 }

// ErrBadRecord is returned for a value that does not decode.
var ErrBadRecord = errors.New("malformed record")

// ErrChecksum is returned for a record whose bytes no longer match the checksum
// written with them: the value was damaged on disk.
var ErrChecksum = errors.New("checksum mismatch: the stored bytes changed after they were written")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeObject builds an object record. The result is a new slice (bbolt keeps a
// reference to values until the transaction ends, so never reuse it).
func EncodeObject(encoding byte, rv uint64, data []byte) []byte {
	b := NewObjectRecord(encoding, rv, len(data))
	copy(b[recordHeaderLen:], data)
	SealObjectRecord(b)
	return b
}

// NewObjectRecord returns a record with room for n data bytes (rec[len(rec)-n:]),
// for a caller that reads the data straight into place and then calls
// SealObjectRecord.
func NewObjectRecord(encoding byte, rv uint64, n int) []byte {
	b := make([]byte, recordHeaderLen+n)
	b[0] = RecordFormat
	b[1] = encoding
	binary.BigEndian.PutUint64(b[2:10], rv)
	return b
}

// SealObjectRecord writes the checksum of a record built by NewObjectRecord once its
// data is in place.
func SealObjectRecord(b []byte) {
	binary.BigEndian.PutUint32(b[10:14], objectChecksum(b))
}

func objectChecksum(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[:10], castagnoli), castagnoli, b[recordHeaderLen:])
}

// DecodeObject checks and splits a record; data aliases v. ErrBadRecord when v is
// not an object record, ErrChecksum when its bytes were damaged.
//
// The encoding returned is always the lower-case letter; IsLocal tells a local
// change.
func DecodeObject(v []byte) (encoding byte, rv uint64, data []byte, err error) {
	if len(v) < recordHeaderLen || v[0] != RecordFormat {
		return 0, 0, nil, ErrBadRecord
	}
	encoding = v[1] | localBit
	if encoding != EncodingJSON && encoding != EncodingProto {
		return 0, 0, nil, ErrBadRecord
	}
	if binary.BigEndian.Uint32(v[10:14]) != objectChecksum(v) {
		return 0, 0, nil, ErrChecksum
	}
	return encoding, binary.BigEndian.Uint64(v[2:10]), v[recordHeaderLen:], nil
}

// ListInfo record: [1 format=2][8 rv][8 syncedAt unix ns][8 count][1 complete]
// [4 CRC-32C BE][reason...]; the checksum covers every other byte.
type ListInfo struct {
	ResourceVersion uint64
	SyncedAt        time.Time
	Count           int
	Complete        bool
	Reason          string
}

const listInfoLen = 30

// EncodeListInfo builds a list info record.
func EncodeListInfo(li ListInfo) []byte {
	b := make([]byte, listInfoLen+len(li.Reason))
	b[0] = RecordFormat
	binary.BigEndian.PutUint64(b[1:9], li.ResourceVersion)
	var ns int64
	if !li.SyncedAt.IsZero() {
		ns = li.SyncedAt.UnixNano()
	}
	binary.BigEndian.PutUint64(b[9:17], uint64(ns))
	binary.BigEndian.PutUint64(b[17:25], uint64(li.Count))
	if li.Complete {
		b[25] = 1
	}
	copy(b[listInfoLen:], li.Reason)
	binary.BigEndian.PutUint32(b[26:30], splitChecksum(b, 26))
	return b
}

// splitChecksum is the CRC-32C of b without the four checksum bytes at at.
func splitChecksum(b []byte, at int) uint32 {
	return crc32.Update(crc32.Checksum(b[:at], castagnoli), castagnoli, b[at+4:])
}

// DecodeListInfo checks and parses a list info record.
func DecodeListInfo(v []byte) (ListInfo, error) {
	if len(v) < listInfoLen || v[0] != RecordFormat {
		return ListInfo{}, ErrBadRecord
	}
	if binary.BigEndian.Uint32(v[26:30]) != splitChecksum(v, 26) {
		return ListInfo{}, ErrChecksum
	}
	li := ListInfo{
		ResourceVersion: binary.BigEndian.Uint64(v[1:9]),
		Count:           int(binary.BigEndian.Uint64(v[17:25])),
		Complete:        v[25] == 1,
		Reason:          string(v[listInfoLen:]),
	}
	if ns := int64(binary.BigEndian.Uint64(v[9:17])); ns != 0 {
		li.SyncedAt = time.Unix(0, ns).UTC()
	}
	return li, nil
}

// Raw record: [1 format=2][4 CRC-32C BE][2 content-type length BE][content type][body...];
// the checksum covers every other byte.
func EncodeRaw(contentType string, body []byte) []byte {
	b := make([]byte, 7+len(contentType)+len(body))
	b[0] = RecordFormat
	binary.BigEndian.PutUint16(b[5:7], uint16(len(contentType)))
	copy(b[7:], contentType)
	copy(b[7+len(contentType):], body)
	binary.BigEndian.PutUint32(b[1:5], splitChecksum(b, 1))
	return b
}

// DecodeRaw checks and splits a raw record; body aliases v.
func DecodeRaw(v []byte) (contentType string, body []byte, err error) {
	if len(v) < 7 || v[0] != RecordFormat {
		return "", nil, ErrBadRecord
	}
	if binary.BigEndian.Uint32(v[1:5]) != splitChecksum(v, 1) {
		return "", nil, ErrChecksum
	}
	n := int(binary.BigEndian.Uint16(v[5:7]))
	if len(v) < 7+n {
		return "", nil, ErrBadRecord
	}
	return string(v[7 : 7+n]), v[7+n:], nil
}

// Uint64 encodes a version counter.
func Uint64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// ParseUint64 decodes a version counter.
func ParseUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, ErrBadRecord
	}
	return binary.BigEndian.Uint64(b), nil
}
