// Package apistatus holds what the hub's two answering paths (internal/proxy, online;
// internal/localproxy, offline) share about the metav1.Status bodies they write
// themselves: how much of a request's own input an error may repeat.
package apistatus

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxEcho bounds each piece of request input (a name, a selector, a User-Agent, a
// cause) an error message repeats, and MaxMessage a whole message (a backstop for
// input that reaches it another way).
const (
	MaxEcho    = 256
	MaxMessage = 4096
)

// Shorten cuts s to at most n bytes (on a rune boundary), saying how much was cut.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d more bytes)", s[:cut], len(s)-cut)
}

// Write answers with st in JSON, as the apiserver does for errors: kind Status,
// status Failure, the HTTP code from st.Code (500 when unset). The message is cut
// at MaxMessage bytes and each echoed detail at MaxEcho: errors may quote the
// request's URL or body, and an error must not repeat unbounded input. retryAfter
// > 0 sets Retry-After (the proxy's 429); the offline path never sets it on 503,
// because client-go would retry each request ten times in place while the answer
// will not change in seconds.
func Write(w http.ResponseWriter, r *http.Request, st *metav1.Status, retryAfter int) {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	st.Status = metav1.StatusFailure
	st.Message = Shorten(st.Message, MaxMessage)
	if d := st.Details; d != nil {
		d.Name = Shorten(d.Name, MaxEcho)
		for i := range d.Causes {
			d.Causes[i].Message = Shorten(d.Causes[i].Message, MaxEcho)
			d.Causes[i].Field = Shorten(d.Causes[i].Field, MaxEcho)
		}
	}
	body, _ := json.Marshal(st)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache, private")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
