package cachemgr

import (
	"mime"
	"net/http"
)

// transformed reports whether a response is not the plain object form (Table,
// PartialObjectMetadata, ...): those are never cached as objects.
func transformed(h http.Header) bool {
	_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && params["as"] != ""
}
