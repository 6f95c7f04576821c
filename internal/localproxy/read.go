package localproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
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

// serveList streams the view's objects: JSON straight to the response, protobuf
// assembled into one buffer first (a protobuf list is length-prefixed).
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

// each calls fn for every object of the view that matches.
func (h *Handler) each(ctx context.Context, v *view, fn func(o store.Object) error) (store.ListInfo, error) {
	return h.st.List(ctx, v.key, func(o store.Object) error {
		if v.match != nil {
			ok, err := v.match.match(o)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		return fn(o)
	})
}

// listWriteTimeout bounds how long a JSON list may take to reach the client: it is
// written inside the cache's read transaction, and a client that stops reading must
// not hold that transaction (bbolt cannot grow the file meanwhile) for ever.
const listWriteTimeout = time.Minute

func (h *Handler) listJSON(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, v *view, gvk schema.GroupVersionKind) {
	rc := http.NewResponseController(w)
	if rc.SetWriteDeadline(time.Now().Add(listWriteTimeout)) == nil {
		// HTTP/1.1 deadlines are the connection's: clear it for the next request.
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	}
	var bw *bufio.Writer
	n := 0
	start := func(kind string) {
		w.Header().Set("Content-Type", mediaJSON)
		w.WriteHeader(http.StatusOK)
		bw = bufio.NewWriterSize(w, 64<<10)
		bw.WriteString(`{"kind":`)
		q, _ := jsonQuote(kind + "List")
		bw.Write(q)
		bw.WriteString(`,"apiVersion":`)
		q, _ = jsonQuote(gvk.GroupVersion().String())
		bw.Write(q)
		bw.WriteString(`,"metadata":{"resourceVersion":"`)
		bw.WriteString(strconv.FormatUint(v.info.ResourceVersion, 10))
		bw.WriteString(`"},"items":[`)
	}
	li, err := h.each(r.Context(), v, func(o store.Object) error {
		doc, err := asJSON(o)
		if err != nil {
			return err
		}
		if bw == nil {
			kind := gvk.Kind
			if kind == "" {
				kind = kindOfJSON(doc)
			}
			start(kind)
		} else {
			bw.WriteByte(',')
		}
		n++
		_, err = bw.Write(doc)
		return err
	})
	if err != nil {
		if bw == nil {
			writeStatus(w, r, storeError(info, err))
			return
		}
		h.log.Warn("local list failed after the response started; connection aborted", slog.String("request", info.String()), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
	if bw == nil {
		if isKubeletPods(info) {
			writeStatus(w, r, kubeletNoPods(info))
			return
		}
		v.info = li
		start(gvk.Kind)
	}
	bw.WriteString("]}\n")
	_ = bw.Flush()
}

func (h *Handler) listProtobuf(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, v *view, gvk schema.GroupVersionKind) {
	var items []byte
	n := 0
	li, err := h.each(r.Context(), v, func(o store.Object) error {
		doc, err := asProtobuf(o)
		if err != nil {
			return err
		}
		raw, err := protoRaw(doc)
		if err != nil {
			return err
		}
		if items == nil && v.info.Count > 1 {
			// Size the buffer from the first item once, rather than doubling it
			// (and copying) a dozen times on a 10k-object list.
			items = make([]byte, 0, (len(raw)+8)*v.info.Count*11/10)
		}
		items = appendProtoItem(items, raw)
		n++
		return nil
	})
	if err != nil {
		writeStatus(w, r, storeError(info, err))
		return
	}
	if n == 0 && isKubeletPods(info) {
		writeStatus(w, r, kubeletNoPods(info))
		return
	}
	lm := protoListMeta(li.ResourceVersion)
	hdr := protoListHeader(gvk.GroupVersion().String(), gvk.Kind+"List", len(lm)+len(items))
	w.Header().Set("Content-Type", mediaProtobuf)
	w.Header().Set("Content-Length", strconv.Itoa(len(hdr)+len(lm)+len(items)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(hdr)
	_, _ = w.Write(lm)
	_, _ = w.Write(items)
}
