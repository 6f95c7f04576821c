package localproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Service-account tokens offline.
//
// The hub cannot mint a token the apiserver would accept (it does not hold the
// service-account signing key), and a token it signed itself would be refused by
// every server that checks it. So the hub hands back, offline, the last token the
// cloud issued for the same service account and audiences while it was reachable
// (TokenCacher records them as they pass through the proxy), as long as it stays
// valid for at least Options.TokenMinValidity. Limits, stated plainly:
//   - the token is bound to the object it was issued for (normally the pod that
//     asked first), not to the pod asking now; once the cloud is back, the apiserver
//     rejects it if that pod no longer exists, and kubelet then asks for a fresh one;
//   - its expiry is the one the cloud gave: no offline extension;
//   - no token was seen for that service account and audiences, or the last one is
//     (nearly) expired => a placeholder token (placeholder_token.go).
// Tokens are kept in the cache file (mode 0600), like the Secrets it holds.

// tokenResource is where seen tokens are kept (per component, namespace, and
// "<serviceaccount>.<hash of the audiences>").
var tokenResource = store.Resource{Group: "authentication.k8s.io", Version: "v1", Resource: "tokenrequests"}

func tokenKey(component, namespace, sa string, audiences []string) store.ObjectKey {
	a := append([]string(nil), audiences...)
	sort.Strings(a)
	sum := sha256.Sum256([]byte(strings.Join(a, "\n")))
	return store.ObjectKey{Component: component, Resource: tokenResource, Namespace: namespace, Name: sa + "." + hex.EncodeToString(sum[:6])}
}

// Cacher is the proxy's response hook (proxy.Cacher).
type Cacher interface {
	CacheResponse(info *requestinfo.Info, resp *http.Response)
}

// TokenCacher wraps the cache manager's hook: it records service-account token
// responses (which the cache manager does not cache) for offline use, keeps
// transformed reads (Table, PartialObjectMetadata) away from the cache, and hands
// every other response to next (nil: none).
func (h *Handler) TokenCacher(next Cacher) Cacher { return &tokenCacher{h: h, next: next} }

type tokenCacher struct {
	h    *Handler
	next Cacher
}

func (c *tokenCacher) CacheResponse(info *requestinfo.Info, resp *http.Response) {
	if info != nil && info.IsResourceRequest && resp != nil && resp.Request != nil && asksTransformed(resp.Request.Header.Get("Accept")) {
		// kubectl's Table reads (Accept ...;as=Table) are answered with a plain
		// "application/json" Content-Type, so the cache manager cannot tell them
		// from a list and would store a Table as an empty list view. The offline path
		// serves plain objects only: keep such responses out of the cache.
		return
	}
	if requestinfo.IsTokenRequest(info) && info.Component != "" &&
		resp != nil && resp.Body != nil && resp.StatusCode/100 == 2 && resp.Header.Get("Content-Encoding") == "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err == nil {
			ct := resp.Header.Get("Content-Type")
			var asked []byte
			var askedType string
			if resp.Request != nil {
				asked, askedType = requestinfo.BodyFrom(resp.Request.Context()), resp.Request.Header.Get("Content-Type")
			}
			go c.h.recordToken(info, ct, body, askedType, asked)
		}
	}
	if c.next != nil {
		c.next.CacheResponse(info, resp)
	}
}

// asksTransformed reports whether an Accept header asks for a transformed form of
// a resource (as=Table, as=PartialObjectMetadata[List]), which the apiserver serves
// in preference to the plain object when it can.
func asksTransformed(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if _, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && params["as"] != "" {
			return true
		}
	}
	return false
}

// recordToken keeps a TokenRequest answer under the audiences the client asked for
// (askedBody, the request the proxy kept) and under the audiences of the answer. They
// differ whenever the client asks for none: kubelet's kube-api-access volumes do, and
// the apiserver answers with its own audiences (--api-audiences, by default the
// service-account issuer) filled in. Offline, the same request must find the token.
func (h *Handler) recordToken(info *requestinfo.Info, contentType string, body []byte, askedType string, askedBody []byte) {
	tr, err := decodeTokenRequest(body, contentType)
	if err != nil || tr.Status.Token == "" {
		h.log.Debug("token response not recorded", slog.Any("err", err))
		return
	}
	doc, err := json.Marshal(tr)
	if err != nil {
		return
	}
	keys := []store.ObjectKey{tokenKey(info.Component, info.Namespace, info.Name, tr.Spec.Audiences)}
	if askedBody != nil {
		asked, err := decodeTokenRequest(askedBody, askedType)
		if err != nil {
			h.log.Debug("TokenRequest body not understood; the token is kept under the answer's audiences only", slog.Any("err", err))
		} else if k := tokenKey(info.Component, info.Namespace, info.Name, asked.Spec.Audiences); k != keys[0] {
			keys = append(keys, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range keys {
		if err := h.st.PutObject(ctx, key, store.Object{Namespace: key.Namespace, Name: key.Name, Encoding: store.EncodingJSON, Data: doc}); err != nil {
			h.log.Warn("service-account token not recorded for offline use", slog.String("serviceaccount", info.Namespace+"/"+info.Name), slog.Any("err", err))
			return
		}
	}
}

func decodeTokenRequest(body []byte, contentType string) (*authnv1.TokenRequest, error) {
	doc, err := bodyToJSON(body, contentType)
	if err != nil {
		return nil, err
	}
	var tr authnv1.TokenRequest
	if err := json.Unmarshal(doc, &tr); err != nil {
		return nil, err
	}
	tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenRequest"
	return &tr, nil
}

func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	body, err := readBody(r)
	if err != nil {
		writeStatus(w, r, badRequest(err.Error()))
		return
	}
	req, err := decodeTokenRequest(body, r.Header.Get("Content-Type"))
	if err != nil {
		writeStatus(w, r, badRequest("TokenRequest body: "+err.Error()))
		return
	}
	key := tokenKey(info.Component, info.Namespace, info.Name, req.Spec.Audiences)
	o, err := h.st.GetObject(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		h.servePlaceholderToken(w, r, info, req, fmt.Sprintf("no token for serviceaccount %s/%s with audiences %v was seen while the cloud was reachable", info.Namespace, info.Name, req.Spec.Audiences))
		return
	}
	if err != nil {
		writeStatus(w, r, storeError(info, err))
		return
	}
	var seen authnv1.TokenRequest
	if err := json.Unmarshal(o.Data, &seen); err != nil {
		writeStatus(w, r, storeError(info, fmt.Errorf("%w: %v", store.ErrCorrupt, err)))
		return
	}
	left := seen.Status.ExpirationTimestamp.Sub(h.opts.Now())
	if left < h.opts.TokenMinValidity {
		h.servePlaceholderToken(w, r, info, req, fmt.Sprintf("the last token seen for serviceaccount %s/%s expires at %s (valid for less than %s)",
			info.Namespace, info.Name, seen.Status.ExpirationTimestamp.UTC().Format(time.RFC3339), h.opts.TokenMinValidity))
		return
	}
	out := req.DeepCopy()
	out.APIVersion, out.Kind = "authentication.k8s.io/v1", "TokenRequest"
	out.Name, out.Namespace = info.Name, info.Namespace
	out.Status = seen.Status
	doc, err := json.Marshal(out)
	if err != nil {
		writeStatus(w, r, internalError(err.Error()))
		return
	}
	h.log.Info("service-account token handed out from the cache", slog.String("serviceaccount", info.Namespace+"/"+info.Name),
		slog.Time("expires", seen.Status.ExpirationTimestamp.Time))
	h.respondObject(w, r, info, store.Object{Namespace: info.Namespace, Name: info.Name, Encoding: store.EncodingJSON, Data: doc}, http.StatusCreated)
}
