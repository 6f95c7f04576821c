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
//	                                 watchCache (cache.go): objects + window
//	                                   |          \__ store view <Component "yurthub-multiplexer">,
//	                                   |              written in the background (persist.go)
//	            +----------------------+-----------------------+
//	            v                      v                       v
//	        watcher (JSON)       watcher (protobuf)      list (JSON/protobuf)
//	  per-client selectors and response filters, on the way out (serve.go)
//
// # What the cache holds
//
// The current objects (their bytes as the cloud sent them: the protobuf envelope) and
// a bounded window of the most recent events (Options.WindowSize, default
// DefaultWindowSize = 4096 events per resource; the apiserver's watch cache keeps
// 100 to a few thousand). A watch from a resourceVersion the window still covers
// gets exactly the events after it; one older than the window gets 410 Expired
// (the client relists, from here). The objects are small, cluster-wide and read by
// most node agents, so they are kept in memory once for every client instead of
// once per client in the cache file.
//
// # Encoding once
//
// Each event is encoded at most once per wire format (JSON, protobuf) however many
// watchers receive it (sync.Once per form, like the cacher's cachingObject); a
// watcher writes the shared frame bytes. Only a client whose response filter
// changes an object gets bytes of its own. The objects themselves are kept only in
// the form the cloud sent (protobuf): a list or initial events in the other
// encoding converts them as it writes, so the state is not kept twice.
//
// # Persistence and the outage
//
// The state is written to the cache file as the view
// {Component: Component, Resource, Namespace: "", Selector: ""}: a list replaces it,
// events are applied in batches behind the stream (never on the serving path). A hub
// that starts loads it, so it serves from its first request, online or not; the
// reflector resumes from the stored resourceVersion (a 410 from the cloud means a
// relist). While the cloud is unreachable local watches stay open (no event is
// invented) and new clients list and watch the last state; when the cloud returns,
// the reflector resumes its watch and the events flow to the same watchers. A
// relist (the cloud expired the hub's resourceVersion) replaces the state: every
// open watch is ended and the window starts again at the list, so a client
// resuming from before it gets 410 and relists, as behind an apiserver whose
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
