package kubescheme

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/yurthub/yurthub/internal/testkube"
)

// removed are the group versions of client-go's scheme that Kubernetes no longer
// serves (left out of Scheme on purpose, see the package doc).
var removed = map[string]bool{
	"apps/v1beta1": true, "apps/v1beta2": true, "extensions/v1beta1": true,
	"authentication.k8s.io/v1alpha1": true, "authentication.k8s.io/v1beta1": true,
	"authorization.k8s.io/v1beta1": true, "batch/v1beta1": true,
	"discovery.k8s.io/v1beta1": true, "events.k8s.io/v1beta1": true,
	"flowcontrol.apiserver.k8s.io/v1beta1": true, "flowcontrol.apiserver.k8s.io/v1beta2": true,
	"flowcontrol.apiserver.k8s.io/v1beta3": true, "node.k8s.io/v1alpha1": true, "node.k8s.io/v1beta1": true,
	"policy/v1beta1": true, "rbac.authorization.k8s.io/v1alpha1": true, "rbac.authorization.k8s.io/v1beta1": true,
	"scheduling.k8s.io/v1beta1": true, "storage.k8s.io/v1alpha1": true,
}

// TestSameTypesAsClientGo: every kind Scheme knows is client-go's, with the same Go
// type, and client-go's kinds are all here except those of the removed versions.
func TestSameTypesAsClientGo(t *testing.T) {
	ours := Scheme.AllKnownTypes()
	theirs := clientgoscheme.Scheme.AllKnownTypes()
	for gvk, typ := range ours {
		if ct, ok := theirs[gvk]; !ok || ct != typ {
			t.Errorf("%s: %v here, %v in client-go's scheme", gvk, typ, ct)
		}
	}
	missing := map[string]bool{}
	for gvk, typ := range theirs {
		if _, ok := ours[gvk]; ok {
			continue
		}
		if gvk.Version == runtime.APIVersionInternal && !Scheme.IsGroupRegistered(gvk.Group) {
			continue // extensions/__internal WatchEvent: the group has no version left
		}
		if !removed[gvk.GroupVersion().String()] {
			t.Errorf("%s (%v) is missing", gvk, typ)
		}
		missing[gvk.GroupVersion().String()] = true
	}
	for gv := range removed {
		if !missing[gv] {
			t.Errorf("%s is in the removed list but registered", gv)
		}
	}
	// Status decodes from "v1" as the REST clients and watch decoders expect.
	if typ := ours[schema.GroupVersionKind{Version: "v1", Kind: "Status"}]; typ != reflect.TypeFor[metav1.Status]() {
		t.Errorf("v1 Status: %v", typ)
	}
}

// TestServedVersionsRegistered asks the test apiserver, with every API and feature
// gate on, which built-in group versions it serves: each must be in Scheme (else a
// Kubernetes upgrade added one, and offline protobuf for it would be lost).
func TestServedVersionsRegistered(t *testing.T) {
	c := testkube.Start(t, testkube.Options{APIServerArgs: []string{"--runtime-config=api/all=true", "--feature-gates=AllAlpha=true,AllBeta=true"}})
	groups, err := discovery.NewDiscoveryClientForConfigOrDie(c.AdminConfig()).ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[schema.GroupVersion]bool{}
	for _, gv := range Scheme.PrioritizedVersionsAllGroups() {
		registered[gv] = true
	}
	n := 0
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			gv := schema.GroupVersion{Group: g.Name, Version: v.Version}
			// Not built-in types of client-go's scheme: CRDs and aggregated APIs are
			// served as custom resources.
			if gv.Group == "apiextensions.k8s.io" || gv.Group == "apiregistration.k8s.io" {
				continue
			}
			n++
			if !registered[gv] {
				t.Errorf("the apiserver serves %s, which Scheme does not register", gv)
			}
		}
	}
	if n != len(registered) {
		t.Errorf("the apiserver serves %d built-in group versions, Scheme registers %d", n, len(registered))
	}
}
