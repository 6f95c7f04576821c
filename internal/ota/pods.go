package ota

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/yurthub/yurthub/internal/gc"
	"github.com/yurthub/yurthub/internal/store"
)

// Kubelet is the component whose cache /pods reads.
const Kubelet = "kubelet"

// podsHandler serves GET /pods.
func (h *Handler) podsHandler(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if h.opts.Store == nil {
		h.fail(w, http.StatusServiceUnavailable, "this hub has no cache (cloud mode, or the cache file could not be opened: see its log), so it cannot list the node's pods")
		return
	}
	// The newest resourceVersion among kubelet's pod views (they are all the node's
	// pods or a superset); none at all => kubelet never listed its pods here.
	var listRV uint64
	views, err := h.opts.Store.Views(ctx, Kubelet, gc.PodsResource)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, fmt.Sprintf("read the cache: %v", err))
		return
	}
	for _, l := range views {
		if l.ResourceVersion > listRV {
			listRV = l.ResourceVersion
		}
	}
	var body bytes.Buffer
	body.WriteString(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":`)
	body.WriteString(strconv.Quote(strconv.FormatUint(listRV, 10)))
	body.WriteString(`},"items":[`)
	n := 0
	err = h.opts.Store.Walk(ctx, store.Filter{Component: Kubelet, Resource: gc.PodsResource}, func(k store.ObjectKey, o store.Object) error {
		if k.Resource != gc.PodsResource {
			return nil
		}
		p, err := gc.DecodePod(o)
		if err != nil {
			h.log.Warn("/pods: a cached pod does not decode; left out", slog.String("pod", k.Namespace+"/"+k.Name), slog.Any("err", err))
			return nil
		}
		if p.Spec.NodeName != h.opts.Node {
			return nil
		}
		p.APIVersion, p.Kind = "v1", "Pod"
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if n > 0 {
			body.WriteByte(',')
		}
		body.Write(b)
		n++
		return nil
	})
	if err != nil {
		h.fail(w, http.StatusInternalServerError, fmt.Sprintf("read the cached pods: %v", err))
		return
	}
	if len(views) == 0 && n == 0 {
		h.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("kubelet has not listed its pods through this hub yet, so the cache cannot tell which pods node %s has; retry once kubelet runs against the hub", h.opts.Node))
		return
	}
	body.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	_, _ = w.Write(body.Bytes())
}

// fail answers a refusal or an error with its reason as plain text (OpenYurt's
// handlers answer plain text too) and logs it.
func (h *Handler) fail(w http.ResponseWriter, code int, msg string) {
	h.reply(w, code, msg, code >= 500)
}

// reply writes the answer; warn logs it at WARN (a fault of the hub or the cloud),
// else at INFO (a refusal, or an outage the hub already reports).
func (h *Handler) reply(w http.ResponseWriter, code int, msg string, warn bool) {
	if warn {
		h.log.Warn("hub server: "+msg, slog.Int("code", code))
	} else {
		h.log.Info("hub server: "+msg, slog.Int("code", code))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

var errOffline = errors.New("the cloud kube-apiserver is unreachable")
