package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// Server serves the admin endpoint on a unix socket.
type Server struct {
	path string
	srv  *http.Server
	ln   net.Listener
	log  *slog.Logger
}

// Listen creates the socket at path (mode 0600) and serves s on it until Shutdown.
// A stale socket file from a crashed daemon is replaced; a socket on which another
// process answers is an error. Serving errors are sent to errc.
func Listen(path string, s *store.Store, log *slog.Logger, errc chan<- error) (*Server, error) {
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another process already serves it (is another yurthub running on this root dir?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket %s: remove the stale socket: %w", path, err)
		}
	}
	old := syscall.Umask(0o177) // the socket is born 0600: no window with a wider mode
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	a := &Server{path: path, ln: ln, log: log}
	a.srv = &http.Server{Handler: Handler(s), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin socket %s: %w", path, err)
		}
	}()
	log.Info("admin socket serving hubctl", slog.String("socket", path))
	return a, nil
}

// Shutdown stops serving and removes the socket file.
func (a *Server) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	_ = os.Remove(a.path)
	return err
}

// Handler serves /v1/inspect and /v1/dump from s. A rendering error is answered
// with status 500 and the message; nothing is sent before rendering succeeds only
// for inspect (a dump streams, and an error ends it with the message appended).
func Handler(s *store.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/inspect", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := Inspect(r.Context(), &buf, s, r.URL.Query().Get("o")); err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /v1/dump", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		o := DumpOptions{
			Filter: store.Filter{
				Component: q.Get("component"),
				Resource:  store.ParseResource(q.Get("resource")),
				Namespace: q.Get("namespace"),
				Name:      q.Get("name"),
			},
			Format: q.Get("o"),
		}
		o.ShowSecrets, _ = strconv.ParseBool(q.Get("show-secrets"))
		if o.Format != "" && o.Format != FormatJSON && o.Format != FormatYAML {
			http.Error(w, fmt.Sprintf("unknown output format %q for dump (json or yaml)", o.Format), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Trailer", "X-Hubctl-Error")
		if err := Dump(r.Context(), w, s, o); err != nil {
			w.Header().Set("X-Hubctl-Error", err.Error())
		}
	})
	return mux
}

func statusOf(err error) int {
	if errors.Is(err, store.ErrInvalid) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
