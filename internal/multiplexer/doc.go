// Package multiplexer is the node-level multiplexer for --pool-scope-resources
// (default services and discovery.k8s.io endpointslices): for each of them the hub
// keeps ONE list/watch of its own against the cloud (its own identity, the hub's
// client certificate) and answers every local client's list, watch and watch-list
// of that resource from it, as the apiserver's watch cache
// (k8s.io/apiserver/pkg/storage/cacher) answers its clients from one etcd watch.
//
//	cloud --list+watch (protobuf, bookmarks)--> reflector (upstream.go)
//	                                              |  each event decoded once (internal/wire)
//	                                              v
//	      the cache file's view <--lists, events-- watchCache (cache.go): window + watchers
//	      <Component "yurthub-multiplexer">             |      (events behind the stream:
//	          |  (the objects: only here)                |       persister, upstream.go)
//	          |                                          |
//	          +--> list / initial events (stored.go) ----+--> watcher (JSON / protobuf)
//	               one read transaction, spooled                events from the window
//	  per-client selectors and response filters, on the way out (serve.go)
//
// # What the cache holds
//
// In memory, per resource: a bounded window of the most recent events
// (Options.WindowSize, default DefaultWindowSize = 4096 events, and at most
// DefaultWindowBytes; the apiserver's watch cache keeps 100 to a few thousand), the
// watchers, and the objects of the events not yet committed to the cache file. A
// watch from a resourceVersion the window still covers gets exactly the events after
// it; one older than the window gets 410 Expired (the client relists, from here).
//
// The current objects are only in the cache file, in the view
// {Component: Component, Resource, Namespace: "", Selector: ""}: bbolt's map of it is
// page cache, not heap, so the hub's heap does not grow with the cluster's
// EndpointSlices (10,000 slices: +15.3 MB of live heap when they were kept in
// memory, +0.4 MB now; TestMultiplexerHeap fails above 64 bytes per object). A list
// and the initial state of a watch are read from the view in one read transaction
// at its stored resourceVersion S, encoded into a spool (internal/spool) and sent
// after the transaction ended; S is served only when the window continues from it
// (not older than the window's start, same state, view complete), else the request
// waits for the file (storeWait) and then takes the ordinary path: a client never
// gets a list whose resourceVersion the window cannot continue from. An event's
// previous state (selectors that stop matching give DELETED) is read when the
// reflector applies it: from the uncommitted events, else from the file.
//
// # Encoding once
//
// Each event is encoded at most once per wire format (JSON, protobuf) however many
// watchers receive it (sync.Once per form, like the cacher's cachingObject); a
// watcher writes the shared frame bytes. Only a client whose response filter
// changes an object gets bytes of its own. The objects themselves are stored only in
// the form the cloud sent (protobuf): a list or initial events in the other
// encoding converts them as it writes.
//
// # Persistence and the outage
//
// A list from the cloud is streamed into the view (store.ListWriter) and the window
// restarts at its resourceVersion once it is committed; events are applied to the
// view in batches behind the stream (never on the serving path). A write that fails
// (a full disk) marks the view incomplete, and lists are not served from it (online
// proxied, offline 503) until a relist, 30 s later, writes it again. A hub that
// starts reads only the view's info, so it serves from its first request, online or
// not; the reflector resumes from the stored resourceVersion (a 410 from the cloud
// means a relist). While the cloud is unreachable local watches stay open (no event
// is invented) and new clients list and watch the last state; when the cloud
// returns, the reflector resumes its watch and the events flow to the same
// watchers. A relist (the cloud expired the hub's resourceVersion) replaces the
// state: every open watch is ended and the window starts again at the list, so a
// client resuming from before it gets 410 and relists, as behind an apiserver whose
// watch cache was re-initialised.
//
// # What is not multiplexed
//
// GET of one object (proxied as any request, and cached per client); lists with
// resourceVersionMatch=Exact, or asking for a resourceVersion newer than the
// cache (proxied); lists and watches before the first list or stored state (the
// request takes the ordinary path). Only built-in resources can be named
// (kubescheme): their kind and protobuf form must be known.
package multiplexer
