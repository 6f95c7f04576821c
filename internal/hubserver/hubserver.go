// Package hubserver is the hub's own HTTP server on --bind-address:--serve-port
// (10267): /v1/healthz, /v1/readyz and, as later work fills them in, /metrics,
// /debug/pprof, /v1/token, /pods and the OTA upgrade endpoint.
package hubserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ReadyCheck reports whether one part of the hub is ready; a nil error means ready.
// Optional parts (the NodePool CRD, for one) must never be registered as checks.
type ReadyCheck struct {
	Name  string
	Check func() error
}

// Server is the hub server.
type Server struct {
	log   *slog.Logger
	mux   *http.ServeMux
	srv   *http.Server
	mu    sync.Mutex
	ready []ReadyCheck
}

// New returns a server that answers /v1/healthz; more handlers are added with Handle.
func New(log *slog.Logger) *Server {
	s := &Server{log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "OK")
	})
	s.mux.HandleFunc("GET /v1/readyz", s.readyz)
	return s
}

// Handle adds a handler, with http.ServeMux's pattern syntax.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadyCheck adds a check to /v1/readyz.
func (s *Server) AddReadyCheck(c ReadyCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, c)
}

// Handler returns the server's handler, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := append([]ReadyCheck(nil), s.ready...)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var failed []string
	for _, c := range checks {
		if err := c.Check(); err != nil {
			failed = append(failed, fmt.Sprintf("[-]%s: %v", c.Name, err))
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			fmt.Fprintln(w, f)
		}
		return
	}
	fmt.Fprint(w, "OK")
}

// Serve listens on addr and serves until Shutdown. It returns once the listener is
// bound, so that the caller can report readiness; serving errors go to errc.
func (s *Server) Serve(addr string, errc chan<- error) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("hub server: listen on %s: %w", addr, err)
	}
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.log.Info("hub server listening", slog.String("addr", l.Addr().String()))
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("hub server on %s: %w", addr, err)
		}
	}()
	return nil
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}
