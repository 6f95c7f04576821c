package multiplexer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/yurthub/yurthub/internal/apistatus"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/wire"
)

// Serve answers a list or watch of a multiplexed resource and returns true, or
// returns false without writing anything when the request must take the ordinary
// path: not a multiplexed resource, no state yet, a form the cache cannot answer
// (resourceVersionMatch=Exact, a resourceVersion newer than the cache, a
// transformed response).
func (m *Multiplexer) Serve(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) bool {
	if !m.Handles(info) {
		return false
	}
	c := m.caches[schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}]
	// A transformed form (kubectl's Table) is the cloud's to render; offline the
	// plain list the client also accepts is served, as the offline path does
	// (kubectl prints it itself).
	offline := m.opts.CloudHealthy != nil && !m.opts.CloudHealthy()
	f, ok := negotiate(r.Header.Get("Accept"), offline)
	if !ok {
		return false
	}
	sel, err := newSelector(info.Namespace, info.LabelSelector, info.FieldSelector)
	if err != nil {
		st := apierrors.NewBadRequest("yurthub: " + err.Error()).ErrStatus
		apistatus.Write(w, r, &st, 0)
		return true
	}
	var filter ClientFilter
	if m.opts.Filters != nil {
		filter = m.opts.Filters(info)
	}
	if info.Verb == "list" {
		return m.serveList(w, r, info, c, f, sel, filter)
	}
	return m.serveWatch(w, r, info, c, f, sel, filter)
}

func (m *Multiplexer) serveList(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, c *watchCache, f format, sel *selector, filter ClientFilter) bool {
	q := r.URL.Query()
	if q.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		return false // a past state: only the cloud has it
	}
	var want uint64
	if rv := info.ResourceVersion; rv != "" && rv != "0" {
		var err error
		if want, err = strconv.ParseUint(rv, 10, 64); err != nil {
			return false // not a number: the cloud says what is wrong with it
		}
	}
	var body answer
	defer func() {
		if body != nil {
			body.Close()
		}
	}()
	items := 0
	rv, res, reason := m.readStored(r.Context(), c, want, func(_ uint64, each func(func(*object) error) error) error {
		var err error
		body, err = m.spooled(body, func(out answer) error {
			items = 0
			return m.listItems(out, each, f, sel, filter, &items)
		})
		return err
	}, nil)
	if res != readServed {
		return m.notServed(w, r, info, res, reason)
	}
	m.stats.lists.Add(1)
	gvk := c.res.gvk()
	if f == formatProtobuf {
		lm := wire.ProtoListMeta(rv)
		hdr := wire.ProtoListHeader(gvk.GroupVersion().String(), gvk.Kind+"List", len(lm)+int(body.Len()))
		w.Header().Set("Content-Type", mediaProtobuf)
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(hdr)+len(lm))+body.Len(), 10))
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write(hdr); err != nil {
			return true
		}
		if _, err := w.Write(lm); err != nil {
			return true
		}
		_ = body.CopyTo(w)
		return true
	}
	head := fmt.Appendf(nil, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"},"items":[`, gvk.Kind+"List", gvk.GroupVersion().String(), rv)
	const tail = "]}\n"
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head)+len(tail))+body.Len(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(head); err != nil {
		return true
	}
	if err := body.CopyTo(w); err != nil {
		return true
	}
	_, _ = io.WriteString(w, tail)
	return true
}

// listItems writes the stored objects that pass the client's selectors and
// filter as list items: protobuf items (field 2 of the list message), or JSON
// documents separated by commas.
func (m *Multiplexer) listItems(out io.Writer, each func(func(*object) error) error, f format, sel *selector, filter ClientFilter, n *int) error {
	log := m.log
	var tag []byte
	return each(func(o *object) error {
		if !sel.matches(o) {
			return nil
		}
		doc, err := o.encoded(f)
		if err != nil {
			log.Warn("multiplexer: object left out of a list: cannot encode it", slog.String("object", o.namespace+"/"+o.name), slog.Any("err", err))
			return nil
		}
		if filter != nil {
			out, keep, err := filter.Object(doc, f == formatProtobuf)
			if err != nil {
				log.Warn("multiplexer: response filter failed; object sent unfiltered", slog.String("object", o.namespace+"/"+o.name), slog.Any("err", err))
			}
			if !keep {
				return nil
			}
			doc = out
		}
		if f == formatProtobuf {
			raw, err := wire.ProtoRaw(doc)
			if err != nil {
				log.Warn("multiplexer: object left out of a list", slog.String("object", o.namespace+"/"+o.name), slog.Any("err", err))
				return nil
			}
			tag = protowire.AppendTag(tag[:0], 2, protowire.BytesType) // a list's items are its field 2
			tag = protowire.AppendVarint(tag, uint64(len(raw)))
			if _, err := out.Write(tag); err != nil {
				return err
			}
			*n++
			_, err = out.Write(raw)
			return err
		}
		if *n > 0 {
			if _, err := out.Write(comma); err != nil {
				return err
			}
		}
		*n++
		_, err = out.Write(doc)
		return err
	})
}

var comma = []byte{','}

// serveWatch holds one local watch: the initial state (watch-list, or
// resourceVersion ""/"0") or the window's events after the client's
// resourceVersion (410 when the window no longer reaches back to it), then every
// event as the reflector applies it, bookmarks when allowed, until
// timeoutSeconds, the client leaving, or the cache ending the watch (a relist; a
// client too slow to keep up).
func (m *Multiplexer) serveWatch(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, c *watchCache, f format, sel *selector, filter ClientFilter) bool {
	initial := info.SendInitialEvents || info.ResourceVersion == "" || info.ResourceVersion == "0"
	var from uint64
	if !initial {
		var err error
		if from, err = strconv.ParseUint(info.ResourceVersion, 10, 64); err != nil {
			return false // the cloud says what is wrong with it
		}
	}
	wt := newWatcher()
	var backlog []*event
	var expired *errExpired
	s := &stream{m: m, f: f, gvk: c.res.gvk(), sel: sel}
	var end <-chan struct{} // closed when the client must relist (Ender)
	if filter != nil {
		s.filter = filter.NewWatch()
		if e, ok := s.filter.(Ender); ok {
			end = e.End()
			defer e.Close()
		}
	}
	var initialEvents answer
	defer func() {
		if initialEvents != nil {
			initialEvents.Close()
		}
	}()
	if initial {
		// The initial state from the cache file, encoded as ADDED events into a
		// spool inside the read transaction; the watch registers (and takes the
		// window's events after the state) once it is accepted.
		rv, res, reason := m.readStored(r.Context(), c, 0, func(_ uint64, each func(func(*object) error) error) error {
			var err error
			initialEvents, err = m.spooled(initialEvents, func(out answer) error {
				s.bw = bufio.NewWriterSize(out, 32<<10)
				if err := each(func(o *object) error {
					if !sel.matches(o) {
						return nil
					}
					doc, err := o.encoded(f)
					if err != nil {
						m.log.Warn("multiplexer: object left out of a watch's initial events: cannot encode it", slog.String("object", o.namespace+"/"+o.name), slog.Any("err", err))
						return nil
					}
					return s.send(string(added), doc, nil)
				}); err != nil {
					return err
				}
				return s.bw.Flush()
			})
			return err
		}, func(rv uint64) { backlog = c.watchFromLocked(wt, rv) })
		if res != readServed {
			return m.notServed(w, r, info, res, reason)
		}
		s.last = rv
	} else {
		var ok bool
		backlog, expired, ok = c.watch(wt, from)
		if !ok {
			return false
		}
		s.last = from
	}
	defer c.forget(wt)
	m.stats.watches.Add(1)

	ct := mediaJSON
	if f == formatProtobuf {
		ct = mediaProtoWatch
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	s.w, s.bw = w, bufio.NewWriterSize(w, 32<<10)
	if expired != nil {
		st := apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", expired.rv, expired.oldest)).ErrStatus
		_ = s.status(&st)
		_ = s.flush()
		return true
	}
	if initialEvents != nil {
		if err := s.bw.Flush(); err != nil {
			return true
		}
		if err := initialEvents.CopyTo(w); err != nil {
			return true
		}
		initialEvents.Close()
		initialEvents = nil
	}
	if info.SendInitialEvents {
		if err := s.bookmark(s.last, true); err != nil {
			return true
		}
	}
	for _, ev := range backlog {
		if err := s.event(ev); err != nil {
			return true
		}
	}
	if err := s.flush(); err != nil {
		return true
	}

	deadline := time.NewTimer(requestinfo.WatchTimeout(info.TimeoutSeconds, m.opts.MinRequestTimeout, rand.Float64))
	defer deadline.Stop()
	var bookmarks <-chan time.Time
	if info.AllowWatchBookmarks {
		t := time.NewTicker(m.opts.BookmarkInterval)
		defer t.Stop()
		bookmarks = t.C
	}
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-deadline.C:
			return true
		case <-wt.done:
			return true
		case <-end:
			st := apierrors.NewResourceExpired("the response filters of this watch changed (a Service's topology or the node's pool): list again").ErrStatus
			_ = s.status(&st)
			_ = s.flush()
			return true
		case ev := <-wt.ch:
			if err := s.event(ev); err != nil {
				return true
			}
			// Write what else is queued before flushing: one flush per burst.
			for more := true; more; {
				select {
				case ev := <-wt.ch:
					if err := s.event(ev); err != nil {
						return true
					}
				default:
					more = false
				}
			}
			if err := s.flush(); err != nil {
				return true
			}
		case <-bookmarks:
			if cur := c.currentRV(); cur > s.last {
				if err := s.bookmark(cur, false); err != nil {
					return true
				}
				if err := s.flush(); err != nil {
					return true
				}
			}
		}
	}
}

// stream writes one watch's events.
type stream struct {
	m      *Multiplexer
	w      http.ResponseWriter
	bw     *bufio.Writer
	f      format
	gvk    schema.GroupVersionKind
	sel    *selector
	filter WatchFilter
	last   uint64 // resourceVersion of the last event or bookmark sent
}

// event writes one shared event as this client must see it: selectors turn an
// object leaving the selection into DELETED and one entering it into ADDED, as
// the apiserver's cacher does; then the client's filter.
func (s *stream) event(ev *event) error {
	cur, prev := s.sel.matches(ev.obj), ev.prev == unknownPrev || s.sel.matches(ev.prev)
	typ := ev.typ
	switch {
	case ev.typ == deleted:
		if !cur {
			return nil
		}
	case cur && !prev:
		typ = added
	case !cur && prev:
		typ = deleted
	case !cur && !prev:
		return nil
	}
	s.last = ev.rv
	if typ == ev.typ && s.filter == nil {
		fr, err := ev.frame(s.f)
		if err != nil {
			s.m.log.Warn("multiplexer: event not sent: cannot encode it", slog.String("object", ev.obj.namespace+"/"+ev.obj.name), slog.Any("err", err))
			return nil
		}
		s.m.stats.events.Add(1)
		_, err = s.bw.Write(fr)
		return err
	}
	doc, err := ev.obj.encoded(s.f)
	if err != nil {
		s.m.log.Warn("multiplexer: event not sent: cannot encode it", slog.String("object", ev.obj.namespace+"/"+ev.obj.name), slog.Any("err", err))
		return nil
	}
	var shared *event
	if typ == ev.typ {
		shared = ev
	}
	return s.send(string(typ), doc, shared)
}

// send writes one event through the client's filter; shared, when not nil, is
// the event whose shared frame is written if the filter changed nothing.
func (s *stream) send(typ string, doc []byte, shared *event) error {
	if s.filter != nil {
		outType, out, keep, err := s.filter.Event(typ, doc, s.f == formatProtobuf)
		if err != nil {
			s.m.log.Warn("multiplexer: response filter failed; event sent unfiltered", slog.Any("err", err))
		}
		if !keep {
			return nil
		}
		if outType != typ || !sameBytes(out, doc) {
			shared = nil
		}
		typ, doc = outType, out
	}
	s.m.stats.events.Add(1)
	if shared != nil {
		if fr, err := shared.frame(s.f); err == nil {
			_, err = s.bw.Write(fr)
			return err
		}
	}
	fr, err := watchFrame(s.f, typ, doc)
	if err != nil {
		return err
	}
	_, err = s.bw.Write(fr)
	return err
}

func (s *stream) bookmark(rv uint64, initialEnd bool) error {
	doc, err := bookmarkDoc(s.f, s.gvk, rv, initialEnd)
	if err != nil {
		return err
	}
	s.last = rv
	fr, err := watchFrame(s.f, string(bookmark), doc)
	if err != nil {
		return err
	}
	_, err = s.bw.Write(fr)
	return err
}

func (s *stream) status(st *metav1.Status) error {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	st.Status = metav1.StatusFailure
	var doc []byte
	var err error
	if s.f == formatProtobuf {
		doc, err = kubescheme.EncodeProto(st)
	} else {
		doc, err = json.Marshal(st)
	}
	if err != nil {
		return err
	}
	fr, err := watchFrame(s.f, "ERROR", doc)
	if err != nil {
		return err
	}
	_, err = s.bw.Write(fr)
	return err
}

func (s *stream) flush() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	return http.NewResponseController(s.w).Flush()
}
