package localproxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestErrorsEchoBoundedInput: an offline watch (and list, and get) with a
// 100k-character fieldSelector, name or User-Agent answers a Status of a few KiB
// that still says what is missing, not one that quotes the input (twice).
func TestErrorsEchoBoundedInput(t *testing.T) {
	st := openStore(t)
	fillPods(t, st, "kubelet", 2, "json")
	hub := hubInFront(t, newServer(t, st, Options{}).h, "")
	long := strings.Repeat("x", 100_000)
	for _, tc := range []struct{ name, path, ua string }{
		{"watch, long fieldSelector", "/api/v1/pods?watch=true&fieldSelector=" + url.QueryEscape("metadata.name="+long), "kubelet/v1.36.3"},
		{"list, long labelSelector", "/api/v1/pods?labelSelector=" + url.QueryEscape("app="+strings.Repeat("y", 60)+","+"a="+long[:60000]), "kubelet/v1.36.3"},
		{"get, long name", "/api/v1/namespaces/ns1/pods/" + long, "kubelet/v1.36.3"},
		{"list, long User-Agent", "/api/v1/pods?fieldSelector=spec.nodeName%3Dother", long + "/v1"},
		{"list, long resourceVersionMatch", "/api/v1/pods?resourceVersion=1&resourceVersionMatch=" + long, "kubelet/v1.36.3"},
	} {
		req, _ := http.NewRequest(http.MethodGet, hub+tc.path, nil)
		req.Header.Set("User-Agent", tc.ua)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var status struct{ Kind, Message string }
		if err := json.Unmarshal(body, &status); err != nil || status.Kind != "Status" {
			t.Errorf("%s: %d, not a Status (%v): %.200q", tc.name, resp.StatusCode, err, body)
			continue
		}
		t.Logf("%s: %d, %d bytes: %.300s", tc.name, resp.StatusCode, len(body), status.Message)
		if len(body) > 5000 || !strings.Contains(status.Message, "more bytes)") {
			t.Errorf("%s: %d, a %d-byte body (want <= 5000, saying what was cut): %.300s", tc.name, resp.StatusCode, len(body), status.Message)
		}
	}
}
