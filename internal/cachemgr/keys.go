package cachemgr

import (
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// The functions in this file are the naming contract between the online path
// (which writes the cache) and the offline path (which serves from it): both must
// derive the same keys from the same request.

// ResourceOf is the store resource of a resource request. A status subresource is
// cached as the object itself (a GET of pods/x/status returns the whole Pod).
func ResourceOf(info *requestinfo.Info) store.Resource {
	return store.Resource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
}

// ObjectKeyFor is the key of the object a get request names.
func ObjectKeyFor(info *requestinfo.Info) store.ObjectKey {
	return store.ObjectKey{Component: info.Component, Resource: ResourceOf(info), Namespace: info.Namespace, Name: info.Name}
}

// ListKeyFor is the list view a list or watch request reads or writes.
// A list with fieldSelector metadata.name=x (info.Name set by the apiserver's
// rules) is still a list view with that selector.
func ListKeyFor(info *requestinfo.Info) store.ListKey {
	return store.ListKey{
		Component: info.Component,
		Resource:  ResourceOf(info),
		Namespace: info.Namespace,
		Selector:  CanonicalSelector(info.LabelSelector, info.FieldSelector),
	}
}

// CanonicalSelector is the store's selector string for a label and a field
// selector: "" when both are empty; otherwise "labelSelector=<l>&fieldSelector=<f>"
// (URL query encoding, empty parts left out) with each selector in canonical form
// (requirements sorted), so "b=2,a=1" and "a=1,b=2" name the same view. A selector
// that does not parse is kept as given (the apiserver would have refused the request
// anyway, so such a view is never written).
func CanonicalSelector(labelSelector, fieldSelector string) string {
	v := url.Values{}
	if s := strings.TrimSpace(labelSelector); s != "" {
		if sel, err := labels.Parse(s); err == nil {
			s = sel.String()
		}
		if s != "" {
			v.Set("labelSelector", s)
		}
	}
	if s := strings.TrimSpace(fieldSelector); s != "" {
		if sel, err := fields.ParseSelector(s); err == nil {
			reqs := sel.Requirements()
			terms := make([]string, 0, len(reqs))
			for _, r := range reqs {
				op := "="
				if r.Operator == "!=" {
					op = "!="
				}
				terms = append(terms, r.Field+op+fields.EscapeValue(r.Value))
			}
			sort.Strings(terms)
			s = strings.Join(terms, ",")
		}
		if s != "" {
			v.Set("fieldSelector", s)
		}
	}
	// url.Values.Encode sorts keys: fieldSelector before labelSelector.
	return v.Encode()
}

// RawKey is the store path of a discovery response: the URL path, plus
// "?as=<Kind>;g=<group>;v=<version>" when the response is a transformed form such
// as aggregated discovery (application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList),
// because one path answers both the legacy and the aggregated form depending on
// the client's Accept header. The path is normalized to one leading and no trailing
// slash. Only JSON discovery responses are cached.
func RawKey(path, contentType string) string {
	path = "/" + strings.Trim(path, "/")
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["as"] == "" {
		return path
	}
	return path + "?as=" + params["as"] + ";g=" + params["g"] + ";v=" + params["v"]
}

// IsDiscoveryPath reports whether path is one of the cached discovery responses:
// /version, /api, /api/<v>, /apis, /apis/<g>, /apis/<g>/<v>.
func IsDiscoveryPath(path string) bool {
	p := strings.Split(strings.Trim(path, "/"), "/")
	switch p[0] {
	case "version":
		return len(p) == 1
	case "api":
		return len(p) <= 2
	case "apis":
		return len(p) <= 3
	}
	return false
}

// transformed reports whether a response is not the plain object form (Table,
// PartialObjectMetadata, ...): those are never cached as objects.
func transformed(h http.Header) bool {
	_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && params["as"] != ""
}
