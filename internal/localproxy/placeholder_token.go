package localproxy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// Placeholder service-account tokens.
//
// Offline, when no cached token for the service account and audiences is valid long
// enough (token.go), a 503 would keep a pod that restarts during a long outage from
// mounting its projected token volume, so it would never start. The hub answers
// instead with a placeholder: a TokenRequest whose token is an unsigned JWT
// ("alg": "none", issuer PlaceholderIssuer) that no apiserver accepts and that says
// what it is to anyone who decodes it, and whose expirationTimestamp is
// PlaceholderTokenTTL away. kubelet refreshes a token once 80% of its requested
// lifetime has passed, which for a placeholder is at once: its next volume sync asks
// again, and once the cloud is back that request goes to the cloud and the pod gets a
// real token. The pod starts; what it sends to the apiserver with the placeholder
// is refused until then, as it would be offline anyway.
//
// A placeholder is never recorded (TokenCacher sees only cloud responses) and never
// forwarded; each one is logged and counted (PlaceholderTokens).

// PlaceholderIssuer is the "iss" of every placeholder token.
const PlaceholderIssuer = "yurthub-offline-placeholder"

// PlaceholderTokenTTL is how long a placeholder says it is valid.
const PlaceholderTokenTTL = 5 * time.Minute

// placeholderTokens counts the placeholders handed out by this process.
var placeholderTokens atomic.Int64

// PlaceholderTokens is the number of placeholder tokens handed out since start.
func PlaceholderTokens() int64 { return placeholderTokens.Load() }

// servePlaceholderToken answers req (a TokenRequest for serviceaccount
// info.Namespace/info.Name) with a placeholder; why says why no real token could be
// handed out.
func (h *Handler) servePlaceholderToken(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, req *authnv1.TokenRequest, why string) {
	now := h.opts.Now()
	exp := now.Add(PlaceholderTokenTTL)
	token, err := placeholderJWT(info.Namespace, info.Name, req.Spec.Audiences, now, exp)
	if err != nil {
		writeStatus(w, r, internalError(err.Error()))
		return
	}
	out := req.DeepCopy()
	out.APIVersion, out.Kind = "authentication.k8s.io/v1", "TokenRequest"
	out.Name, out.Namespace = info.Name, info.Namespace
	out.Status = authnv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(exp)}
	doc, err := json.Marshal(out)
	if err != nil {
		writeStatus(w, r, internalError(err.Error()))
		return
	}
	n := placeholderTokens.Add(1)
	h.log.Warn("offline: placeholder service-account token handed out (not signed by the cluster; the apiserver refuses it; kubelet asks again within minutes and gets a real one once the cloud is back)",
		slog.String("serviceaccount", info.Namespace+"/"+info.Name), slog.String("component", info.Component),
		slog.String("why", why), slog.Time("expires", exp), slog.Int64("placeholders", n))
	h.respondObject(w, r, info, store.Object{Namespace: info.Namespace, Name: info.Name, Encoding: store.EncodingJSON, Data: doc}, http.StatusCreated)
}

// placeholderJWT is an unsigned JWT (header.payload. with "alg": "none") naming the
// service account, so tools that decode tokens see what it is and when it expires.
func placeholderJWT(namespace, sa string, audiences []string, iat, exp time.Time) (string, error) {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString
	header, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss":                             PlaceholderIssuer,
		"sub":                             "system:serviceaccount:" + namespace + ":" + sa,
		"aud":                             audiences,
		"iat":                             iat.Unix(),
		"nbf":                             iat.Unix(),
		"exp":                             exp.Unix(),
		"jti":                             enc(nonce),
		"yurthub.openyurt.io/placeholder": "issued offline by yurthub because the cloud apiserver was unreachable; not valid for any apiserver",
	})
	if err != nil {
		return "", err
	}
	return enc(header) + "." + enc(claims) + ".", nil
}
