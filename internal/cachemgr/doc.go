// Package cachemgr is the hub's cache manager: it decides which responses are
// cached (REFERENCE section 5) and tees them into internal/store while they stream
// to the client.
//
// # Who is cached
//
// Components (the User-Agent cut at "/", see requestinfo) in DefaultCacheAgents,
// plus those in the cache_agents key of ConfigMap kube-system/yurt-hub-cfg
// (comma-separated; "*" = every component), watched live by WatchConfig over the
// hub's own upstream connection. Requests: get / list / watch of any resource,
// CRDs included; the status subresource is cached as the object itself; never
// CSRs, access/token reviews, other subresources, or pods without spec.nodeName.
// Discovery GETs (/version, /api, /api/<v>, /apis, /apis/<g>, /apis/<g>/<v>) are
// cached with PutRaw under cachekey.Raw. Transformed responses (as=Table,
// PartialObjectMetadata) are not cached.
//
// # How a response is teed
//
// The proxy calls CacheResponse from ModifyResponse. It replaces resp.Body with a
// reader that returns the upstream bytes to the client unchanged (gzip included)
// and pushes a copy into a bounded queue (Options.QueueBytes). It never waits for
// the cache: if the queue is full the cache copy is dropped and the view is
// marked incomplete (Stats.Overflows, a warning log). A goroutine per response
// gunzips when needed and decodes incrementally. One exception: a small
// single-object response of known size (a GET or a write's response, Content-Length
// up to 256 KiB, not gzipped) is recorded whole as it passes (recordBody) and
// decoded by a goroutine started once the client has read it all, so nothing waits
// on a queue or wakes a decoder while the client is being answered; a body closed
// early, cut, or longer than its Content-Length is not cached.
//
//   - get: the body (at most Options.MaxObjectBytes; JSON is validated) =>
//     store.PutObject.
//   - list: JSON is read by a single-pass validating stream reader (internal/wire,
//     no encoding/json on this path): the whole body is checked as it arrives
//     (json.Valid's grammar, nesting at most 10000 deep), each item is cut out of
//     the read buffer once complete (at most Options.MaxObjectBytes) and only its
//     metadata fields and a pod's spec.nodeName are read, from member spans the
//     reader recorded while validating. Protobuf is walked field by field through
//     the envelope's List message (protowire), one item at a time. Items go to a store.ListWriter
//     (which spools to disk) and are committed at the list's resourceVersion, so a
//     10k-object list is never held in memory. JSON items get kind/apiVersion put
//     first (typed list items carry none) and protobuf items get the k8s envelope,
//     so a cached item is the same document a GET returns. Paginated lists
//     (limit/continue) are committed after the last page.
//   - watch: events (a JSON stream, read by the same validating reader, each event
//     handed out as soon as its closing brace arrives and bounded by
//     Options.MaxObjectBytes; or length-prefixed protobuf WatchEvent frames) are
//     applied with store.ApplyEvents by the view's one writer goroutine, which
//     batches what piles up while the previous call is in flight. Identical
//     watches of one view (same component, resource, namespace, selector) decode
//     and write each event once: the first stream to deliver it claims it, the
//     others pass over it (a protobuf frame undecoded, by a hash of its bytes), and
//     the view's events are written in claim order (onewriter.go). With sendInitialEvents=true
//     (watch-list) the events before the k8s.io/initial-events-end bookmark are the
//     whole state and replace the view through a ListWriter committed at that
//     bookmark's resourceVersion; later events apply normally.
//
// JSON members are matched by exact name in any order, unknown ones are skipped,
// the last of a repeated member wins; list items and watch objects must be JSON
// objects. A malformed or truncated list body is an error and nothing of it is
// committed; a watch stream cut between or inside events ends cleanly after the
// events before the cut. A panic while reading an object's fields is returned as
// an error, never propagated to the proxy.
//
// A stream that fails to decode or falls behind marks its view incomplete
// (store.MarkIncomplete); a watch cut by the network is not a failure (the
// cache is at the last applied event, which the client's next watch continues
// from). Every other end of a watch or list tee loses something the client
// received and marks the view: events dropped past Options.MaxPendingEvents, a
// queue overflow, a store error (a full disk included), a watch-list initial
// state or a list that could not be committed, the hub closing with events
// pending. When the mark itself cannot be written (full disk) it is owed: no
// event is applied to that view until the mark is written or a new list replaces
// it (diskfull.go). The offline path answers 503 with the reason for such a view.
//
// # Keys (shared with the offline path)
//
// internal/cachekey (Object, List, Selector, Raw) derives store keys from a
// request; the offline path uses the same package.
//
// # What the offline path can rely on
//
//   - An object's Data is one full document as a GET returns it: JSON with kind
//     and apiVersion first, or the k8s protobuf envelope ("k8s\x00" + Unknown with
//     apiVersion/kind). Its encoding is the one the component asked for; CRDs are
//     always JSON. A component that switches encoding refreshes its views on its
//     next list.
//   - A view's ResourceVersion is the list's, then the newest event or bookmark
//     applied. Complete is false when the view was only watched, or a stream fell
//     behind / failed (Reason says why): serve it, but say it may be incomplete.
//   - Views are per component, resource, namespace ("" = all) and canonical
//     selector; a list with fieldSelector metadata.name=x is its own view.
//   - Not cached, so never served offline from here: pods without spec.nodeName,
//     lists with resourceVersionMatch=Exact, deprecated /watch/ path watches,
//     responses in a transformed form (as=Table, PartialObjectMetadata), CBOR,
//     protobuf discovery, subresources other than status.
//
// # Memory
//
// Per teed response: at most Options.QueueBytes of queued bytes (compressed bytes
// when the apiserver gzips, which it does for large lists a Go client asks for),
// one item being decoded, and for a watch at most Options.MaxPendingEvents decoded
// events waiting for the store. Across all responses together, one budget
// (Options.TeedBytes, default 64 MiB) bounds the queued bytes plus the bytes of
// pending events: a stream that would pass it is abandoned like one past its own
// queue limit (the client keeps streaming; the view is left to be relisted), so the
// worst case is that number, not QueueBytes times the streams. Metrics
// node_yurthub_cache_teed_bytes and ..._teed_bytes_high_water show it
// (TestTeedBytesBudget). A list is spooled by the store to a temporary file and
// committed in chunks of 2 MiB (store staging.go), never held whole.
package cachemgr
