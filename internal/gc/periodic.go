package gc

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/yurthub/yurthub/internal/store"
)

// Ages past which the periodic GC drops an object.
const (
	EventMaxAge  = time.Hour
	ObjectMaxAge = 24 * time.Hour
	// MaxLocalEvents is how many events created offline are kept per component
	// (across core/v1 and events.k8s.io/v1); the oldest go first.
	MaxLocalEvents = 1000
)

// Collector is the periodic GC.
type Collector struct {
	Store *store.Store
	// Frequency is --gc-frequency; each wait is Frequency plus up to half of it,
	// at random (so nodes that start together do not sweep together).
	Frequency time.Duration
	// Online reports whether the cloud is reachable (the object sweep runs only then).
	Online func() bool
	Log    *slog.Logger
	Count  func(kind, reason string, n int)
	Now    func() time.Time
}

// Run sweeps at once (events a long outage left behind go at start, as OpenYurt's
// first run does), then every jittered Frequency until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	if c.Frequency <= 0 {
		return
	}
	if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
		c.log().Warn("gc: periodic sweep failed; the next one retries", slog.Any("err", err))
	}
	for {
		wait := c.Frequency + time.Duration(rand.Int64N(int64(c.Frequency)/2+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
			c.log().Warn("gc: periodic sweep failed; the next one retries", slog.Any("err", err))
		}
	}
}

func (c *Collector) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log.With(slog.String("part", "gc"))
}

// SweepResult counts what one sweep dropped.
type SweepResult struct {
	EventsExpired, NotRefreshed int
	ObjectsOnline               bool // whether the not-refreshed sweep ran
}

// Sweep drops expired events and, when online, objects no view covers and no GET
// has refreshed for ObjectMaxAge.
func (c *Collector) Sweep(ctx context.Context) (SweepResult, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now()
	var res SweepResult
	res.ObjectsOnline = c.Online == nil || c.Online()
	var expired, stale []store.ObjectKey
	var expiredRVs, staleRVs []uint64
	err := c.Store.WalkCoverage(ctx, store.Filter{}, func(k store.ObjectKey, o store.Object, covered bool) error {
		if store.IsEventResource(k.Resource) {
			if at := EventTime(o); !at.IsZero() && t.Sub(at) > EventMaxAge {
				expired, expiredRVs = append(expired, k), append(expiredRVs, o.ResourceVersion)
			}
			return nil
		}
		if res.ObjectsOnline && !covered && t.Sub(c.Store.LastRefreshed(k)) > ObjectMaxAge {
			stale, staleRVs = append(stale, k), append(staleRVs, o.ResourceVersion)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gc: walk the cache: %w", err)
	}
	log := c.log()
	drop := func(keys []store.ObjectKey, rvs []uint64, reason string) (int, error) {
		if len(keys) == 0 {
			return 0, nil
		}
		if reason == "not_refreshed" { // a GET since the walk keeps the object
			var k2 []store.ObjectKey
			var r2 []uint64
			for i, k := range keys {
				if now().Sub(c.Store.LastRefreshed(k)) > ObjectMaxAge {
					k2, r2 = append(k2, k), append(r2, rvs[i])
				}
			}
			keys, rvs = k2, r2
		}
		removed, err := c.Store.DeleteObjectsAt(ctx, keys, rvs)
		if err != nil {
			return 0, err
		}
		perKind := map[string]int{}
		for _, k := range removed {
			perKind[Kind(k.Resource)]++
			if reason != "event_expired" { // events can be many: counted, not listed
				log.Info("gc: dropped an object no list covers and no GET refreshed for a day",
					slog.String("component", k.Component), slog.String("resource", k.Resource.String()),
					slog.String("object", k.Namespace+"/"+k.Name))
			}
		}
		for kind, m := range perKind {
			if c.Count != nil {
				c.Count(kind, reason, m)
			}
		}
		return len(removed), nil
	}
	if res.EventsExpired, err = drop(expired, expiredRVs, "event_expired"); err != nil {
		return res, fmt.Errorf("gc: drop expired events: %w", err)
	}
	if res.NotRefreshed, err = drop(stale, staleRVs, "not_refreshed"); err != nil {
		return res, fmt.Errorf("gc: drop unreferenced objects: %w", err)
	}
	if _, err := c.Store.PruneRefreshes(ctx); err != nil {
		return res, fmt.Errorf("gc: prune the refresh record: %w", err)
	}
	log.Info("gc: periodic sweep done", slog.Int("events_expired", res.EventsExpired),
		slog.Int("objects_not_refreshed", res.NotRefreshed), slog.Bool("online", res.ObjectsOnline),
		slog.Duration("event_max_age", EventMaxAge), slog.Duration("object_max_age", ObjectMaxAge))
	return res, nil
}

// KeepLocalEvent stores an event created offline under the cap: the component keeps
// at most MaxLocalEvents locally created events, the oldest (by EventTime) are
// dropped in the same transaction. It returns how many were dropped.
func KeepLocalEvent(ctx context.Context, st *store.Store, k store.ObjectKey, o store.Object) (int, error) {
	ev, err := st.PutLocalEvent(ctx, k, o, MaxLocalEvents, EventTime)
	return len(ev), err
}
