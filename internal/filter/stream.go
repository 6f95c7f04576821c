package filter

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/wire"
)

// Responses filters proxied responses: the stage the proxy runs on a response
// body before the cache tee, so the client and the cache see the same filtered
// objects and the offline path serves them without filtering again.
//
// get, list, watch and watch-list responses are filtered, JSON and protobuf,
// one object at a time:
//
//   - get: the one object (at most MaxObjectBytes) through Chain.Bytes; a dropped
//     object is sent as it was (a GET has no way to say "not there" but 404,
//     and OpenYurt's filters drop nothing a GET returns).
//   - list, JSON: read with encoding/json's streaming Decoder; every member but
//     items is copied as it is, each item passes Chain.Bytes and is written out
//     at once. A 10k-item list is never held: one item at a time.
//   - list, protobuf: the envelope ("k8s\x00" + Unknown) and the List message
//     carry their lengths up front, so the filtered items are spooled to an
//     unlinked temporary file (0600, SpoolDir) and the response is written once
//     the length is known. Memory: one item.
//   - watch (JSON or protobuf frames): each event passes Watch.Event, so an
//     object that stops passing is sent as DELETED and one that starts passing as
//     ADDED. A watch whose servicetopology result may have changed wholesale is
//     ended (Settings.EndStreams) so that its client relists.
//
// A body that cannot be parsed is not torn: what was not yet sent ends the
// response early, which a client sees as a broken stream and retries (the
// cache, which reads the same bytes, does not commit a torn list). A filter error
// on one object passes that object unchanged and is logged.
type Responses struct {
	Settings *Settings
	// SpoolDir holds protobuf lists being filtered ("" = os.TempDir()).
	SpoolDir string
	// MaxObjectBytes bounds one object or event (default 16 MiB).
	MaxObjectBytes int
	Log            *slog.Logger
}

const defaultMaxObject = 16 << 20

// FilterResponse replaces resp.Body with the filtered body when a chain applies
// to the request; otherwise it leaves resp alone. It never fails: a response it
// cannot filter is passed as it is.
func (r *Responses) FilterResponse(info *requestinfo.Info, resp *http.Response) {
	if r == nil || r.Settings == nil || info == nil || !info.IsResourceRequest || resp == nil || resp.Body == nil ||
		resp.StatusCode < 200 || resp.StatusCode > 299 || info.Subresource != "" {
		return
	}
	if resp.Request != nil && resp.Request.Method != http.MethodGet {
		return
	}
	verb := info.Verb
	if verb != "get" && verb != "list" && verb != "watch" {
		return
	}
	gvr := schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
	chain := r.Settings.ChainFor(info.Component, verb, gvr)
	if chain == nil {
		return
	}
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || params["as"] != "" {
		return // a Table or metadata-only response: no object to filter
	}
	var enc Encoding
	switch {
	case mediaType == "application/json":
		enc = JSON
	case strings.HasPrefix(mediaType, "application/vnd.kubernetes.protobuf"):
		enc = Protobuf
	default:
		return // CBOR or unknown: passed as it is
	}
	ce := resp.Header.Get("Content-Encoding")
	if ce != "" && !strings.EqualFold(ce, "gzip") {
		return
	}
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("component", info.Component), slog.String("request", info.String()),
		slog.Any("filters", chain.Names()))
	max := r.MaxObjectBytes
	if max <= 0 {
		max = defaultMaxObject
	}
	if verb == "get" && ce == "" {
		r.filterGet(resp, chain, enc, max, log)
		return
	}
	var end <-chan struct{}
	done := func() {}
	if verb == "watch" {
		end, done = r.Settings.Track(chain)
	}
	upstream := resp.Body
	pr, pw := io.Pipe()
	// closing the body (the client went away) also closes the upstream, so a
	// filtering goroutine blocked on an idle watch ends at once
	resp.Body = &pipeBody{PipeReader: pr, upstream: upstream}
	if ce != "" {
		resp.Header.Del("Content-Encoding") // the filtered body is written plain
	}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-end:
			log.Info("filtered watch ended with 410 Expired: its client relists with the new filter result")
			upstream.Close()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer cancel()
		defer done()
		defer upstream.Close()
		var in io.Reader = upstream
		if ce != "" {
			gz, err := gzip.NewReader(upstream)
			if err != nil {
				pw.CloseWithError(fmt.Errorf("filter: gunzip: %w", err))
				return
			}
			in = gz
		}
		st := &stream{chain: chain, enc: enc, max: max, log: log, spoolDir: r.SpoolDir}
		var err error
		switch verb {
		case "get":
			err = st.get(in, pw)
		case "list":
			if enc == JSON {
				err = st.jsonList(in, pw)
			} else {
				err = st.protoList(in, pw)
			}
		case "watch":
			if enc == JSON {
				err = st.jsonWatch(in, pw)
			} else {
				err = st.protoWatch(in, pw)
			}
		}
		st.logSummary()
		select {
		case <-end:
			// ended on purpose: a 410 makes a client-go reflector relist (a clean
			// end would only make it re-watch from its resourceVersion, and the
			// objects whose filter result changed would not be sent again)
			err = st.expired(pw)
		default:
		}
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			log.Warn("filtered response cut", slog.Any("err", err))
		}
		pw.CloseWithError(err)
	}()
}

// filterGet filters a GET's body in place, without the goroutine and pipe of a
// stream: it is one object, read whole anyway, and a GET is the request whose
// latency the stage shows most. A body over max is passed on as it is.
func (r *Responses) filterGet(resp *http.Response, chain *Chain, enc Encoding, max int, log *slog.Logger) {
	upstream := resp.Body
	body, err := io.ReadAll(io.LimitReader(upstream, int64(max)+1))
	if err != nil || len(body) > max {
		// cut upstream, or too large to filter: what was read, then the rest
		resp.Body = &readCloser{Reader: io.MultiReader(bytes.NewReader(body), errOr(err, upstream)), Closer: upstream}
		return
	}
	upstream.Close()
	st := &stream{chain: chain, enc: enc, max: max, log: log}
	out, keep, ferr := chain.Bytes(body, enc)
	st.logErr(ferr)
	if !keep {
		out = body
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errOr is a reader failing with err, or r when err is nil.
func errOr(err error, r io.Reader) io.Reader {
	if err != nil {
		return &failingReader{err}
	}
	return r
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

type pipeBody struct {
	*io.PipeReader
	upstream io.Closer
}

func (b *pipeBody) Close() error {
	b.upstream.Close()
	return b.PipeReader.Close()
}

type stream struct {
	chain    *Chain
	enc      Encoding
	max      int
	log      *slog.Logger
	spoolDir string
	failed   int
}

// logErr logs the first filter error of a response and counts the others
// (one Service missing would otherwise log once per slice of a 10k list).
func (s *stream) logErr(err error) {
	if err == nil {
		return
	}
	if s.failed++; s.failed == 1 {
		s.log.Warn("filter failed; object passed through unchanged", slog.Any("err", err))
	}
}

func (s *stream) logSummary() {
	if s.failed > 1 {
		s.log.Warn("filter failures in this response; those objects passed through unchanged", slog.Int("objects", s.failed))
	}
}

func (s *stream) get(in io.Reader, w io.Writer) error {
	body, err := io.ReadAll(io.LimitReader(in, int64(s.max)+1))
	if err != nil {
		return err
	}
	if len(body) > s.max {
		// too large to filter: pass it through as it is
		if _, err := w.Write(body); err != nil {
			return err
		}
		_, err := io.Copy(w, in)
		return err
	}
	out, keep, err := s.chain.Bytes(body, s.enc)
	s.logErr(err)
	if !keep {
		out = body
	}
	_, err = w.Write(out)
	return err
}

// expired writes a watch ERROR event carrying a 410 Expired Status.
func (s *stream) expired(w io.Writer) error {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
		Message: "yurthub: the response filters' result changed (a Service's topology or this node's pool); relist"}
	if s.enc == JSON {
		doc, err := json.Marshal(&st)
		if err != nil {
			return err
		}
		_, err = w.Write(append(append([]byte(`{"type":"ERROR","object":`), doc...), "}\n"...))
		return err
	}
	msg, err := st.Marshal()
	if err != nil {
		return err
	}
	doc, err := marshalEnvelope(&runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: "v1", Kind: "Status"}, Raw: msg})
	if err != nil {
		return err
	}
	ev := metav1.WatchEvent{Type: Error, Object: runtime.RawExtension{Raw: doc}}
	frame, err := ev.Marshal()
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	_, err = w.Write(append(hdr[:], frame...))
	return err
}

// jsonList copies a JSON list, filtering the items of its "items" member as they
// stream (wire.CopyJSONList: the envelope as it is, one item held at a time).
func (s *stream) jsonList(in io.Reader, w io.Writer) error {
	return wire.CopyJSONList(in, w, s.max, func(item []byte) ([]byte, bool) {
		out, keep, err := s.chain.Bytes(item, JSON)
		s.logErr(err)
		return out, keep
	})
}

// jsonWatch filters a JSON watch stream: one {"type","object"} document per event.
func (s *stream) jsonWatch(in io.Reader, w io.Writer) error {
	events := wire.NewJSONEvents(in, s.max)
	wt := s.chain.NewWatch()
	var same []byte
	for {
		raw, typ, obj, err := events.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		ntyp, nobj, send, err := wt.Event(typ, obj, JSON)
		s.logErr(err)
		if !send {
			continue
		}
		if ntyp == typ && len(nobj) == len(obj) && (len(obj) == 0 || &nobj[0] == &obj[0]) {
			// untouched (the usual case): the event as it came, in one write (one
			// write is one flush to the client); w has consumed buf when Write returns
			same = append(append(same[:0], raw...), '\n')
			if _, err := w.Write(same); err != nil {
				return err
			}
			continue
		}
		t, _ := json.Marshal(ntyp)
		buf := make([]byte, 0, len(nobj)+len(t)+24)
		buf = append(buf, `{"type":`...)
		buf = append(buf, t...)
		buf = append(buf, `,"object":`...)
		buf = append(buf, nobj...)
		buf = append(buf, "}\n"...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

// protoWatch filters a protobuf watch stream: frames of a 4-byte big-endian
// length and an enveloped metav1.WatchEvent whose object is itself enveloped.
func (s *stream) protoWatch(in io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	wt := s.chain.NewWatch()
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("watch frame: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if int64(n) > int64(s.max) {
			return fmt.Errorf("watch frame of %d bytes, more than %d", n, s.max)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return fmt.Errorf("watch frame: %w", err)
		}
		out, send, err := s.protoEvent(wt, frame)
		if err != nil {
			s.logErr(err)
			out, send = frame, true
		}
		if !send {
			continue
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(len(out)))
		if _, err := w.Write(append(hdr[:len(hdr):len(hdr)], out...)); err != nil {
			return err
		}
	}
}

// protoEvent filters one frame: a metav1.WatchEvent message, bare (what the
// apiserver's protobuf stream serializer writes) or enveloped; its object is an
// enveloped document. The frame is returned in the form it came in.
func (s *stream) protoEvent(wt *Watch, frame []byte) ([]byte, bool, error) {
	msg := frame
	var u *runtime.Unknown
	if bytes.HasPrefix(frame, protoMagic) {
		u = &runtime.Unknown{}
		if err := u.Unmarshal(frame[len(protoMagic):]); err != nil {
			return nil, false, fmt.Errorf("watch frame envelope: %w", err)
		}
		msg = u.Raw
	}
	var ev metav1.WatchEvent
	if err := ev.Unmarshal(msg); err != nil {
		return nil, false, fmt.Errorf("watch event: %w", err)
	}
	typ, obj, send, ferr := wt.Event(ev.Type, ev.Object.Raw, Protobuf)
	if !send {
		return nil, false, ferr
	}
	if typ == ev.Type && len(obj) == len(ev.Object.Raw) && (len(obj) == 0 || &obj[0] == &ev.Object.Raw[0]) {
		return frame, true, ferr // untouched
	}
	ev.Type, ev.Object.Raw = typ, obj
	raw, err := ev.Marshal()
	if err != nil {
		return nil, false, err
	}
	if u == nil {
		return raw, true, ferr
	}
	u.Raw = raw
	b, err := marshalEnvelope(u)
	if err != nil {
		return nil, false, err
	}
	return b, true, ferr
}

// protoList filters a protobuf list: "k8s\x00" + Unknown{typeMeta=1, raw=2,
// contentEncoding=3, contentType=4} whose raw is the List message {metadata=1,
// items=2 (repeated)}. Fields of the envelope other than raw, and of the List
// other than items, are copied as they are. The filtered List is spooled to a
// file, then written after the envelope's fields with its length.
func (s *stream) protoList(in io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	magic := make([]byte, len(protoMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(protoMagic) {
		return fmt.Errorf("protobuf list: no envelope")
	}
	spool, err := os.CreateTemp(s.spoolDir, "yurthub-filter-list-*")
	if err != nil {
		return fmt.Errorf("protobuf list: spool: %w", err)
	}
	os.Remove(spool.Name()) // unlinked: gone with the descriptor, whatever happens
	defer spool.Close()
	sw := bufio.NewWriterSize(spool, 64<<10)
	var head, tail []byte // envelope fields before and after raw
	listLen := int64(0)
	seenRaw := false
	for {
		num, typ, err := readTag(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("protobuf list envelope: %w", err)
		}
		if num == 2 && typ == protowire.BytesType && !seenRaw {
			seenRaw = true
			n, err := binary.ReadUvarint(br)
			if err != nil {
				return fmt.Errorf("protobuf list: %w", err)
			}
			listLen, err = s.protoListBody(io.LimitReader(br, int64(n)), int64(n), sw)
			if err != nil {
				return err
			}
			continue
		}
		f, err := copyField(br, num, typ, s.max)
		if err != nil {
			return fmt.Errorf("protobuf list envelope: %w", err)
		}
		if seenRaw {
			tail = append(tail, f...)
		} else {
			head = append(head, f...)
		}
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("protobuf list: spool: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("protobuf list: spool: %w", err)
	}
	out := append([]byte(nil), protoMagic...)
	out = append(out, head...)
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(listLen))
	if _, err := w.Write(out); err != nil {
		return err
	}
	if _, err := io.CopyN(w, spool, listLen); err != nil {
		return err
	}
	_, err = w.Write(tail)
	return err
}

// protoListBody filters the List message of length n from r into w and returns
// the length written.
func (s *stream) protoListBody(r io.Reader, n int64, w io.Writer) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var written int64
	put := func(b []byte) error {
		k, err := w.Write(b)
		written += int64(k)
		return err
	}
	for i := 0; ; {
		num, typ, err := readTag(br)
		if errors.Is(err, io.EOF) {
			return written, nil
		}
		if err != nil {
			return 0, fmt.Errorf("protobuf list: %w", err)
		}
		if num != 2 || typ != protowire.BytesType {
			f, err := copyField(br, num, typ, s.max)
			if err != nil {
				return 0, fmt.Errorf("protobuf list: %w", err)
			}
			if err := put(f); err != nil {
				return 0, err
			}
			continue
		}
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return 0, fmt.Errorf("protobuf list item %d: %w", i, err)
		}
		if l > uint64(s.max) {
			return 0, fmt.Errorf("protobuf list item %d: %d bytes, more than %d", i, l, s.max)
		}
		item := make([]byte, l)
		if _, err := io.ReadFull(br, item); err != nil {
			return 0, fmt.Errorf("protobuf list item %d: %w", i, err)
		}
		i++
		out, keep, ferr := s.chain.Bytes(item, Protobuf)
		s.logErr(ferr)
		if !keep {
			continue
		}
		b := protowire.AppendTag(nil, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(out)))
		if err := put(b); err != nil {
			return 0, err
		}
		if err := put(out); err != nil {
			return 0, err
		}
	}
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

func readTag(r byteReader) (protowire.Number, protowire.Type, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < 1 {
		return 0, 0, fmt.Errorf("invalid field number %d", num)
	}
	return num, typ, nil
}

// copyField reads the value of a field whose tag was read and returns the whole
// field (tag included) as it was.
func copyField(r byteReader, num protowire.Number, typ protowire.Type, max int) ([]byte, error) {
	b := protowire.AppendTag(nil, num, typ)
	switch typ {
	case protowire.VarintType:
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		return protowire.AppendVarint(b, v), nil
	case protowire.Fixed32Type, protowire.Fixed64Type:
		n := 4
		if typ == protowire.Fixed64Type {
			n = 8
		}
		v := make([]byte, n)
		if _, err := io.ReadFull(r, v); err != nil {
			return nil, err
		}
		return append(b, v...), nil
	case protowire.BytesType:
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if l > uint64(max) {
			return nil, fmt.Errorf("field %d: %d bytes, more than %d", num, l, max)
		}
		v := make([]byte, l)
		if _, err := io.ReadFull(r, v); err != nil {
			return nil, err
		}
		return append(protowire.AppendVarint(b, l), v...), nil
	}
	return nil, fmt.Errorf("field %d: unsupported wire type %d", num, typ)
}
