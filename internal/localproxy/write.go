package localproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/gc"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// maxBody bounds a request body read offline (the apiserver's limit is 3 MiB).
const maxBody = 3 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("request body larger than %d bytes", maxBody)
	}
	return b, nil
}

func badRequest(msg string) *metav1.Status {
	st := apierrors.NewBadRequest("yurthub: " + msg).ErrStatus
	return &st
}

func isEvents(info *requestinfo.Info) bool {
	return info.Resource == "events" && (info.APIGroup == "" || info.APIGroup == "events.k8s.io") && info.Subresource == ""
}

// serveCreate keeps events (stored in the component's cache, never forwarded),
// answers service-account token requests from the last token seen, and refuses
// every other create.
func (h *Handler) serveCreate(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	switch {
	case info.APIGroup == "" && info.Resource == "serviceaccounts" && info.Subresource == "token":
		h.serveToken(w, r, info)
	case isEvents(info):
		h.createEvent(w, r, info)
	default:
		h.createExisting(w, r, info)
	}
}

// createExisting answers a create offline. Nothing is created, but a create of an
// object this component already has in its cache gets the apiserver's own answer,
// 409 AlreadyExists: kubelet registers its node (and creates its CSINode and Lease)
// on every start, and on AlreadyExists reads the object and carries on, where any
// other error makes it retry and log for as long as the outage lasts. Anything else
// is a 503 that says creates wait for the cloud.
func (h *Handler) createExisting(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	refuse := func() {
		writeStatus(w, r, unavailable(info, "creates are not applied offline (only events are kept); retry when the cloud is reachable"))
	}
	if info.Subresource != "" {
		refuse()
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeStatus(w, r, badRequest(err.Error()))
		return
	}
	doc, err := bodyToJSON(body, r.Header.Get("Content-Type"))
	if err != nil {
		refuse() // the apiserver may understand what the cache cannot: no verdict
		return
	}
	var m struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if json.Unmarshal(doc, &m) != nil || m.Metadata.Name == "" {
		refuse() // generateName: a new name, which only the cloud can create
		return
	}
	key := cachekey.Object(info)
	key.Name = m.Metadata.Name
	if key.Namespace == "" {
		key.Namespace = m.Metadata.Namespace
	}
	if _, err := h.st.GetObject(r.Context(), key); err != nil {
		refuse()
		return
	}
	st := apierrors.NewAlreadyExists(schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}, m.Metadata.Name).ErrStatus
	st.Message += " (yurthub: answered from this node's cache while the cloud kube-apiserver is unreachable; nothing was created)"
	h.log.Debug("create of a cached object answered AlreadyExists offline", slog.String("request", info.String()), slog.String("name", m.Metadata.Name))
	writeStatus(w, r, &st)
}

func (h *Handler) createEvent(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	body, err := readBody(r)
	if err != nil {
		writeStatus(w, r, badRequest(err.Error()))
		return
	}
	doc, err := bodyToJSON(body, r.Header.Get("Content-Type"))
	if err != nil {
		writeStatus(w, r, badRequest("event body: "+err.Error()))
		return
	}
	var obj map[string]any
	if err := json.Unmarshal(doc, &obj); err != nil {
		writeStatus(w, r, badRequest("event body is not a JSON object: "+err.Error()))
		return
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	ns, _ := md["namespace"].(string)
	switch {
	case ns == "":
		md["namespace"] = info.Namespace
	case info.Namespace != "" && ns != info.Namespace:
		writeStatus(w, r, badRequest(fmt.Sprintf("the namespace of the event (%s) does not match the namespace of the request (%s)", ns, info.Namespace)))
		return
	}
	name, _ := md["name"].(string)
	if name == "" {
		gen, _ := md["generateName"].(string)
		if gen == "" {
			writeStatus(w, r, badRequest("metadata.name or metadata.generateName is required"))
			return
		}
		name = gen + randomSuffix()
		md["name"] = name
	}
	md["uid"] = newUID()
	// With nanoseconds (clients parse it as RFC 3339 all the same): the offline
	// event cap keeps the newest, and a second is too coarse to order them.
	md["creationTimestamp"] = h.opts.Now().UTC().Format(time.RFC3339Nano)
	delete(md, "resourceVersion")
	if obj["kind"] == nil {
		if info.APIGroup == "" {
			obj["apiVersion"], obj["kind"] = "v1", "Event"
		} else {
			obj["apiVersion"], obj["kind"] = info.APIGroup+"/"+info.APIVersion, "Event"
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		writeStatus(w, r, internalError(err.Error()))
		return
	}
	key := cachekey.Object(info)
	key.Namespace, key.Name = info.Namespace, name
	if key.Namespace == "" {
		key.Namespace, _ = md["namespace"].(string)
	}
	ctx := r.Context()
	if _, err := h.st.GetObject(ctx, key); err == nil {
		st := apierrors.NewAlreadyExists(schema.GroupResource{Group: info.APIGroup, Resource: "events"}, name).ErrStatus
		writeStatus(w, r, &st)
		return
	}
	// Kept under the offline cap (gc.MaxLocalEvents per component, oldest dropped).
	dropped, err := gc.KeepLocalEvent(ctx, h.st, key, store.Object{Namespace: key.Namespace, Name: name, Encoding: store.EncodingJSON, Data: out})
	if err != nil {
		writeStatus(w, r, storeError(info, err))
		return
	}
	if dropped > 0 {
		// Debug, not Info: past the cap every new event drops one (weeks of outage
		// would be a line per event); node_yurthub_gc_objects_total counts them.
		h.log.Debug("offline event cap reached: oldest local events dropped", slog.String("component", info.Component),
			slog.Int("dropped", dropped), slog.Int("cap", gc.MaxLocalEvents))
		if h.opts.GCCount != nil {
			h.opts.GCCount(gc.Kind(key.Resource), "event_cap", dropped)
		}
	}
	h.log.Debug("event kept offline", slog.String("component", info.Component), slog.String("event", key.Namespace+"/"+name))
	h.respondObject(w, r, info, store.Object{Namespace: key.Namespace, Name: name, Encoding: store.EncodingJSON, Data: out}, http.StatusCreated)
}

// respondObject answers with one object in the format the client accepts.
func (h *Handler) respondObject(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, o store.Object, code int) {
	_, builtin := h.kindOf(r.Context(), info)
	f, ok := negotiate(r.Header.Get("Accept"), builtin)
	if !ok {
		f = formatJSON
	}
	body, err := encodeAs(o, f)
	if err != nil {
		f, body = formatJSON, nil
		if body, err = asJSON(o); err != nil {
			writeStatus(w, r, internalError(err.Error()))
			return
		}
	}
	w.Header().Set("Content-Type", f.contentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// localWritable reports whether an update or patch is applied to the cache offline:
// kubelet's node status, pod status and node Lease, and event patches (the event
// recorder patches the count of a repeated event).
func localWritable(info *requestinfo.Info) bool {
	if isEvents(info) && info.Verb == "patch" {
		return true
	}
	if info.Component != "kubelet" {
		return false
	}
	switch {
	case info.APIGroup == "" && (info.Resource == "nodes" || info.Resource == "pods") && info.Subresource == "status":
		return true
	case info.APIGroup == "coordination.k8s.io" && info.Resource == "leases" && info.Namespace == "kube-node-lease" && info.Subresource == "":
		return true
	}
	return false
}

// serverFields are metadata fields only the server sets; a local update keeps the
// cached values.
var serverFields = []string{"uid", "creationTimestamp", "resourceVersion", "generation", "managedFields", "selfLink", "namespace", "name", "deletionTimestamp"}

// serveWrite applies kubelet's status and lease writes to the cached copy (see
// localWritable) and answers with the result; every other update or patch is
// refused with a 503 Status, never answered with an old object.
func (h *Handler) serveWrite(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	if !localWritable(info) {
		writeStatus(w, r, unavailable(info, "only kubelet's node status, pod status and node Lease are updated offline; retry when the cloud is reachable"))
		return
	}
	if info.Name == "" {
		writeStatus(w, r, badRequest("an update or patch needs an object name"))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeStatus(w, r, badRequest(err.Error()))
		return
	}
	ctx := r.Context()
	key := cachekey.Object(info)
	for attempt := 0; ; attempt++ {
		cached, err := h.st.GetObject(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			writeStatus(w, r, notFound(info, fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and %s is not in this node's cache, so the %s cannot be applied", describe(info), info.Verb)))
			return
		}
		if err != nil {
			writeStatus(w, r, storeError(info, err))
			return
		}
		orig, err := asJSON(cached)
		if err != nil {
			writeStatus(w, r, internalError(fmt.Sprintf("yurthub: cached %s: %v", describe(info), err)))
			return
		}
		result, st := h.applyWrite(r, info, orig, body, cached.ResourceVersion)
		if st != nil {
			writeStatus(w, r, st)
			return
		}
		data, err := jsonToStored(result, cached.Encoding)
		if err != nil {
			writeStatus(w, r, internalError(fmt.Sprintf("yurthub: re-encode %s: %v", describe(info), err)))
			return
		}
		o := store.Object{Namespace: cached.Namespace, Name: cached.Name, ResourceVersion: cached.ResourceVersion, Encoding: cached.Encoding, Data: data}
		err = h.st.UpdateObject(ctx, key, cached.ResourceVersion, o)
		if errors.Is(err, store.ErrStale) && attempt < 3 {
			continue // changed under us (the cloud came back meanwhile): redo on the new copy
		}
		if err != nil {
			writeStatus(w, r, storeError(info, err))
			return
		}
		h.log.Debug("applied offline", slog.String("request", info.String()))
		h.respondObject(w, r, info, store.Object{Namespace: o.Namespace, Name: o.Name, ResourceVersion: o.ResourceVersion, Encoding: store.EncodingJSON, Data: result}, http.StatusOK)
		h.afterPodStatusWrite(context.WithoutCancel(ctx), info, orig, result)
		return
	}
}

// applyWrite computes the new object (JSON) from the cached one and the request.
func (h *Handler) applyWrite(r *http.Request, info *requestinfo.Info, orig, body []byte, cachedRV uint64) ([]byte, *metav1.Status) {
	var modified []byte
	switch info.Verb {
	case "update":
		doc, err := bodyToJSON(body, r.Header.Get("Content-Type"))
		if err != nil {
			return nil, badRequest("update body: " + err.Error())
		}
		var m struct {
			Metadata struct {
				Name            string `json:"name"`
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(doc, &m); err != nil {
			return nil, badRequest("update body is not a JSON object: " + err.Error())
		}
		if m.Metadata.Name != "" && m.Metadata.Name != info.Name {
			return nil, badRequest(fmt.Sprintf("the name of the object (%s) does not match the name in the URL (%s)", m.Metadata.Name, info.Name))
		}
		// The client may hold a newer version than the cache (its last write went to
		// the cloud); an older one is a real conflict.
		if rv, err := strconv.ParseUint(m.Metadata.ResourceVersion, 10, 64); err == nil && rv < cachedRV {
			st := apierrors.NewConflict(schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}, info.Name,
				fmt.Errorf("the object has been modified; please apply your changes to the latest version (resourceVersion %d) and try again", cachedRV)).ErrStatus
			return nil, &st
		}
		modified = doc
	case "patch":
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		var err error
		switch types.PatchType(mt) {
		case types.StrategicMergePatchType:
			typed, _, terr := decodeJSONTyped(orig)
			if terr != nil {
				return nil, badRequest("strategic merge patch needs a built-in type: " + terr.Error())
			}
			modified, err = strategicpatch.StrategicMergePatch(orig, body, typed)
		case types.MergePatchType:
			modified, err = jsonpatch.MergePatch(orig, body)
		case types.JSONPatchType:
			var p jsonpatch.Patch
			if p, err = jsonpatch.DecodePatch(body); err == nil {
				modified, err = p.Apply(orig)
			}
		default:
			st := metav1.Status{Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
				Message: fmt.Sprintf("yurthub: the cloud kube-apiserver is unreachable and patch type %q cannot be applied offline (server-side apply needs the apiserver); use a strategic merge, merge or JSON patch", mt)}
			return nil, &st
		}
		if err != nil {
			st := apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "patch", schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}, info.Name,
				"yurthub: the patch cannot be applied to the cached object: "+err.Error(), 0, false).ErrStatus
			return nil, &st
		}
	}
	return mergeWrite(info, orig, modified)
}

// mergeWrite builds the stored result: for the status subresource only status
// changes (as the apiserver's status strategies do); otherwise the new object with
// the server-set metadata of the cached one. The resourceVersion stays the
// cached one: only the cloud hands out resourceVersions.
func mergeWrite(info *requestinfo.Info, orig, modified []byte) ([]byte, *metav1.Status) {
	var o, m map[string]any
	if err := json.Unmarshal(orig, &o); err != nil {
		return nil, internalError("cached object: " + err.Error())
	}
	if err := json.Unmarshal(modified, &m); err != nil {
		return nil, badRequest("new object: " + err.Error())
	}
	om, _ := o["metadata"].(map[string]any)
	mm, _ := m["metadata"].(map[string]any)
	if mm != nil && om != nil {
		if uid, _ := mm["uid"].(string); uid != "" && uid != om["uid"] {
			st := apierrors.NewConflict(schema.GroupResource{Group: info.APIGroup, Resource: info.Resource}, info.Name,
				fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %v", uid, om["uid"])).ErrStatus
			return nil, &st
		}
	}
	var out map[string]any
	if info.Subresource == "status" {
		out = o
		if s, ok := m["status"]; ok {
			out["status"] = s
		}
	} else {
		out = m
		if mm == nil {
			mm = map[string]any{}
			out["metadata"] = mm
		}
		for _, f := range serverFields {
			if v, ok := om[f]; ok {
				mm[f] = v
			} else {
				delete(mm, f)
			}
		}
		out["kind"], out["apiVersion"] = o["kind"], o["apiVersion"]
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, internalError(err.Error())
	}
	return b, nil
}

func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "-")
}
