package requestinfo

import (
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateQuery checks the query parameters of a get, list or watch the way
// kube-apiserver v1.36 does, with the same decoding and validation (apimachinery's
// parameter codec and ValidateListOptions) and the same answers, so that a request
// the apiserver refuses is refused by the hub too, whether it would be proxied or
// answered from the cache. nil when the request is acceptable (or not a read).
//
//	limit=abc, timeoutSeconds=abc, a bad selector    400 BadRequest (decoding)
//	resourceVersionMatch / sendInitialEvents misuse  422 Invalid (ListOptions)
//	list resourceVersion=abc                         400 BadRequest
//	get or watch resourceVersion=abc                 500 (the apiserver's storage answer)
//
// The WatchList feature is taken as enabled, the apiserver's default since v1.32:
// an apiserver with it disabled refuses sendInitialEvents itself.
func ValidateQuery(r *http.Request, info *Info) *metav1.Status {
	if info == nil || !info.IsResourceRequest || info.Subresource != "" {
		return nil
	}
	q := r.URL.Query()
	switch info.Verb {
	case "list", "watch":
		var opts metainternalversion.ListOptions
		if err := metainternalversionscheme.ParameterCodec.DecodeParameters(q, metav1.SchemeGroupVersion, &opts); err != nil {
			return status(apierrors.NewBadRequest(err.Error()))
		}
		if info.Verb == "watch" {
			opts.Watch = true // also for the /watch/ path prefix, as the apiserver forces it
		}
		if errs := validation.ValidateListOptions(&opts, true); len(errs) > 0 {
			return status(apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs))
		}
		if msg, ok := badResourceVersion(opts.ResourceVersion); ok {
			if info.Verb == "list" {
				return status(apierrors.NewBadRequest("invalid resource version: " + msg))
			}
			return &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: msg}
		}
	case "get":
		var opts metav1.GetOptions
		if err := metainternalversionscheme.ParameterCodec.DecodeParameters(q, metav1.SchemeGroupVersion, &opts); err != nil {
			return status(apierrors.NewBadRequest(err.Error()))
		}
		if msg, ok := badResourceVersion(opts.ResourceVersion); ok {
			return &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: msg}
		}
	}
	return nil
}

// badResourceVersion: a resourceVersion the apiserver's storage cannot parse.
func badResourceVersion(rv string) (string, bool) {
	if rv == "" {
		return "", false
	}
	if _, err := strconv.ParseUint(rv, 10, 64); err != nil {
		return field.Invalid(field.NewPath("resourceVersion"), rv, err.Error()).Error(), true
	}
	return "", false
}

func status(err *apierrors.StatusError) *metav1.Status { return &err.ErrStatus }
