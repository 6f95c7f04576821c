// Package requestinfo classifies an HTTP request to the Kubernetes API the way the
// kube-apiserver does (k8s.io/apiserver pkg/endpoints/request RequestInfoFactory with
// APIPrefixes {api, apis} and GrouplessAPIPrefixes {api}), reimplemented here because
// k8s.io/apiserver is not a dependency of this project. On top of the apiserver's
// fields it records what the hub needs: the calling component (from the User-Agent),
// whether the request is long-running (as the kube-apiserver counts it for
// --max-requests-in-flight), and the list options a cache needs (watch,
// sendInitialEvents, timeoutSeconds, resourceVersion).
//
// Rules, in order (same as the apiserver):
//   - A path with fewer than 3 segments, or not under /api or /apis, is a
//     non-resource request; Verb is the lowercased HTTP method.
//   - /apis/<group>/<version>/... needs at least 3 segments after "apis"; otherwise
//     (/apis/<group>/<version> discovery) it is a non-resource request.
//   - /api/<version>/... is the core group.
//   - A leading "watch" or "proxy" segment after the version is the verb (deprecated
//     path form); otherwise the verb comes from the method: POST create, GET/HEAD get,
//     PUT update, PATCH patch, DELETE delete, anything else "".
//   - namespaces/<ns>/<rest> sets Namespace and drops those two segments, except
//     namespaces/<ns>/status and namespaces/<ns>/finalize (subresources of the namespace).
//   - Parts are <resource>[/<name>[/<subresource>...]]; the proxy verb has no subresource.
//   - A get without a name is a list, or a watch when ?watch is true; a
//     fieldSelector metadata.name=<x> then supplies the name.
//   - A delete without a name is a deletecollection.
//   - For list, watch and deletecollection (not via the path prefix) the raw
//     labelSelector and fieldSelector parameters are recorded
//     (the AuthorizeWithSelectors behaviour, on by default since 1.32).
package requestinfo

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Info is what the hub knows about one request.
type Info struct {
	// IsResourceRequest is false for /version, /healthz, discovery roots, etc.
	IsResourceRequest bool
	// Path is the URL path, unchanged.
	Path string
	// Verb is the Kubernetes verb (get, list, watch, create, update, patch, delete,
	// deletecollection, proxy) for resource requests, the lowercased HTTP method otherwise.
	Verb string

	APIPrefix   string // "api" or "apis"
	APIGroup    string // "" for the core group
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// Parts are the path segments from the resource on (after namespaces/<ns>).
	Parts []string

	// LabelSelector and FieldSelector are the raw query parameters, recorded for
	// list, watch and deletecollection.
	LabelSelector string
	FieldSelector string

	// Watch is true for watch requests (?watch=true or the /watch/ path prefix).
	Watch bool
	// SendInitialEvents is the watch-list parameter (?sendInitialEvents=true).
	SendInitialEvents bool
	// AllowWatchBookmarks is ?allowWatchBookmarks=true.
	AllowWatchBookmarks bool
	// TimeoutSeconds is ?timeoutSeconds (0 when absent).
	TimeoutSeconds int64
	// ResourceVersion is ?resourceVersion, raw.
	ResourceVersion string

	// Component is the User-Agent lowercased and cut at the first "/"
	// ("kubelet/v1.36.3 (linux/amd64) kubernetes/abc" => "kubelet").
	Component string
	// LongRunning is the kube-apiserver's long-running check: verbs watch and proxy,
	// subresources attach, exec, proxy, log, portforward, and /debug/pprof/.
	LongRunning bool
}

// IsList reports whether the request lists a collection (verb list).
func (i *Info) IsList() bool { return i.IsResourceRequest && i.Verb == "list" }

// String is a short description for logs.
func (i *Info) String() string {
	if !i.IsResourceRequest {
		return i.Verb + " " + i.Path
	}
	s := i.Verb + " " + i.Resource
	if i.APIGroup != "" {
		s += "." + i.APIGroup
	}
	if i.Subresource != "" {
		s += "/" + i.Subresource
	}
	if i.Namespace != "" {
		s += " ns=" + i.Namespace
	}
	if i.Name != "" {
		s += " name=" + i.Name
	}
	return s
}

var (
	apiPrefixes           = map[string]bool{"api": true, "apis": true}
	grouplessAPIPrefixes  = map[string]bool{"api": true}
	specialVerbs          = map[string]bool{"proxy": true, "watch": true}
	specialVerbsNoSubres  = map[string]bool{"proxy": true}
	namespaceSubresources = map[string]bool{"status": true, "finalize": true}
	verbsWithSelectors    = map[string]bool{"list": true, "watch": true, "deletecollection": true}
	longRunningVerbs      = map[string]bool{"watch": true, "proxy": true}
	longRunningSubres     = map[string]bool{"attach": true, "exec": true, "proxy": true, "log": true, "portforward": true}
)

// Parser classifies requests. It holds no state; one is shared by all requests.
type Parser struct{}

// New returns a Parser.
func New() *Parser { return &Parser{} }

// Parse classifies r. The only error is the apiserver's own: a /watch/ or /proxy/
// path prefix with nothing after it. Info is always returned (non-nil) so the caller
// can still log and proxy the request.
func (p *Parser) Parse(r *http.Request) (*Info, error) {
	info := &Info{
		Path:      r.URL.Path,
		Verb:      strings.ToLower(r.Method),
		Component: ComponentFromUserAgent(r.UserAgent()),
	}
	err := parse(r, info)
	info.LongRunning = longRunningVerbs[info.Verb] ||
		(info.IsResourceRequest && longRunningSubres[info.Subresource]) ||
		(!info.IsResourceRequest && strings.HasPrefix(info.Path, "/debug/pprof/"))
	return info, err
}

func parse(r *http.Request, info *Info) error {
	parts := splitPath(r.URL.Path)
	if len(parts) < 3 || !apiPrefixes[parts[0]] {
		return nil
	}
	info.APIPrefix = parts[0]
	parts = parts[1:]
	if !grouplessAPIPrefixes[info.APIPrefix] {
		if len(parts) < 3 {
			return nil
		}
		info.APIGroup = parts[0]
		parts = parts[1:]
	}
	info.IsResourceRequest = true
	info.APIVersion = parts[0]
	parts = parts[1:]

	verbViaPathPrefix := false
	if specialVerbs[parts[0]] {
		if len(parts) < 2 {
			return fmt.Errorf("unable to determine kind and namespace from url %q: %q must be followed by a resource", r.URL.String(), parts[0])
		}
		info.Verb = parts[0]
		parts = parts[1:]
		verbViaPathPrefix = true
	} else {
		switch r.Method {
		case http.MethodPost:
			info.Verb = "create"
		case http.MethodGet, http.MethodHead:
			info.Verb = "get"
		case http.MethodPut:
			info.Verb = "update"
		case http.MethodPatch:
			info.Verb = "patch"
		case http.MethodDelete:
			info.Verb = "delete"
		default:
			info.Verb = ""
		}
	}

	if parts[0] == "namespaces" {
		if len(parts) > 1 {
			info.Namespace = parts[1]
			if len(parts) > 2 && !namespaceSubresources[parts[2]] {
				parts = parts[2:]
			}
		}
	}
	info.Parts = parts

	switch {
	case len(parts) >= 3 && !specialVerbsNoSubres[info.Verb]:
		info.Subresource = parts[2]
		fallthrough
	case len(parts) >= 2:
		info.Name = parts[1]
		fallthrough
	case len(parts) >= 1:
		info.Resource = parts[0]
	}

	q := r.URL.Query()
	if info.Name == "" && info.Verb == "get" {
		opts := metainternalversion.ListOptions{}
		if err := metainternalversionscheme.ParameterCodec.DecodeParameters(q, metav1.SchemeGroupVersion, &opts); err != nil {
			// Like the apiserver: a bad parameter makes it a list, unless watch is set.
			opts = metainternalversion.ListOptions{}
			if values := q["watch"]; len(values) > 0 {
				switch strings.ToLower(values[0]) {
				case "false", "0":
				default:
					opts.Watch = true
				}
			}
		}
		if opts.Watch {
			info.Verb = "watch"
		} else {
			info.Verb = "list"
		}
		if opts.FieldSelector != nil {
			if name, ok := opts.FieldSelector.RequiresExactMatch("metadata.name"); ok {
				if len(content.IsPathSegmentName(name)) == 0 {
					info.Name = name
				}
			}
		}
	}
	if info.Name == "" && info.Verb == "delete" {
		info.Verb = "deletecollection"
	}
	if !verbViaPathPrefix && verbsWithSelectors[info.Verb] {
		if vals := q["fieldSelector"]; len(vals) > 0 {
			info.FieldSelector = vals[0]
		}
		if vals := q["labelSelector"]; len(vals) > 0 {
			info.LabelSelector = vals[0]
		}
	}
	info.Watch = info.Verb == "watch"
	info.SendInitialEvents = boolParam(q, "sendInitialEvents")
	info.AllowWatchBookmarks = boolParam(q, "allowWatchBookmarks")
	if vals := q["timeoutSeconds"]; len(vals) > 0 {
		if n, err := strconv.ParseInt(vals[0], 10, 64); err == nil {
			info.TimeoutSeconds = n
		}
	}
	if vals := q["resourceVersion"]; len(vals) > 0 {
		info.ResourceVersion = vals[0]
	}
	return nil
}

// boolParam reads a query flag the way apimachinery converts []string to bool:
// absent is false; "false", "0" (any case) are false; anything else is true.
func boolParam(q map[string][]string, name string) bool {
	vals := q[name]
	if len(vals) == 0 {
		return false
	}
	switch strings.ToLower(vals[0]) {
	case "false", "0":
		return false
	}
	return true
}

// ComponentFromUserAgent lowercases ua and cuts it at the first "/" (OpenYurt's rule).
func ComponentFromUserAgent(ua string) string {
	ua = strings.ToLower(ua)
	if i := strings.IndexByte(ua, '/'); i >= 0 {
		ua = ua[:i]
	}
	return strings.TrimSpace(ua)
}

func splitPath(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return []string{}
	}
	return strings.Split(path, "/")
}

type ctxKey struct{}

// WithInfo returns a context carrying info.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the Info stored by WithInfo, or nil.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

type bodyKey struct{}

// IsTokenRequest reports whether info is a service-account TokenRequest (create
// serviceaccounts/<name>/token), the one request whose body the proxy keeps (see
// WithBody): the apiserver fills in defaults (its audiences) in the answer, so the
// hub must know what was asked to answer the same question offline.
func IsTokenRequest(info *Info) bool {
	return info != nil && info.IsResourceRequest && info.Verb == "create" && info.APIGroup == "" &&
		info.Resource == "serviceaccounts" && info.Subresource == "token"
}

// WithBody returns ctx carrying a copy of the request body the proxy read before
// forwarding it (only small bodies, only where IsTokenRequest).
func WithBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, bodyKey{}, body)
}

// BodyFrom returns the body stored by WithBody, or nil.
func BodyFrom(ctx context.Context) []byte {
	b, _ := ctx.Value(bodyKey{}).([]byte)
	return b
}

// WatchTimeout is how long a watch the hub serves itself lasts (offline, and the
// multiplexer's), by the apiserver's rule: the
// request's timeoutSeconds as given (a negative one ends the watch at once, not
// capped: neither the apiserver nor OpenYurt's local proxy caps it, and client-go's
// reflectors ask for 5 to 10 minutes); without it (or 0) a random duration in
// [minRequestTimeout, 2*minRequestTimeout). The randomness matters most offline:
// every component on the node lost the cloud at the same moment and started its
// local watches together; with one fixed timeout they would all expire, and relist
// from the cache, together again and again.
func WatchTimeout(timeoutSeconds int64, minRequestTimeout time.Duration, random func() float64) time.Duration {
	if timeoutSeconds < 0 {
		return 0
	}
	if timeoutSeconds > 0 {
		return time.Duration(timeoutSeconds) * time.Second
	}
	return time.Duration(float64(minRequestTimeout) * (1 + random()))
}
