// Package ota serves the hub server's node endpoints (OpenYurt v1.7's
// pkg/yurthub/otaupdate rules and status codes, with every refusal saying why):
//
//	GET  /pods                                             the node's pods from the cache (PodList, JSON)
//	POST /openyurt.io/v1/namespaces/{ns}/pods/{pod}/upgrade    apply the pending update of one pod
//	POST /openyurt.io/v1/namespaces/{ns}/pods/{pod}/imagepull  ask for its new images to be pulled first
//
// GET /pods answers from the cache, online and offline: the Pods cached for kubelet
// (its list views and its GETs) whose spec.nodeName is this node, in the form the
// apiserver gave them (protobuf-cached ones converted), sorted by namespace/name,
// with the resourceVersion of kubelet's pod view. A node whose kubelet never listed
// its pods through the hub gets 503 saying so, never an empty list.
//
// The two POSTs need the cloud (503 with the reason while no apiserver is healthy)
// and check the pod there, as OpenYurt does, before doing anything:
//
//	refusal                                                            code
//	the pod does not exist in the cloud / is being deleted              403
//	the pod is bound to another node                                     403
//	its PodNeedUpgrade condition is not True (no update available)       403
//	owner is neither a DaemonSet nor a Node (static pod) / has no owner  400
//	static pod: name not <name>-<node>, or ConfigMap yurt-static-set-<name> missing   403
//	imagepull on a static pod (OpenYurt pre-pulls for DaemonSet pods only)            400
//	the cloud failed while checking or applying                          503 / 500
//
// upgrade of a DaemonSet pod deletes it (precondition: its UID, so a pod recreated
// meanwhile is never deleted by mistake); the DaemonSet controller (OnDelete
// strategy, as OpenYurt's OTA mode requires) creates it again at the new revision.
// upgrade of a static pod (YurtStaticSet) writes the manifest held in ConfigMap
// yurt-static-set-<name> to <manifest dir>/<key>.yaml atomically (a temporary file
// in the same directory, fsync, rename, fsync of the directory), after copying the
// old one to <backup dir>/<key>.yaml.bak; kubelet picks the new file up.
// imagepull sets the pod's PodImageReady condition to False with reason
// WaitPullImage and message "controllerrevision: <revision>" (the revision of its
// PodNeedUpgrade condition), which yurt-manager's image-preheat controller turns
// into a pull Job on this node; an image already pulled or already requested for
// that revision is answered 200 without a change.
package ota
