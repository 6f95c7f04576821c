package localproxy

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/testkube"
)

// TestOfflinePlaceholderToken is the outage longer than a token's life, on the real
// apiserver: kubelet gets a real token through the hub; offline, the cached token is
// handed back while valid; once it has expired (the hub's clock moved 2h on), kubelet
// gets a placeholder that the apiserver refuses (TokenReview), and once the cloud is
// back kubelet's next request gets a real token again.
func TestOfflinePlaceholderToken(t *testing.T) {
	c := testkube.Start(t, testkube.Options{})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hub := startE2EHub(t, c, filepath.Join(t.TempDir(), "cache.db"))
	var skew atomic.Int64 // the offline path's clock runs this far ahead
	hub.local.opts.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	hub.waitHealthy(true)
	kubelet := kubernetes.NewForConfigOrDie(hub.config("kubelet", true))
	req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{"https://kubernetes.default.svc.cluster.local"}, ExpirationSeconds: ptr.To[int64](3600)}}
	createToken := func() (*authnv1.TokenRequest, error) {
		return kubelet.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", req, metav1.CreateOptions{})
	}
	review := func(token string) bool {
		r, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Authenticated
	}

	online, err := createToken()
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(online.Status.Token, ".") || !review(online.Status.Token) {
		t.Fatal("online: not a real token")
	}
	t.Logf("online: real token, expires %s", online.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
	time.Sleep(time.Second) // recorded for offline use in the background

	c.APIServer().Stop(t)
	hub.waitHealthy(false)
	cached, err := createToken()
	if err != nil || cached.Status.Token != online.Status.Token {
		t.Fatalf("offline, cached token still valid: got %v, want the online token", err)
	}
	t.Logf("offline, cached token valid: the cached token is handed out")

	skew.Store(int64(2 * time.Hour))
	before := PlaceholderTokens()
	ph, err := createToken()
	checkPlaceholder(t, "offline after the cached token expired", ph, err, time.Now().Add(2*time.Hour))
	if n := PlaceholderTokens() - before; n != 1 {
		t.Fatalf("placeholders counted: %d, want 1", n)
	}
	t.Logf("offline, cached token expired: placeholder %s..., expires %s", ph.Status.Token[:24], ph.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))

	// The placeholder was not recorded: with the clock back, the cached token again.
	skew.Store(0)
	if again, err := createToken(); err != nil || again.Status.Token != online.Status.Token {
		t.Fatalf("offline after a placeholder: want the cached token, got %v", err)
	}

	c.APIServer().Start(t)
	hub.waitHealthy(true)
	if review(ph.Status.Token) {
		t.Fatal("the apiserver accepted the placeholder token")
	}
	back, err := createToken()
	if err != nil {
		t.Fatal(err)
	}
	if back.Status.Token == online.Status.Token || back.Status.Token == ph.Status.Token || !review(back.Status.Token) {
		t.Fatal("cloud back: kubelet's request did not get a new real token")
	}
	t.Logf("cloud back: the placeholder is refused by the apiserver (TokenReview authenticated=false); kubelet's next request got a new real token, expires %s",
		back.Status.ExpirationTimestamp.UTC().Format(time.RFC3339))
}
