package requestinfo

import (
	"net/http"
	"reflect"
	"testing"
)

// The resource-path table is k8s.io/apiserver's TestGetAPIRequestInfo (v0.36.3),
// so a divergence from the apiserver's rules fails here.
func TestResourceRequests(t *testing.T) {
	cases := []struct {
		method, url                                                  string
		verb, prefix, group, version, namespace, resource, sub, name string
		parts                                                        []string
	}{
		{"GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", []string{"namespaces"}},
		{"GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", []string{"namespaces", "other"}},
		{"GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo"}},
		{"HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo"}},
		{"GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", []string{"pods"}},
		{"HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", []string{"pods"}},

		// special verbs
		{"GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo"}},
		{"GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo", "subpath", "not", "a", "subresource"}},
		{"GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},

		// subresources
		{"GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo", []string{"pods", "foo", "status"}},
		{"GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo", []string{"pods", "foo", "proxy", "subpath"}},
		{"PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other", []string{"namespaces", "other", "finalize"}},
		{"PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other", []string{"namespaces", "other", "status"}},

		// verbs
		{"PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo"}},
		{"DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", []string{"pods", "foo"}},
		{"POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"OPTIONS", "/api/v1/namespaces/other/pods", "", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", []string{"nodes"}},
		{"DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", []string{"namespaces"}},
		{"DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", []string{"pods"}},
		{"DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other", "pods", "", "", []string{"pods"}},

		// groups and versions
		{"POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "", []string{"pods"}},
		{"POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other", "pods", "", "", []string{"pods"}},
		{"GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=true&sendInitialEvents=true&allowWatchBookmarks=true", "watch", "apis", "discovery.k8s.io", "v1", "default", "endpointslices", "", "", []string{"endpointslices"}},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node1", "get", "apis", "coordination.k8s.io", "v1", "kube-node-lease", "leases", "", "node1", []string{"leases", "node1"}},
		{"POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", "create", "apis", "certificates.k8s.io", "v1", "", "certificatesigningrequests", "", "", []string{"certificatesigningrequests"}},
		{"GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dnode1", "list", "api", "", "v1", "", "nodes", "", "node1", []string{"nodes"}},
		{"GET", "/api/v1/namespaces/ns/pods/p/exec?command=ls", "get", "api", "", "v1", "ns", "pods", "exec", "p", []string{"pods", "p", "exec"}},
	}
	p := New()
	for _, c := range cases {
		r, err := http.NewRequest(c.method, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.Parse(r)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.url, err)
			continue
		}
		got := []string{info.Verb, info.APIPrefix, info.APIGroup, info.APIVersion, info.Namespace, info.Resource, info.Subresource, info.Name}
		want := []string{c.verb, c.prefix, c.group, c.version, c.namespace, c.resource, c.sub, c.name}
		if !info.IsResourceRequest || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(info.Parts, c.parts) {
			t.Errorf("%s %s:\n got  resource=%v %q parts=%q\n want %q parts=%q", c.method, c.url, info.IsResourceRequest, got, info.Parts, want, c.parts)
		}
	}
}

func TestNonResourceRequests(t *testing.T) {
	for _, u := range []string{
		"/", "/api/version/", "/apis/group/version/", "/badprefix/version/resource",
		"/apis/version/resource", "/not-api/version/resource", "/apis/extensions/v1beta1",
		"/api/version", "/api", "", "/version", "/apis", "/api/v1", "/healthz", "/openapi/v2",
	} {
		r, _ := http.NewRequest("GET", "http://h"+u, nil)
		info, err := New().Parse(r)
		if err != nil {
			t.Errorf("%q: %v", u, err)
		}
		if info.IsResourceRequest || info.Verb != "get" {
			t.Errorf("%q: want non-resource get, got resource=%v verb=%q", u, info.IsResourceRequest, info.Verb)
		}
	}
	for _, u := range []string{"/api/version/resource", "/apis/group/version/resource/name/subresource", "/apis/batch/v1/job/foo/scale"} {
		r, _ := http.NewRequest("GET", u, nil)
		if info, _ := New().Parse(r); !info.IsResourceRequest {
			t.Errorf("%q: want a resource request", u)
		}
	}
}

func TestWatchPrefixWithoutResource(t *testing.T) {
	r, _ := http.NewRequest("GET", "/api/v1/watch", nil)
	// "/api/v1/watch" has only 3 segments and "watch" is then the resource's spot:
	// fewer than 2 parts after the special verb is the apiserver's one error.
	info, err := New().Parse(r)
	if info == nil {
		t.Fatal("Parse must always return an Info")
	}
	if err == nil {
		t.Errorf("want an error for %s, got %+v", r.URL, info)
	}
}

// Table from k8s.io/apiserver's TestSelectorParsing (v0.36.3).
func TestSelectors(t *testing.T) {
	cases := []struct{ method, url, name, verb, field, label string }{
		{"GET", "/apis/group/version/resource", "", "list", "", ""},
		{"GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list", "metadata.name=name1", ""},
		{"GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch", "metadata.name=name1", ""},
		{"GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "list", "foo=bar", "baz=qux"},
		{"GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list", "metadata.name=name1,foo", ""},
		{"GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch", "metadata.name=name1,foo", ""},
		{"GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list", "metadata.name=name1,foo", ""},
		{"DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "deletecollection", "foo=bar", "baz=qux"},
		{"GET", "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz", "foo", "list", "metadata.name=foo", "foo=bar"},
		{"GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar", "name", "get", "", ""},
		{"GET", "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "", "watch", "", ""},
		{"GET", "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "name", "watch", "", ""},
		// kubelet's pod informer
		{"GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode1&limit=500&resourceVersion=0", "", "list", "spec.nodeName=node1", ""},
		// an invalid name in metadata.name is not taken as the name
		{"GET", "/api/v1/pods?fieldSelector=metadata.name%3Da%2Fb", "", "list", "metadata.name=a/b", ""},
		// a bad timeoutSeconds makes DecodeParameters fail: still a list
		{"GET", "/api/v1/pods?timeoutSeconds=abc", "", "list", "", ""},
		{"GET", "/api/v1/pods?timeoutSeconds=abc&watch=yes", "", "watch", "", ""},
	}
	for _, c := range cases {
		r, _ := http.NewRequest(c.method, c.url, nil)
		info, err := New().Parse(r)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if info.Name != c.name || info.Verb != c.verb || info.FieldSelector != c.field || info.LabelSelector != c.label {
			t.Errorf("%s %s: got name=%q verb=%q field=%q label=%q, want %q %q %q %q",
				c.method, c.url, info.Name, info.Verb, info.FieldSelector, info.LabelSelector, c.name, c.verb, c.field, c.label)
		}
	}
}

func TestWatchParameters(t *testing.T) {
	r, _ := http.NewRequest("GET", "/api/v1/namespaces/kube-system/configmaps?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=417&watch=true&resourceVersion=12", nil)
	info, _ := New().Parse(r)
	if !info.Watch || !info.SendInitialEvents || !info.AllowWatchBookmarks || info.TimeoutSeconds != 417 || info.ResourceVersion != "12" || !info.LongRunning {
		t.Errorf("got %+v", info)
	}
	r, _ = http.NewRequest("GET", "/api/v1/pods?sendInitialEvents=false", nil)
	info, _ = New().Parse(r)
	if info.Watch || info.SendInitialEvents || info.LongRunning {
		t.Errorf("got %+v", info)
	}
}

func TestLongRunning(t *testing.T) {
	cases := map[string]bool{
		"GET /api/v1/pods?watch=true":                    true,
		"GET /api/v1/watch/pods":                         true,
		"GET /api/v1/namespaces/a/pods/b/log?follow=1":   true,
		"POST /api/v1/namespaces/a/pods/b/exec":          true,
		"POST /api/v1/namespaces/a/pods/b/attach":        true,
		"POST /api/v1/namespaces/a/pods/b/portforward":   true,
		"GET /api/v1/namespaces/a/services/b/proxy/x":    true,
		"GET /api/v1/proxy/namespaces/a/services/b":      true,
		"GET /debug/pprof/profile":                       true,
		"GET /api/v1/pods":                               false,
		"GET /api/v1/namespaces/a/pods/b/status":         false,
		"GET /version":                                   false,
		"PUT /apis/coordination.k8s.io/v1/leases/x/exec": true,
	}
	for req, want := range cases {
		var method, u string
		for i := range req {
			if req[i] == ' ' {
				method, u = req[:i], req[i+1:]
				break
			}
		}
		r, _ := http.NewRequest(method, u, nil)
		info, _ := New().Parse(r)
		if info.LongRunning != want {
			t.Errorf("%s: long-running=%v, want %v (verb=%q sub=%q)", req, info.LongRunning, want, info.Verb, info.Subresource)
		}
	}
}

func TestComponent(t *testing.T) {
	cases := map[string]string{
		"kubelet/v1.36.3 (linux/amd64) kubernetes/abcdef": "kubelet",
		"Kube-Proxy/v1.36.3":                              "kube-proxy",
		"coredns":                                         "coredns",
		"":                                                "",
		"Go-http-client/1.1":                              "go-http-client",
	}
	for ua, want := range cases {
		r, _ := http.NewRequest("GET", "/api/v1/pods", nil)
		r.Header.Set("User-Agent", ua)
		info, _ := New().Parse(r)
		if info.Component != want {
			t.Errorf("%q: component %q, want %q", ua, info.Component, want)
		}
	}
}

func TestContext(t *testing.T) {
	r, _ := http.NewRequest("GET", "/api/v1/pods", nil)
	if From(r.Context()) != nil {
		t.Fatal("empty context must give nil")
	}
	info, _ := New().Parse(r)
	if got := From(WithInfo(r.Context(), info)); got != info {
		t.Fatalf("From(WithInfo) = %p, want %p", got, info)
	}
}
