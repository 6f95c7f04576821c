package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Listeners serves one handler on several addresses (the proxy port, the secure
// proxy port, the same on the dummy IP), some of which may not be possible yet (the
// dummy IP not assigned, the serving certificate not issued): those are retried in the
// background until they work or Shutdown.
type Listeners struct {
	handler http.Handler
	log     *slog.Logger
	errc    chan<- error

	mu      sync.Mutex
	servers []*http.Server
	addrs   map[string]net.Addr // name -> bound address
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
}

// RetryInterval is how often a listener that could not start is tried again.
var RetryInterval = 5 * time.Second

// NewListeners returns a set of listeners for h; serving errors go to errc.
func NewListeners(h http.Handler, log *slog.Logger, errc chan<- error) *Listeners {
	return &Listeners{handler: h, log: log, errc: errc, addrs: map[string]net.Addr{}, stop: make(chan struct{})}
}

// Spec is one listener.
type Spec struct {
	Name string // for logs: "proxy", "proxy-secure", "proxy-dummy", ...
	Addr string
	TLS  *tls.Config // nil: plain HTTP
	// Precondition, when set, must return nil before the listener is opened (the
	// serving certificate exists); its error is logged once as the reason.
	Precondition func() error
}

// Listen opens spec now. It returns an error when the address cannot be bound.
func (l *Listeners) Listen(spec Spec) error {
	if spec.Precondition != nil {
		if err := spec.Precondition(); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", spec.Addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", spec.Name, spec.Addr, err)
	}
	srv := &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	if spec.TLS != nil {
		srv.TLSConfig = spec.TLS
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return errors.New("listeners shut down")
	}
	l.servers = append(l.servers, srv)
	l.addrs[spec.Name] = ln.Addr()
	l.mu.Unlock()
	l.log.Info("proxy listening", slog.String("listener", spec.Name), slog.String("addr", ln.Addr().String()), slog.Bool("tls", spec.TLS != nil))
	go func() {
		var err error
		if spec.TLS != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.errc <- fmt.Errorf("%s on %s: %w", spec.Name, spec.Addr, err)
		}
	}()
	return nil
}

// ListenWhenPossible opens spec now if it can, else logs why once (at warn level) and
// retries every RetryInterval in the background.
func (l *Listeners) ListenWhenPossible(spec Spec) {
	err := l.Listen(spec)
	if err == nil {
		return
	}
	l.log.Warn("listener not open yet, retrying in the background", slog.String("listener", spec.Name),
		slog.String("addr", spec.Addr), slog.Any("reason", err))
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(RetryInterval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			if err := l.Listen(spec); err == nil {
				return
			}
		}
	}()
}

// Addr returns the bound address of the named listener, or nil if it is not open.
func (l *Listeners) Addr(name string) net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[name]
}

// Shutdown stops every listener, waiting for in-flight requests until ctx ends, and
// then closes what is left (watches and upgraded connections).
func (l *Listeners) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	servers := append([]*http.Server(nil), l.servers...)
	l.mu.Unlock()
	l.wg.Wait()
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				_ = s.Close()
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
