package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A listener that cannot open yet (address taken, as a dummy IP not assigned yet, or
// a precondition such as a missing serving certificate) opens once it can.
func TestListenWhenPossible(t *testing.T) {
	old := RetryInterval
	RetryInterval = 50 * time.Millisecond
	defer func() { RetryInterval = old }()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := busy.Addr().String()
	errc := make(chan error, 4)
	l := NewListeners(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hub")) }),
		slog.New(slog.DiscardHandler), errc)
	defer l.Shutdown(context.Background())

	var ready atomic.Bool
	l.ListenWhenPossible(Spec{Name: "busy", Addr: addr})
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	freeAddr := free.Addr().String()
	free.Close()
	l.ListenWhenPossible(Spec{Name: "gated", Addr: freeAddr, Precondition: func() error {
		if !ready.Load() {
			return errors.New("serving certificate missing")
		}
		return nil
	}})
	time.Sleep(200 * time.Millisecond)
	if l.Addr("busy") != nil || l.Addr("gated") != nil {
		t.Fatal("listeners opened although their address was taken / precondition failed")
	}
	busy.Close()
	ready.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for l.Addr("busy") == nil || l.Addr("gated") == nil {
		if time.Now().After(deadline) {
			t.Fatal("listeners did not open once they could")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range []string{addr, freeAddr} {
		resp, err := http.Get("http://" + a + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	select {
	case err := <-errc:
		t.Fatalf("serving error: %v", err)
	default:
	}
}
