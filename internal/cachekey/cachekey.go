// Package cachekey derives the cache's keys from a request: the naming contract
// between the online path (internal/cachemgr, which writes the cache) and the
// offline path (internal/localproxy, which serves from it). Both must derive the
// same store keys from the same request, so the functions live here, below both.
package cachekey

import (
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Resource is the store resource of a resource request. A status subresource is
// cached as the object itself (a GET of pods/x/status returns the whole Pod).
func Resource(info *requestinfo.Info) store.Resource {
	return store.Resource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
}

// Object is the key of the object a get request names.
func Object(info *requestinfo.Info) store.ObjectKey {
	return store.ObjectKey{Component: info.Component, Resource: Resource(info), Namespace: info.Namespace, Name: info.Name}
}

// List is the list view a list or watch request reads or writes.
// A list with fieldSelector metadata.name=x (info.Name set by the apiserver's
// rules) is still a list view with that selector.
func List(info *requestinfo.Info) store.ListKey {
	return store.ListKey{
		Component: info.Component,
		Resource:  Resource(info),
		Namespace: info.Namespace,
		Selector:  Selector(info.LabelSelector, info.FieldSelector),
	}
}

// Selector is the store's selector string for a label and a field
// selector: "" when both are empty; otherwise "labelSelector=<l>&fieldSelector=<f>"
// (URL query encoding, empty parts left out) with each selector in canonical form
// (requirements sorted), so "b=2,a=1" and "a=1,b=2" name the same view. A selector
// that does not parse is kept as given (the apiserver would have refused the request
// anyway, so such a view is never written).
func Selector(labelSelector, fieldSelector string) string {
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
		if terms, ok := FieldTerms(s); ok {
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

// Raw is the store path of a discovery response: the URL path, plus
// "?as=<Kind>;g=<group>;v=<version>" when the response is a transformed form such
// as aggregated discovery (application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList),
// because one path answers both the legacy and the aggregated form depending on
// the client's Accept header. The path is normalized to one leading and no trailing
// slash. Only JSON discovery responses are cached.
func Raw(path, contentType string) string {
	path = "/" + strings.Trim(path, "/")
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["as"] == "" {
		return path
	}
	return path + "?as=" + params["as"] + ";g=" + params["g"] + ";v=" + params["v"]
}

// IsDiscovery reports whether path is one of the cached discovery responses:
// /version, /api, /api/<v>, /apis, /apis/<g>, /apis/<g>/<v>.
func IsDiscovery(path string) bool {
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

// FieldTerms is a field selector's requirements, each in the form a selector
// string holds it ("f=v" or "f!=v", the value escaped), in the selector's
// order; ok is false when it does not parse. Selector joins them sorted; the
// offline path builds the wider views a request can be served from out of them.
func FieldTerms(fieldSelector string) (terms []string, ok bool) {
	sel, err := fields.ParseSelector(fieldSelector)
	if err != nil {
		return nil, false
	}
	for _, r := range sel.Requirements() {
		op := "="
		if r.Operator == selection.NotEquals {
			op = "!="
		}
		terms = append(terms, r.Field+op+fields.EscapeValue(r.Value))
	}
	return terms, true
}

// ParseSelectors parses a request's label and field selectors as the apiserver
// does; an empty one (or one that selects everything) is nil. The offline path
// and the multiplexer match objects with them.
func ParseSelectors(labelSelector, fieldSelector string) (labels.Selector, fields.Selector, error) {
	var ls labels.Selector
	var fs fields.Selector
	if v := strings.TrimSpace(labelSelector); v != "" {
		sel, err := labels.Parse(v)
		if err != nil {
			return nil, nil, fmt.Errorf("labelSelector %q: %w", labelSelector, err)
		}
		if !sel.Empty() {
			ls = sel
		}
	}
	if v := strings.TrimSpace(fieldSelector); v != "" {
		sel, err := fields.ParseSelector(v)
		if err != nil {
			return nil, nil, fmt.Errorf("fieldSelector %q: %w", fieldSelector, err)
		}
		if !sel.Empty() {
			fs = sel
		}
	}
	return ls, fs, nil
}
