// Package localproxy is the offline path: the http.Handler the proxy hands a
// request to when no cloud apiserver is healthy (and when a proxied request cannot
// connect to any). It answers from the cache (internal/store) exactly what the
// cache saw, per component (User-Agent), under the keys the cache manager wrote
// (internal/cachekey: the naming contract).
//
//	verb        answer
//	get         the cached object, JSON or protobuf as the Accept header asks (stored
//	            bytes as they are when the encodings agree, converted through
//	            client-go's types when not); a transformed form (kubectl's
//	            as=Table) falls back to the plain JSON the same header also accepts;
//	            404 Status when absent (and the component has this resource cached,
//	            so the hub knows the set; otherwise 503: it cannot tell); 406 when
//	            nothing acceptable can be produced.
//	list        the component's view for this namespace+selector; when that exact
//	            view was never listed, a wider view of the same component (a subset
//	            of the selector terms, and/or all namespaces) filtered here: labels,
//	            and fields by path (metadata.*, spec.nodeName, status.phase, ...).
//	            Answered with the view's stored list resourceVersion and its items
//	            from one read transaction, encoded into an unlinked 0600 spool file
//	            next to the cache and sent after the transaction ended (spool.go, internal/spool:
//	            a slow client holds no transaction, no list is held in memory, and
//	            protobuf's length prefix is the spool's size; a full disk falls back
//	            to streaming from the transaction under a one-minute write deadline;
//	            a watch-list's initial events the same). Never synced => 503 saying so (never an empty
//	            list); marked incomplete by the cache manager => 503 with the reason
//	            (never a partial list); kubelet's pod list with no items => 404 (an
//	            empty list would make kubelet stop every pod).
//	watch       held open; the only events after the initial state are the
//	            EndpointSlices/Endpoints an offline pod status write repaired
//	            (repair.go), as MODIFIED. sendInitialEvents=true (watch-list)
//	            or resourceVersion ""/"0": the cached objects as ADDED, then (for
//	            watch-list) the BOOKMARK annotated k8s.io/initial-events-end=true, so
//	            client-go >= 1.32 informers start offline. A resourceVersion older
//	            than the view's gets 410 Expired (the client relists from the cache).
//	            Bookmarks every Options.BookmarkInterval when allowed. Ends at
//	            timeoutSeconds (else after a random time in [MinRequestTimeout, 2*MinRequestTimeout)), on Close, and within
//	            Options.HealthPollInterval of the cloud being healthy again, so the
//	            client re-watches the cloud from its last resourceVersion and gets
//	            what changed during the outage (a watch that delivered a repair ends
//	            with 410 Expired instead, so its client relists the cloud's objects).
//	create      events (core/v1 and events.k8s.io/v1): stored in the component's
//	            cache with a fresh uid (201); a second create of the same name is 409.
//	            They are NOT forwarded when the cloud returns: they are kept, for
//	            offline reads and hubctl, until the cache's event GC drops them by
//	            age (REFERENCE section 7), at most gc.MaxLocalEvents per component
//	            (the oldest dropped in the same transaction as the new one). Replaying hours-old events would mislead
//	            more than help, and kubelet reports current state again on its own.
//	            Service-account token requests: see token.go (the last token the cloud
//	            issued for that account and audiences, while valid; else a
//	            placeholder token, placeholder_token.go).
//	            Any other create: 503 Status saying the cloud is unreachable.
//	update,     kubelet's nodes/<n>/status and pods/<n>/status (update, strategic
//	patch       merge / merge / JSON patch) and its Lease in kube-node-lease, and
//	            event patches (the recorder's count increments): applied to the
//	            cached copy and answered with the result. The status subresource
//	            changes only status; a UID precondition that does not match is 409;
//	            an update from a resourceVersion older than the cached one is 409.
//	            The object keeps the cloud's resourceVersion (the hub never invents
//	            one): store.UpdateObject writes it in place, so the cloud's next
//	            version (always higher) replaces the local copy and nothing older
//	            ever does. Server-side apply: 415. Anything else: 503 Status.
//	delete      503 Status: deletions are the cloud's to decide (a 403 would tell
//	            the client it may never do it; a 503 tells it to retry later).
//	discovery   /version, /api, /api/v1, /apis, /apis/<g>, /apis/<g>/<v> from the
//	            cached responses in the form asked for (aggregated or legacy), from
//	            the requesting component's cache, else from another component's.
//
// Starting offline: nothing here waits for the cloud or reads the cache up front;
// a hub restarted with the cloud unreachable serves its warm cache from the first
// request, and with an empty cache answers every request with a Status that says
// what is missing (never an empty list that would look like "nothing exists").
//
// Switching back: the proxy routes each request by backend health; the daemon gives
// this handler the load balancer's AnyHealthy (SetCloudHealthy) so local watches end
// once the cloud is back. The cache only accepts newer resourceVersions from the
// cloud (store), so recovery never lets an older object overwrite a newer one.
package localproxy
