package hubserver

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTokenHandler(t *testing.T) {
	var kept string
	h := TokenHandler(slog.New(slog.DiscardHandler), func(s string) bool { return s == "abcdef.0123456789abcdef" || s == "broken.0123456789abcdef" },
		func(s string) error {
			if strings.HasPrefix(s, "broken") {
				return errors.New("disk on fire")
			}
			kept = s
			return nil
		})
	cases := []struct {
		method, body string
		code         int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodDelete, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "not json", http.StatusBadRequest},
		{http.MethodPost, `{"jointoken": "short"}`, http.StatusBadRequest},
		{http.MethodPost, `{}`, http.StatusBadRequest},
		{http.MethodPut, `{"jointoken": "broken.0123456789abcdef"}`, http.StatusInternalServerError},
		{http.MethodPost, `{"jointoken": "abcdef.0123456789abcdef"}`, http.StatusOK},
		{http.MethodPut, `{"jointoken": "abcdef.0123456789abcdef"}`, http.StatusOK},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/v1/token", strings.NewReader(tc.body)))
		if rec.Code != tc.code {
			t.Errorf("%s %q: %d %s, want %d", tc.method, tc.body, rec.Code, rec.Body, tc.code)
		}
	}
	if kept != "abcdef.0123456789abcdef" {
		t.Fatalf("kept %q", kept)
	}
}
