package main

// The multiplexer's events/s figure over a constrained cloud link (issue 18).
//
// On one 2-core machine with the apiserver on loopback, 8 direct watchers cost the
// apiserver little more than one (it encodes an event once and writes it 8 times),
// and the writers' rate caps hub and direct alike. What the multiplexer saves is
// the cloud link: 8 agents watching EndpointSlices directly pull every event over
// the node's uplink 8 times, through the hub once. linkProxy stands for that link:
// a TCP relay in front of the apiserver whose two directions are each shaped to
// linkBitsPerSecond, shared by every connection through it (one uplink per node).
// Direct watchers and the hub (a second hub, --server-addr at the relay) go through
// the same relay; the writers, the cloud's controllers, talk to the apiserver
// itself.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// linkBitsPerSecond is the shaped link: 10 Mbit/s, an edge site's DSL or 4G uplink.
const linkBitsPerSecond = 10_000_000

// bucket paces bytes to a rate: each take reserves its bytes' time on a virtual
// clock and sleeps until then, so all users together get the rate.
type bucket struct {
	mu          sync.Mutex
	bytesPerSec float64
	next        time.Time
}

func (k *bucket) take(n int) {
	k.mu.Lock()
	now := time.Now()
	if k.next.Before(now) {
		k.next = now
	}
	k.next = k.next.Add(time.Duration(float64(n) / k.bytesPerSec * float64(time.Second)))
	wait := k.next.Sub(now)
	k.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
}

// linkProxy relays TCP connections to target through two shaped directions.
type linkProxy struct {
	ln       net.Listener
	target   string
	down, up *bucket
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newLinkProxy(target string, bitsPerSec float64) (*linkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &linkProxy{ln: ln, target: target, down: &bucket{bytesPerSec: bitsPerSec / 8}, up: &bucket{bytesPerSec: bitsPerSec / 8},
		conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is the apiserver's URL with the relay's address (the apiserver's serving
// certificate names 127.0.0.1, so TLS verifies through it).
func (p *linkProxy) URL() string { return "https://" + p.ln.Addr().String() }

func (p *linkProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *linkProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *linkProxy) relay(c net.Conn) {
	defer c.Close()
	s, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		log.Printf("link: dial %s: %v", p.target, err)
		return
	}
	defer s.Close()
	p.track(c, true)
	p.track(s, true)
	defer p.track(c, false)
	defer p.track(s, false)
	done := make(chan struct{}, 2)
	go func() { shapedCopy(s, c, p.up); s.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { shapedCopy(c, s, p.down); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// shapedCopy copies src to dst in chunks of at most 16 KiB, each paced by k.
func shapedCopy(dst io.Writer, src io.Reader, k *bucket) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			k.take(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops accepting and cuts every relayed connection.
func (p *linkProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// linkFigures: events/s to 8 watchers of EndpointSlices, hub and direct, both over
// the shaped link.
func (b *bench) linkFigures() error {
	name := fmt.Sprintf("watch events/s to 8 watchers of EndpointSlices (multiplexed), over a %d Mbit/s cloud link", linkBitsPerSecond/1_000_000)
	if err := b.linkLoad(name); err != nil {
		b.res.add(name, "events/s", "hub", 0, err) // not measured, with why; the rest of the bench goes on
	}
	return nil
}

func (b *bench) linkLoad(name string) error {
	u, err := url.Parse(b.c.URL())
	if err != nil {
		return err
	}
	link, err := newLinkProxy(u.Host, linkBitsPerSecond)
	if err != nil {
		return err
	}
	defer link.Close()
	hub := &hubProc{b: b, server: link.URL(), name: "hub-link"}
	defer hub.stop()
	if _, err := hub.start(); err != nil {
		return fmt.Errorf("the hub behind the shaped link: %w", err)
	}
	if _, err := hub.waitHealth(true, 60*time.Second); err != nil {
		return fmt.Errorf("the hub behind the shaped link: %w", err)
	}
	// Its multiplexer first lists every EndpointSlice of the cluster over the link
	// (10k of them: seconds); watchers arriving before that take the ordinary
	// proxied path, which is not what this figure measures.
	if err := hub.waitMuxReady("endpointslices", 120*time.Second); err != nil {
		return fmt.Errorf("the hub behind the shaped link: %w", err)
	}
	targets := []target{
		{"direct", link.URL(), b.direct},
		{"hub", "http://" + hub.proxyAddr, b.hubC},
	}
	failed := map[string]bool{}
	for run := 0; run < b.f.runs; run++ {
		for _, t := range inTurn(targets, run) {
			if failed[t.name] {
				continue
			}
			spec := b.epsWatch("")
			spec.seconds = 2
			spec.drain = 60 * time.Second
			spec.hub = hub
			rate, counts, err := b.watchLoadCounted(t, run, spec)
			b.res.add(name, "events/s", t.name, rate, err)
			if err == nil {
				// the apiserver cuts a watcher that cannot keep up; it re-watches, or relists
				b.res.add("↳ watches the server ended, re-opened by the watchers (over the link)", "watches", t.name, float64(counts.reopened), nil)
				b.res.add("↳ of which relisted after 410 Expired (over the link)", "relists", t.name, float64(counts.relisted), nil)
			}
			failed[t.name] = err != nil
		}
	}
	return nil
}

// waitMuxReady polls the hub's node_yurthub_multiplexer_ready gauge of resource
// until it is 1.
func (h *hubProc) waitMuxReady(resource string, limit time.Duration) error {
	t0 := time.Now()
	for time.Since(t0) < limit {
		resp, err := http.Get("http://" + h.serveAddr + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(line, "node_yurthub_multiplexer_ready{") && strings.Contains(line, "/"+resource+`"}`) && strings.HasSuffix(line, " 1") {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the multiplexer of %s not ready within %s", resource, limit)
}
