package localproxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// eventWriter encodes watch events in the negotiated format.
type eventWriter struct {
	w     http.ResponseWriter
	bw    *bufio.Writer
	f     format
	gvk   schema.GroupVersionKind
	frame [4]byte
}

// object writes one event whose object is a cached object.
func (e *eventWriter) object(typ string, o store.Object) error {
	doc, err := encodeAs(o, e.f)
	if err != nil {
		return err
	}
	return e.raw(typ, doc)
}

// raw writes one event whose object is already encoded in the stream's format.
func (e *eventWriter) raw(typ string, doc []byte) error {
	if e.f == formatProtobuf {
		ev := metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: doc}}
		msg, err := ev.Marshal()
		if err != nil {
			return err
		}
		// Watch frames are raw WatchEvent messages (the stream serializer is
		// protobuf's RawSerializer: no envelope), length-prefixed; the object inside
		// is a full enveloped document.
		body := msg
		binary.BigEndian.PutUint32(e.frame[:], uint32(len(body)))
		e.bw.Write(e.frame[:])
		_, err = e.bw.Write(body)
		return err
	}
	e.bw.WriteString(`{"type":"`)
	e.bw.WriteString(typ)
	e.bw.WriteString(`","object":`)
	e.bw.Write(doc)
	_, err := e.bw.WriteString("}\n")
	return err
}

func (e *eventWriter) bookmark(rv uint64, initialEnd bool) error {
	if e.gvk.Kind == "" {
		return nil // kind unknown (a CRD never seen in discovery nor in the cache): a bookmark could not be decoded
	}
	var doc []byte
	if e.f == formatProtobuf {
		var err error
		if doc, err = kubescheme.BookmarkProto(e.gvk, rv, initialEnd); err != nil {
			return err
		}
	} else {
		doc = kubescheme.BookmarkJSON(e.gvk, rv, initialEnd)
	}
	return e.raw("BOOKMARK", doc)
}

func (e *eventWriter) status(st *metav1.Status) error {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	st.Status = metav1.StatusFailure
	var doc []byte
	var err error
	if e.f == formatProtobuf {
		doc, err = kubescheme.EncodeProto(st)
	} else {
		doc, err = jsonMarshal(st)
	}
	if err != nil {
		return err
	}
	return e.raw("ERROR", doc)
}

func (e *eventWriter) flush() error {
	if err := e.bw.Flush(); err != nil {
		return err
	}
	return http.NewResponseController(e.w).Flush()
}

// serveWatch holds a watch open from the cache. It sends no event the cache did not
// see: with sendInitialEvents (watch-list) or resourceVersion ""/"0" the cached
// objects come first as ADDED (then, for watch-list, the initial-events-end
// bookmark); a watch from a resourceVersion older than the cached view gets 410
// Expired so the client relists (from the cache); then only bookmarks (when
// allowed). The watch ends at timeoutSeconds, when the client leaves, on Close, and
// as soon as the cloud is healthy again, so the client re-watches against it.
func (h *Handler) serveWatch(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	ctx := r.Context()
	gvk, builtin := h.kindOf(ctx, info)
	f, ok := negotiate(r.Header.Get("Accept"), builtin)
	if !ok {
		writeStatus(w, r, notAcceptable(info, r.Header.Get("Accept")))
		return
	}
	initial := info.SendInitialEvents || info.ResourceVersion == "" || info.ResourceVersion == "0"
	var from uint64
	if !initial {
		var err error
		if from, err = strconv.ParseUint(info.ResourceVersion, 10, 64); err != nil {
			st := apierrors.NewBadRequest(fmt.Sprintf("yurthub: resourceVersion %q is not a number", info.ResourceVersion)).ErrStatus
			writeStatus(w, r, &st)
			return
		}
	}

	var v *view
	if initial {
		var err error
		if v, err = h.findView(ctx, info); err != nil {
			var nv *errNoView
			if errors.As(err, &nv) {
				writeStatus(w, r, nv.status)
			} else {
				writeStatus(w, r, storeError(info, err))
			}
			return
		}
	} else if li, err := h.st.GetListInfo(ctx, cachekey.List(info)); err == nil {
		v = &view{key: cachekey.List(info), info: li}
	}

	timeout := requestinfo.WatchTimeout(info.TimeoutSeconds, h.opts.MinRequestTimeout, rand.Float64)

	h.watches.Add(1)
	h.active.Add(1)
	defer h.watches.Done()
	defer h.active.Add(-1)

	ct := mediaJSON
	if f == formatProtobuf {
		ct = mediaProtoWatch
	}
	ew := &eventWriter{w: w, bw: bufio.NewWriterSize(w, 32<<10), f: f, gvk: gvk}
	log := h.log.With(slog.String("request", info.String()), slog.String("component", info.Component))

	// Initial state, collected before the header so a failure is still a Status.
	rv := from
	if initial {
		var ok bool
		if rv, ok = h.sendInitial(w, r, info, v, ew, ct); !ok {
			return
		}
		if info.SendInitialEvents {
			if err := ew.bookmark(rv, true); err != nil {
				log.Warn("local watch: initial-events-end bookmark", slog.Any("err", err))
				return
			}
		}
	} else {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		if v != nil && from < v.info.ResourceVersion {
			st := apierrors.NewResourceExpired(fmt.Sprintf("yurthub: too old resource version: %d (%d): the cloud kube-apiserver is unreachable and this node's cache is newer; relist to get it", from, v.info.ResourceVersion)).ErrStatus
			_ = ew.status(&st)
			_ = ew.flush()
			return
		}
	}
	if err := ew.flush(); err != nil {
		return
	}
	log.Debug("local watch started", slog.Uint64("resourceVersion", rv))

	// objects the offline path changes (endpoint repair) arrive as MODIFIED
	local, unsubscribe := h.notify.subscribe(info.Component, cachekey.List(info).Resource)
	defer unsubscribe()
	match, merr := newMatcher(info.Namespace, info.LabelSelector, info.FieldSelector, info.Resource)
	repaired := false

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(h.opts.HealthPollInterval)
	defer poll.Stop()
	var bookmarks <-chan time.Time
	if info.AllowWatchBookmarks {
		t := time.NewTicker(h.opts.BookmarkInterval)
		defer t.Stop()
		bookmarks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.closing:
			return
		case <-deadline.C:
			return
		case <-poll.C:
			if h.cloudHealthy() {
				if repaired {
					// the client holds objects only this node changed: make it relist
					// from the cloud, whose objects win
					log.Info("cloud reachable again: ending the local watch with 410 Expired so the client relists the objects repaired offline from the cloud")
					st := apierrors.NewResourceExpired("yurthub: the cloud kube-apiserver is reachable again and objects on this watch were repaired offline; relist to get the cloud's").ErrStatus
					_ = ew.status(&st)
					_ = ew.flush()
					return
				}
				log.Info("cloud reachable again: ending the local watch so the client re-watches the cloud")
				return
			}
		case ev := <-local:
			if merr != nil {
				continue
			}
			if ok, err := match.match(ev.obj); err != nil || !ok {
				continue
			}
			if err := ew.object("MODIFIED", ev.obj); err != nil {
				return
			}
			if err := ew.flush(); err != nil {
				return
			}
			repaired = true
		case <-bookmarks:
			if v != nil {
				if li, err := h.st.GetListInfo(ctx, v.key); err == nil && li.ResourceVersion > rv {
					rv = li.ResourceVersion
				}
			}
			if err := ew.bookmark(rv, false); err != nil {
				return
			}
			if err := ew.flush(); err != nil {
				return
			}
		}
	}
}
