package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// ErrNoDaemon means nothing answers on the admin socket (no file, or refused).
var ErrNoDaemon = errors.New("no yurthub answers on the admin socket")

// Target says where the cache is: the daemon's socket, and the file to fall back on.
type Target struct {
	Socket    string // <root-dir>/hub.sock
	CacheFile string // <root-dir>/cache.db
	// LockTimeout bounds the wait for the file when no daemon answers (default 2s).
	LockTimeout time.Duration
}

// Request is one operator query: "inspect" or "dump" with its parameters.
type Request struct {
	Op     string // "inspect" or "dump"
	Format string
	Dump   DumpOptions // for "dump"
}

// Query answers r on w: from the running daemon over its socket when one answers,
// else from the cache file opened read-only.
func Query(ctx context.Context, t Target, r Request, w io.Writer) error {
	err := askDaemon(ctx, t.Socket, r, w)
	if !errors.Is(err, ErrNoDaemon) {
		return err
	}
	if t.LockTimeout <= 0 {
		t.LockTimeout = 2 * time.Second
	}
	s, oerr := store.Open(t.CacheFile, store.Options{ReadOnly: true, LockTimeout: t.LockTimeout})
	if oerr != nil {
		if errors.Is(oerr, store.ErrLocked) {
			return fmt.Errorf("cache file %s is locked (a yurthub is running) but nothing answers on its admin socket %s (%v); "+
				"check that the daemon and hubctl use the same --root-dir, or stop the daemon to read the file", t.CacheFile, t.Socket, err)
		}
		if errors.Is(oerr, os.ErrNotExist) {
			return fmt.Errorf("no cache at %s and no yurthub answering on %s: wrong --root-dir / --cache-file?", t.CacheFile, t.Socket)
		}
		return oerr
	}
	defer s.Close()
	return Local(ctx, s, r, w)
}

// Local answers r from an open store (the daemon's handler and the read-only path).
func Local(ctx context.Context, s *store.Store, r Request, w io.Writer) error {
	switch r.Op {
	case "inspect":
		return Inspect(ctx, w, s, r.Format)
	case "dump":
		o := r.Dump
		o.Format = r.Format
		return Dump(ctx, w, s, o)
	}
	return fmt.Errorf("unknown admin request %q", r.Op)
}

func askDaemon(ctx context.Context, socket string, r Request, w io.Writer) error {
	if socket == "" {
		return ErrNoDaemon
	}
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("%w (%s: %v)", ErrNoDaemon, socket, err)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	q := url.Values{}
	if r.Format != "" {
		q.Set("o", r.Format)
	}
	path := "/v1/inspect"
	if r.Op == "dump" {
		path = "/v1/dump"
		f := r.Dump.Filter
		for k, v := range map[string]string{"component": f.Component, "namespace": f.Namespace, "name": f.Name} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if res := f.Resource.Resource; res != "" {
			q.Set("resource", strings.TrimSuffix(strings.TrimSuffix(f.Resource.Resource+"."+f.Resource.Version+"."+f.Resource.Group, "."), "."))
		}
		if r.Dump.ShowSecrets {
			q.Set("show-secrets", "true")
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hub.sock"+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w (%s: connection refused)", ErrNoDaemon, socket)
		}
		return fmt.Errorf("admin socket %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("yurthub (via %s): %s", socket, strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("admin socket %s: %w", socket, err)
	}
	if e := resp.Trailer.Get("X-Hubctl-Error"); e != "" {
		return fmt.Errorf("yurthub (via %s): %s", socket, e)
	}
	return nil
}
