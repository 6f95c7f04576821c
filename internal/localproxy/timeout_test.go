package localproxy

import (
	"fmt"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestLocalWatchTimeoutJitter: a local watch without timeoutSeconds ends after a
// random time in [min-request-timeout, 2*min-request-timeout), as the apiserver's
// (and OpenYurt's local proxy) does, so the node's watches do not all expire and
// relist together; a watch with timeoutSeconds keeps it, even above the minimum
// (the apiserver does not cap it either). Issue 15 item 6.
func TestLocalWatchTimeoutJitter(t *testing.T) {
	const min = 500 * time.Millisecond
	st := openStore(t)
	fillPods(t, st, "kubelet", 3, "json")
	srv := newServer(t, st, Options{MinRequestTimeout: min})
	watch := func(extra string) (time.Duration, error) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/pods?watch=true&fieldSelector="+url.QueryEscape("spec.nodeName="+testNode)+extra, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("User-Agent", "kubelet/v1.36.3 (linux/amd64) kubernetes/test")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return 0, fmt.Errorf("watch %s: %s: %s", req.URL, resp.Status, b)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return time.Since(start), err
	}
	const n = 12
	var mu sync.Mutex
	var ds []time.Duration
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			d, err := watch("")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ds = append(ds, d)
			mu.Unlock()
		})
	}
	long := make(chan time.Duration, 1)
	go func() {
		d, err := watch("&timeoutSeconds=1")
		if err != nil {
			t.Error(err)
		}
		long <- d
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.Sort(ds)
	t.Logf("%d local watches without timeoutSeconds, min-request-timeout %v: ended after %v", n, min, ds)
	if ds[0] < min || ds[n-1] > 2*min+3*time.Second {
		t.Errorf("watch durations %v outside [%v, %v) (plus scheduling slack)", ds, min, 2*min)
	}
	if spread := ds[n-1] - ds[0]; spread < 100*time.Millisecond {
		t.Errorf("%d watches ended within %v of each other (%v): no jitter, they expire and relist together", n, spread, ds)
	}
	if d := <-long; d < time.Second {
		t.Errorf("watch with timeoutSeconds=1 ended after %v: timeoutSeconds must be kept, not capped to the minimum", d)
	}
}

func TestWatchTimeoutRule(t *testing.T) {
	const min = 30 * time.Minute
	for _, c := range []struct {
		seconds int64
		random  float64
		want    time.Duration
	}{
		{-5, 0.5, 0},                  // negative: ends at once
		{417, 0.5, 417 * time.Second}, // as given, even below the minimum
		{7200, 0.5, 2 * time.Hour},    // and above it: not capped
		{0, 0, min},                   // absent: [min, 2*min)
		{0, 0.5, 45 * time.Minute},
		{0, 0.999, min + time.Duration(0.999*float64(min))},
	} {
		if got := requestinfo.WatchTimeout(c.seconds, min, func() float64 { return c.random }); got != c.want {
			t.Errorf("timeoutSeconds=%d random=%v: %v, want %v", c.seconds, c.random, got, c.want)
		}
	}
}
