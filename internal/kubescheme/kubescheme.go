// Package kubescheme is the scheme of built-in Kubernetes types the hub converts
// offline (protobuf <-> JSON, field selectors, strategic merge patches, watch
// bookmarks, hubctl dump).
//
// It registers every group version kube-apiserver v1.36 can serve (each one it
// lists in discovery with --runtime-config=api/all=true and all feature gates on:
// GA, beta and alpha), not client-go's whole kubernetes/scheme. That one also has
// the 18 versions Kubernetes has stopped serving (extensions/v1beta1,
// apps/v1beta1 and v1beta2, flowcontrol v1beta1-3, policy, batch, discovery,
// events, node, rbac, authorization, authentication, scheduling and storage
// betas/alphas removed in 1.16-1.32): linking their Go types cost 3.3 MiB of the
// stripped binary. Only an apiserver older than those removals serves them. An
// object of a group version not here is still proxied and cached as any other;
// offline it is handled like a custom resource: served when cached as JSON, and
// when cached as protobuf only by a GET that accepts protobuf (its bytes as they
// are: there is no Go type to convert it or to match field selectors with).
// TestServedVersionsRegistered (with the test apiserver) fails when a newer
// Kubernetes serves a version missing here.
package kubescheme

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	admissionregistrationv1alpha1 "k8s.io/api/admissionregistration/v1alpha1"
	admissionregistrationv1beta1 "k8s.io/api/admissionregistration/v1beta1"
	internalv1alpha1 "k8s.io/api/apiserverinternal/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	certificatesv1alpha1 "k8s.io/api/certificates/v1alpha1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	coordinationv1alpha2 "k8s.io/api/coordination/v1alpha2"
	coordinationv1beta1 "k8s.io/api/coordination/v1beta1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	networkingv1beta1 "k8s.io/api/networking/v1beta1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	resourcev1alpha3 "k8s.io/api/resource/v1alpha3"
	resourcev1beta1 "k8s.io/api/resource/v1beta1"
	resourcev1beta2 "k8s.io/api/resource/v1beta2"
	schedulingv1 "k8s.io/api/scheduling/v1"
	schedulingv1alpha2 "k8s.io/api/scheduling/v1alpha2"
	storagev1 "k8s.io/api/storage/v1"
	storagev1beta1 "k8s.io/api/storage/v1beta1"
	storagemigrationv1beta1 "k8s.io/api/storagemigration/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/rest"
)

// Scheme has the types of the group versions above plus metav1's unversioned types
// (Status, WatchEvent, list options), as client-go's scheme does.
var Scheme = runtime.NewScheme()

func init() {
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	b := runtime.SchemeBuilder{
		admissionregistrationv1.AddToScheme, admissionregistrationv1alpha1.AddToScheme, admissionregistrationv1beta1.AddToScheme,
		internalv1alpha1.AddToScheme, appsv1.AddToScheme, authenticationv1.AddToScheme, authorizationv1.AddToScheme,
		autoscalingv1.AddToScheme, autoscalingv2.AddToScheme, batchv1.AddToScheme,
		certificatesv1.AddToScheme, certificatesv1alpha1.AddToScheme, certificatesv1beta1.AddToScheme,
		coordinationv1.AddToScheme, coordinationv1alpha2.AddToScheme, coordinationv1beta1.AddToScheme,
		corev1.AddToScheme, discoveryv1.AddToScheme, eventsv1.AddToScheme, flowcontrolv1.AddToScheme,
		networkingv1.AddToScheme, networkingv1beta1.AddToScheme, nodev1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
		resourcev1.AddToScheme, resourcev1alpha3.AddToScheme, resourcev1beta1.AddToScheme, resourcev1beta2.AddToScheme,
		schedulingv1.AddToScheme, schedulingv1alpha2.AddToScheme, storagev1.AddToScheme, storagev1beta1.AddToScheme,
		storagemigrationv1beta1.AddToScheme,
	}
	if err := b.AddToScheme(Scheme); err != nil {
		panic(err)
	}
}

// Codecs serializes the types of Scheme (JSON, YAML, protobuf).
var Codecs = serializer.NewCodecFactory(Scheme)

// Protobuf encodes and decodes the types of Scheme in the Kubernetes protobuf
// envelope (the offline path's conversions, hubctl dump).
var Protobuf = protobuf.NewSerializer(Scheme, Scheme)

// NewRESTClient is a REST client for group version gv over cfg (cfg is copied, not
// changed), set up as client-go's typed client for that group is (API path, the
// scheme's codecs without conversion, client-go's default User-Agent when cfg has
// none). The hub uses it for the two typed calls it makes itself (its node Lease and
// the yurt-hub-cfg ConfigMap) instead of client-go's clientset, which would link
// every API group's clients, informers and apply configurations into the binary.
func NewRESTClient(cfg *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	cfg.NegotiatedSerializer = Codecs.WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(cfg)
}
