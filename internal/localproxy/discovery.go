package localproxy

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

func isDiscoveryPath(path string) bool { return cachekey.IsDiscovery(path) }

// serveDiscovery answers /version, /api, /apis and /apis/<g>/<v> from the cached
// responses: the form the Accept header asks for first (aggregated discovery,
// as=APIGroupDiscoveryList, is cached apart from the legacy form), from the
// requesting component's cache, else from another component's (discovery is the
// same for every client).
func (h *Handler) serveDiscovery(w http.ResponseWriter, r *http.Request, info *requestinfo.Info) {
	path := "/" + strings.Trim(info.Path, "/")
	var keys []string
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["as"] != "" {
			keys = append(keys, cachekey.Raw(path, part))
			continue
		}
		if mt == mediaJSON || mt == "*/*" || mt == "application/*" || mt == mediaProtobuf {
			keys = append(keys, path)
		}
	}
	if len(keys) == 0 {
		keys = []string{path}
	}
	var damaged error
	for _, c := range h.discoveryComponents(info.Component) {
		for _, k := range keys {
			ct, body, err := h.st.GetRaw(r.Context(), c, k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if errors.Is(err, store.ErrDamaged) {
				damaged = err // another component's copy may be intact
				continue
			}
			if err != nil {
				writeStatus(w, r, storeError(info, err))
				return
			}
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = w.Write(body)
			}
			return
		}
	}
	if damaged != nil {
		writeStatus(w, r, storeError(info, damaged))
		return
	}
	writeStatus(w, r, unavailable(info, path+" (in the form asked for) was never read into this node's cache"))
}
