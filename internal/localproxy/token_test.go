package localproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/requestinfo"
)

// A token seen through TokenCacher is handed back offline while it stays valid long
// enough, never after; Table reads never reach the cache manager.
func TestTokenReuseAndExpiry(t *testing.T) {
	st := openStore(t)
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	clock := now
	s := newServer(t, st, Options{Now: func() time.Time { return clock }, TokenMinValidity: time.Minute})

	seen := &authnv1.TokenRequest{TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
		Spec:   authnv1.TokenRequestSpec{Audiences: []string{"api"}},
		Status: authnv1.TokenRequestStatus{Token: "tok-1", ExpirationTimestamp: metav1.NewTime(now.Add(10 * time.Minute))}}
	body, _ := json.Marshal(seen)
	req, _ := http.NewRequest(http.MethodPost, "http://x/api/v1/namespaces/ns/serviceaccounts/app/token", nil)
	req.Header.Set("User-Agent", "kubelet/v1.36.3")
	req.Header.Set("Accept", "application/json")
	info, _ := requestinfo.New().Parse(req)
	next := &recordingCacher{}
	resp := &http.Response{StatusCode: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	s.h.TokenCacher(next).CacheResponse(info, resp)
	if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, body) || next.n != 1 {
		t.Fatalf("the client must get the token response unchanged and the cache manager must see it (%d)", next.n)
	}
	// Table read: not handed to the cache manager.
	treq, _ := http.NewRequest(http.MethodGet, "http://x/api/v1/pods", nil)
	treq.Header.Set("User-Agent", "kubectl/v1.36.3")
	treq.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	tinfo, _ := requestinfo.New().Parse(treq)
	s.h.TokenCacher(next).CacheResponse(tinfo, &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(nil)), Request: treq})
	if next.n != 1 {
		t.Fatal("a Table read reached the cache manager")
	}

	cs := s.client(t, "kubelet", false)
	ctx := context.Background()
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{"api"}}}
	var got *authnv1.TokenRequest
	waitFor(t, 5*time.Second, "the token recorded", func() bool {
		var err error
		got, err = cs.CoreV1().ServiceAccounts("ns").CreateToken(ctx, "app", tr, metav1.CreateOptions{})
		return err == nil && got.Status.Token == "tok-1" // until recorded: a placeholder
	})
	if got.Status.Token != "tok-1" {
		t.Fatalf("offline token: %+v", got.Status)
	}
	// Another component saw no token, and a nearly expired one is not handed out: both
	// get a placeholder (placeholder_token.go), never the other's token.
	other, err := s.client(t, "kube-proxy", false).CoreV1().ServiceAccounts("ns").CreateToken(ctx, "app", tr, metav1.CreateOptions{})
	checkPlaceholder(t, "another component", other, err, clock)
	clock = now.Add(9*time.Minute + 30*time.Second) // 30s left < TokenMinValidity
	late, err := cs.CoreV1().ServiceAccounts("ns").CreateToken(ctx, "app", tr, metav1.CreateOptions{})
	checkPlaceholder(t, "nearly expired token", late, err, clock)
}

type recordingCacher struct{ n int }

func (r *recordingCacher) CacheResponse(*requestinfo.Info, *http.Response) { r.n++ }
