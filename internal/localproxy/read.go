package localproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/spool"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/wire"
)

// serveGet answers a get with the cached object in the format asked for.
func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	ctx := r.Context()
	o, err := h.st.GetObject(ctx, cachekey.Object(info))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		if h.hasResource(ctx, info) {
			writeStatus(w, r, notFound(info, fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and %s is not in this node's cache", describe(info))))
		} else {
			writeStatus(w, r, unavailable(info, fmt.Sprintf("%s never read any %s into this node's cache, so the hub cannot tell whether it exists", echo(info.Component), echo(info.Resource))))
		}
		return
	}
	if err != nil {
		writeStatus(w, r, storeError(info, err))
		return
	}
	_, builtin := h.kindOf(ctx, info)
	f, ok := negotiate(r.Header.Get("Accept"), builtin || o.Encoding == store.EncodingProtobuf)
	if !ok {
		writeStatus(w, r, notAcceptable(info, r.Header.Get("Accept")))
		return
	}
	body, err := encodeAs(o, f)
	if err != nil {
		writeStatus(w, r, internalError(fmt.Sprintf("yurthub: cannot encode the cached %s as %s: %v", describe(info), f.contentType(), err)))
		return
	}
	w.Header().Set("Content-Type", f.contentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

var errStop = errors.New("stop")

// hasResource reports whether the component has any object of the request's
// resource cached: only then is a missing object a truthful 404 (the hub knows
// that set); otherwise the answer is unknown offline (503).
func (h *Handler) hasResource(ctx context.Context, info *requestinfo.Info) bool {
	k := cachekey.Object(info)
	found := false
	_ = h.st.Walk(ctx, store.Filter{Component: k.Component, Resource: k.Resource}, func(store.ObjectKey, store.Object) error {
		found = true
		return errStop
	})
	return found
}

func notFound(info *requestinfo.Info, msg string) *metav1.Status {
	st := apierrors.NewNotFound(schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}, info.Name).ErrStatus
	st.Message = msg
	return &st
}

// view is the list view a list or watch is served from.
type view struct {
	key   store.ListKey
	info  store.ListInfo
	match *matcher // nil: serve every member as is
}

// errNoView explains why a list cannot be served.
type errNoView struct {
	status *metav1.Status
}

func (e *errNoView) Error() string { return e.status.Message }

// findView picks the cached view that answers info's list: the view of exactly this
// component/resource/namespace/selector, else a wider view of the same component
// (all namespaces and/or no selector) filtered here. One component's view never
// serves another's. A view never synced, or marked incomplete by the cache
// manager, is not served: a partial list would make clients drop what is missing.
func (h *Handler) findView(ctx context.Context, info *requestinfo.Info) (*view, error) {
	exact := cachekey.List(info)
	cands := []store.ListKey{exact}
	add := func(ns, sel string) {
		k := exact
		k.Namespace, k.Selector = ns, sel
		for _, c := range cands {
			if c == k {
				return
			}
		}
		cands = append(cands, k)
	}
	// Wider views: any subset of the request's selector terms, in this namespace
	// or in all namespaces, most specific first.
	labelOpts := []string{info.LabelSelector}
	if info.LabelSelector != "" {
		labelOpts = append(labelOpts, "")
	}
	fieldTerms, _ := cachekey.FieldTerms(info.FieldSelector)
	if len(fieldTerms) > 6 {
		fieldTerms = fieldTerms[:6]
	}
	var fieldOpts []string
	for mask := (1 << len(fieldTerms)) - 1; mask >= 0; mask-- {
		var terms []string
		for i, t := range fieldTerms {
			if mask&(1<<i) != 0 {
				terms = append(terms, t)
			}
		}
		fieldOpts = append(fieldOpts, strings.Join(terms, ","))
	}
	for _, ns := range []string{info.Namespace, ""} {
		for _, fs := range fieldOpts {
			for _, ls := range labelOpts {
				add(ns, cachekey.Selector(ls, fs))
			}
		}
	}
	var incomplete *store.ListInfo
	for i, k := range cands {
		li, err := h.st.GetListInfo(ctx, k)
		if errors.Is(err, store.ErrNotSynced) {
			continue
		}
		if err != nil {
			return nil, &errNoView{storeError(info, err)}
		}
		if !li.Complete {
			if incomplete == nil {
				incomplete = &li
			}
			continue
		}
		v := &view{key: k, info: li}
		ns := ""
		if k.Namespace == "" && info.Namespace != "" {
			ns = info.Namespace
		}
		lsel, fsel := "", ""
		if i != 0 {
			lsel, fsel = info.LabelSelector, info.FieldSelector
		} else {
			// The exact view's members were chosen by the apiserver; re-check only
			// fields a local write may have changed (status.*).
			if m, err := newMatcher("", "", info.FieldSelector, info.Resource); err == nil && m.field != nil {
				for _, req := range m.field.Requirements() {
					if !immutableField(info.Resource, req.Field) {
						fsel = info.FieldSelector
						break
					}
				}
			}
		}
		m, err := newMatcher(ns, lsel, fsel, info.Resource)
		if err != nil {
			st := apierrors.NewBadRequest("yurthub: " + err.Error()).ErrStatus
			return nil, &errNoView{&st}
		}
		if !m.empty() {
			v.match = m
		}
		return v, nil
	}
	if incomplete != nil {
		return nil, &errNoView{unavailable(info, fmt.Sprintf("the cached list is incomplete (%s); it is not served, because a partial list would make clients drop what is missing", incomplete.Reason))}
	}
	return nil, &errNoView{unavailable(info, fmt.Sprintf("%s was never listed into this node's cache (the cache has only what each client read while the cloud was reachable)", describe(info)))}
}

// isKubeletPods: kubelet's pod list with no items is answered 404 (OpenYurt's rule):
// an empty list would make kubelet stop every pod on the node.
func isKubeletPods(info *requestinfo.Info) bool {
	return info.Component == "kubelet" && info.APIGroup == "" && info.Resource == "pods"
}

func kubeletNoPods(info *requestinfo.Info) *metav1.Status {
	return notFound(info, "yurthub: the cloud kube-apiserver is unreachable and the node's cache holds no pods for kubelet; answering 404 rather than an empty list, which would stop every pod on the node")
}

// serveList answers a list from one snapshot of the view, spooled (internal/spool).
func (h *Handler) serveList(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	ctx := r.Context()
	v, err := h.findView(ctx, info)
	if err != nil {
		var nv *errNoView
		if errors.As(err, &nv) {
			writeStatus(w, r, nv.status)
			return
		}
		writeStatus(w, r, storeError(info, err))
		return
	}
	gvk, builtin := h.kindOf(ctx, info)
	f, ok := negotiate(r.Header.Get("Accept"), builtin)
	if !ok {
		writeStatus(w, r, notAcceptable(info, r.Header.Get("Accept")))
		return
	}
	if f == formatProtobuf {
		h.listProtobuf(w, r, info, v, gvk)
		return
	}
	h.listJSON(w, r, info, v, gvk)
}

// listWriteTimeout bounds how long a list answered straight from the cache's read
// transaction (the fallback when the answer cannot be spooled: a full disk) may take
// to reach the client: a client that stops reading must not hold that transaction
// (bbolt cannot grow the file meanwhile) for ever.
const listWriteTimeout = time.Minute

// testHookSnapshot, when set (tests only), runs after the view was chosen and before
// its snapshot is read: a write there must not make the answer's resourceVersion
// disagree with its items.
var testHookSnapshot func()

// snapshot reads view v in one read transaction: fn gets the view's info and a walk
// over its matching objects (callable more than once, the same snapshot each time).
// A view marked incomplete since findView chose it is refused like findView would.
func (h *Handler) snapshot(ctx context.Context, info *requestinfo.Info, v *view, fn func(li store.ListInfo, each func(func(store.Object) error) error) error) (store.ListInfo, error) {
	if testHookSnapshot != nil {
		testHookSnapshot()
	}
	return h.st.ListTx(ctx, v.key, func(li store.ListInfo, each func(func(store.Object) error) error) error {
		if !li.Complete {
			return &errNoView{unavailable(info, fmt.Sprintf("the cached list is incomplete (%s); it is not served, because a partial list would make clients drop what is missing", li.Reason))}
		}
		return fn(li, func(f func(store.Object) error) error { return each(matching(v, f)) })
	})
}

// listError answers a list that failed before its response started.
func listError(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, err error) {
	var nv *errNoView
	if errors.As(err, &nv) {
		writeStatus(w, r, nv.status)
		return
	}
	writeStatus(w, r, storeError(info, err))
}

// setWriteDeadline bounds the response's writes; the returned func clears it (an
// HTTP/1.1 deadline is the connection's, and the next request needs none).
func setWriteDeadline(w http.ResponseWriter, d time.Duration) func() {
	rc := http.NewResponseController(w)
	if rc.SetWriteDeadline(time.Now().Add(d)) == nil {
		return func() { _ = rc.SetWriteDeadline(time.Time{}) }
	}
	return func() {}
}

// jsonListHead is a JSON list's text up to its first item.
func jsonListHead(kind, apiVersion string, rv uint64) []byte {
	b := []byte(`{"kind":`)
	q, _ := jsonQuote(kind + "List")
	b = append(b, q...)
	b = append(b, `,"apiVersion":`...)
	q, _ = jsonQuote(apiVersion)
	b = append(b, q...)
	b = append(b, `,"metadata":{"resourceVersion":"`...)
	b = strconv.AppendUint(b, rv, 10)
	return append(b, `"},"items":[`...)
}

// listJSON answers a list in JSON: the items are encoded into a spool inside one
// read transaction (the resourceVersion in the head is that snapshot's), and the
// spool goes to the client after the transaction ended. Without a spool (a full
// disk) the items stream straight from the transaction under listWriteTimeout.
func (h *Handler) listJSON(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, v *view, gvk schema.GroupVersionKind) {
	sp, err := h.newSpool()
	if err != nil {
		h.log.Debug("offline list: cannot spool the answer; streaming it from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
	}
	defer func() { sp.Close() }()
	kind := gvk.Kind
	n := 0
	started := false
	item := func(out io.Writer, head func(doc []byte) error) func(store.Object) error {
		return func(o store.Object) error {
			doc, err := asJSON(o)
			if err != nil {
				return err
			}
			if n == 0 {
				if err := head(doc); err != nil {
					return err
				}
			} else if _, err := out.Write(comma); err != nil {
				return err
			}
			n++
			_, err = out.Write(doc)
			return err
		}
	}
	li, err := h.snapshot(r.Context(), info, v, func(li store.ListInfo, each func(func(store.Object) error) error) error {
		if sp != nil {
			err := each(item(sp, func(doc []byte) error {
				if kind == "" {
					kind = kindOfJSON(doc)
				}
				return nil
			}))
			if err == nil {
				err = sp.Finish()
			}
			if !spool.IsError(err) {
				return err
			}
			h.log.Debug("offline list: spooling the answer failed; streaming it from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
			sp.Close()
			sp, n = nil, 0
		}
		// Fallback: straight from the transaction, the head written with the first item.
		defer setWriteDeadline(w, listWriteTimeout)()
		bw := bufio.NewWriterSize(w, 64<<10)
		err := each(item(bw, func(doc []byte) error {
			if kind == "" {
				kind = kindOfJSON(doc)
			}
			w.Header().Set("Content-Type", mediaJSON)
			w.WriteHeader(http.StatusOK)
			started = true
			_, err := bw.Write(jsonListHead(kind, gvk.GroupVersion().String(), li.ResourceVersion))
			return err
		}))
		if err == nil && n > 0 {
			bw.WriteString("]}\n")
			err = bw.Flush()
		}
		return err
	})
	if err != nil {
		if !started {
			listError(w, r, info, err)
			return
		}
		h.log.Warn("local list failed after the response started; connection aborted", slog.String("request", info.String()), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
	if started {
		return
	}
	if n == 0 && isKubeletPods(info) {
		writeStatus(w, r, kubeletNoPods(info))
		return
	}
	head := jsonListHead(kind, gvk.GroupVersion().String(), li.ResourceVersion)
	const tail = "]}\n"
	w.Header().Set("Content-Type", mediaJSON)
	if sp != nil {
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+sp.Len()+int64(len(tail)), 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(head); err != nil {
		return
	}
	if sp != nil {
		if err := sp.CopyTo(w); err != nil {
			h.log.Debug("local list: sending the spooled answer failed (the client went away?)", slog.String("request", info.String()), slog.Any("err", err))
			panic(http.ErrAbortHandler)
		}
	}
	_, _ = io.WriteString(w, tail)
}

// protoItemLen is the size of one item (field 2, a bare message of n bytes) in a
// protobuf list message.
func protoItemLen(n int) int {
	return protowire.SizeTag(2) + protowire.SizeBytes(n)
}

// listProtobuf answers a list in protobuf. The list message is length-prefixed, so
// the items go to a spool first (inside one read transaction) and the length is the
// spool's; nothing is held in memory but one item. Without a spool (a full disk),
// two passes over the same snapshot: the first sums the items' sizes, the second
// streams them under listWriteTimeout.
func (h *Handler) listProtobuf(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, v *view, gvk schema.GroupVersionKind) {
	sp, err := h.newSpool()
	if err != nil {
		h.log.Debug("offline list: cannot spool the answer; streaming it from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
	}
	defer func() { sp.Close() }()
	n := 0
	started := false
	var tag []byte
	item := func(out io.Writer) func(store.Object) error {
		return func(o store.Object) error {
			doc, err := asProtobuf(o)
			if err != nil {
				return err
			}
			raw, err := wire.ProtoRaw(doc)
			if err != nil {
				return err
			}
			tag = protowire.AppendTag(tag[:0], 2, protowire.BytesType)
			tag = protowire.AppendVarint(tag, uint64(len(raw)))
			if _, err := out.Write(tag); err != nil {
				return err
			}
			n++
			_, err = out.Write(raw)
			return err
		}
	}
	li, err := h.snapshot(r.Context(), info, v, func(li store.ListInfo, each func(func(store.Object) error) error) error {
		if sp != nil {
			err := each(item(sp))
			if err == nil {
				err = sp.Finish()
			}
			if !spool.IsError(err) {
				return err
			}
			h.log.Debug("offline list: spooling the answer failed; streaming it from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
			sp.Close()
			sp = nil
		}
		size := 0
		n = 0
		if err := each(func(o store.Object) error {
			doc, err := asProtobuf(o)
			if err != nil {
				return err
			}
			raw, err := wire.ProtoRaw(doc)
			if err != nil {
				return err
			}
			n++
			size += protoItemLen(len(raw))
			return nil
		}); err != nil {
			return err
		}
		if n == 0 && isKubeletPods(info) {
			return nil
		}
		defer setWriteDeadline(w, listWriteTimeout)()
		lm := wire.ProtoListMeta(li.ResourceVersion)
		hdr := wire.ProtoListHeader(gvk.GroupVersion().String(), gvk.Kind+"List", len(lm)+size)
		w.Header().Set("Content-Type", mediaProtobuf)
		w.Header().Set("Content-Length", strconv.Itoa(len(hdr)+len(lm)+size))
		w.WriteHeader(http.StatusOK)
		started = true
		if r.Method == http.MethodHead {
			return nil
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.Write(hdr)
		bw.Write(lm)
		n = 0
		if err := each(item(bw)); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		if !started {
			listError(w, r, info, err)
			return
		}
		h.log.Warn("local list failed after the response started; connection aborted", slog.String("request", info.String()), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
	if started {
		return
	}
	if n == 0 && isKubeletPods(info) {
		writeStatus(w, r, kubeletNoPods(info))
		return
	}
	var size int64
	if sp != nil {
		size = sp.Len()
	}
	lm := wire.ProtoListMeta(li.ResourceVersion)
	hdr := wire.ProtoListHeader(gvk.GroupVersion().String(), gvk.Kind+"List", len(lm)+int(size))
	w.Header().Set("Content-Type", mediaProtobuf)
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(hdr)+len(lm))+size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(hdr); err != nil {
		return
	}
	if _, err := w.Write(lm); err != nil {
		return
	}
	if sp != nil {
		if err := sp.CopyTo(w); err != nil {
			h.log.Debug("local list: sending the spooled answer failed (the client went away?)", slog.String("request", info.String()), slog.Any("err", err))
			panic(http.ErrAbortHandler)
		}
	}
}
