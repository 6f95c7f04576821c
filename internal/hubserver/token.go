package hubserver

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// TokenHandler serves POST|PUT /v1/token, OpenYurt's way to give a node a new join
// token (the old one expired) for its next certificate bootstrap: the body is
// {"jointoken": "<id>.<secret>"}. valid checks the token's form; set keeps it. A bad
// body is 400, another verb 405, a token that cannot be kept 500.
func TokenHandler(log *slog.Logger, valid func(string) bool, set func(string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "method not allowed: use POST or PUT with {\"jointoken\": \"<id>.<secret>\"}", http.StatusMethodNotAllowed)
			return
		}
		var body struct {
			JoinToken string `json:"jointoken"`
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil {
			err = json.Unmarshal(data, &body)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("body must be JSON {\"jointoken\": \"<id>.<secret>\"}: %v", err), http.StatusBadRequest)
			return
		}
		if !valid(body.JoinToken) {
			http.Error(w, "jointoken is not a bootstrap token: the form is <6 characters [a-z0-9]>.<16 characters [a-z0-9]>", http.StatusBadRequest)
			return
		}
		if err := set(body.JoinToken); err != nil {
			log.Error("join token not kept", slog.Any("err", err))
			http.Error(w, "join token not kept: "+err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("join token replaced through /v1/token; the next certificate bootstrap uses it")
		fmt.Fprint(w, "join token updated\n")
	})
}
