package localproxy

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
)

// checkPlaceholder asserts that tr is a placeholder token issued at now (within 2 s):
// an unsigned JWT with the placeholder issuer, valid PlaceholderTokenTTL.
func checkPlaceholder(t *testing.T, what string, tr *authnv1.TokenRequest, err error, now time.Time) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: want a placeholder token, got %v", what, err)
	}
	parts := strings.Split(tr.Status.Token, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("%s: token %q is not an unsigned JWT", what, tr.Status.Token)
	}
	var header, claims map[string]any
	for i, into := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, into) != nil {
			t.Fatalf("%s: token part %d does not decode: %v", what, i, err)
		}
	}
	if header["alg"] != "none" || claims["iss"] != PlaceholderIssuer {
		t.Fatalf("%s: header %v claims %v: not a placeholder", what, header, claims)
	}
	if got, want := tr.Status.ExpirationTimestamp.Time, now.Add(PlaceholderTokenTTL); got.Before(want.Add(-2*time.Second)) || got.After(want.Add(2*time.Second)) {
		t.Fatalf("%s: expires %s, want %s", what, got, now.Add(PlaceholderTokenTTL))
	}
}
