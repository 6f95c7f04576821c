package main

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestLinkProxyShapes: bytes through the relay are paced to its rate, shared by all
// connections (two downloads of 1 MB at 40 Mbit/s take about 0.4 s together, not 0.2).
func TestLinkProxyShapes(t *testing.T) {
	const size = 1 << 20
	src, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	go func() {
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write(make([]byte, size))
			}()
		}
	}()
	link, err := newLinkProxy(src.Addr().String(), 40_000_000)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	download := func() (int64, error) {
		c, err := net.Dial("tcp", link.ln.Addr().String())
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return io.Copy(io.Discard, c)
	}
	t0 := time.Now()
	if n, err := download(); err != nil || n != size {
		t.Fatalf("one download: %d bytes, %v; want %d", n, err, size)
	}
	one := time.Since(t0)
	t0 = time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := download(); err != nil || n != size {
				t.Errorf("download: %d bytes, %v; want %d", n, err, size)
			}
		}()
	}
	wg.Wait()
	two := time.Since(t0)
	t.Logf("1 MB in %s, two at once in %s (40 Mbit/s: 0.21 s and 0.42 s)", one, two)
	if one < 180*time.Millisecond || one > 2*time.Second {
		t.Errorf("1 MB through a 40 Mbit/s link took %s, want about 0.21 s", one)
	}
	if two < 380*time.Millisecond {
		t.Errorf("two 1 MB downloads at once took %s: the connections do not share the link's rate", two)
	}
}
