// Package gc is the cache's housekeeping policy (the store supplies the
// mechanisms: store.DeleteObjects, WalkCoverage, PutLocalEvent, LastRefreshed).
//
//	when                     what is dropped                                      reason label
//	start, once online       pods of this node (spec.nodeName) cached by any       deleted_in_cloud
//	                         component that the cloud's list of this node's pods
//	                         (fieldSelector spec.nodeName=<node>) no longer has
//	at start, then every     events (core/v1, events.k8s.io) whose last time is     event_expired
//	--gc-frequency (+ up to  more than EventMaxAge (1h) ago, online or offline
//	50% at random)
//	                         objects no list view covers and no GET has refreshed   not_refreshed
//	                         for ObjectMaxAge (24h), only while the cloud is
//	                         reachable (offline, what the node reads is kept)
//	an event created offline the oldest locally created events of the component     event_cap
//	                         beyond MaxLocalEvents (1000, across both Event APIs)
//
// The start-up pod GC never drops anything on an error or a timeout of the cloud's
// list, nor when the answer would remove every cached pod of this node while the
// cache holds more than FewPods of them (an empty answer from a misbehaving
// apiserver would otherwise empty the node's offline state): it logs why instead.
// OpenYurt's start-up GC compares keys of two different shapes and so never
// removes anything; this one compares namespace/name.
//
// Every drop is logged (one line per object at INFO, one summary line) and counted
// by the Count callback (node_yurthub_gc_objects_total{kind,reason}).
package gc
