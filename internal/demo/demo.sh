#!/usr/bin/env bash
# make demo: the hub's whole job on one machine, narrated with commands you can copy.
#
# It builds bin/yurthub and (once, cached outside the repo) a real etcd + kube-apiserver,
# starts them on loopback (internal/testkube/cmd/kubecluster), runs yurthub in edge mode
# in front with a node identity, creates a small workload, then shows clients served
# through the hub, the cloud cut, the same clients served from the cache, the hub
# restarted offline, and the cloud back. Every process it starts is stopped by PID on
# exit or Ctrl-C; any failed step exits non-zero. internal/demo's test runs it in CI.
#
# Environment: DEMO_DIR (default: a new temp dir, removed on success), DEMO_KEEP=1 keeps
# it, DEMO_FAST=1 shortens the pauses and DEMO_RANDOM_PORTS=1 avoids the default ports
# (the test sets both), YURTHUB_KUBE_BIN_DIR skips the testdata/kube/build.sh lookup.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
NODE=edge-1

# Steps whose product feature has not landed yet: "key=issue". Such a step says so
# and shows nothing made up. Empty when the product is complete.
NOT_YET=()
# Product bugs this demo exposes, "key=what": the step shows the wrong output, says
# KNOWN BUG and goes on (any other wrong output fails). Remove an entry once fixed:
# the step then has to pass.
KNOWN_BUGS=()
BUGS_SEEN=0

if [ -t 1 ]; then B=$'\033[1m' C=$'\033[36m' N=$'\033[0m'; else B= C= N=; fi
bold() { printf '%s%s%s\n' "$B" "$*" "$N"; }
cmdline() { printf '  %s$ %s%s\n' "$C" "$*" "$N"; }
step_no=0
step() { step_no=$((step_no + 1)); echo; bold "==> $step_no. $*"; }
say() { echo "    $*"; }
# show prints a command as the reader would type it, runs it, and indents its output.
show() {
  cmdline "$*"
  local out rc=0
  out=$(eval "$@" 2>&1) || rc=$?
  [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
  LAST_OUT=$out
  return $rc
}
fail() { echo; bold "DEMO FAILED at step $step_no: $*" >&2; FAILED=1; exit 1; }
not_yet() {
  local key=$1 what=$2 k
  for k in "${NOT_YET[@]:-}"; do
    if [ "${k%%=*}" = "$key" ]; then
      say "not yet: ${k#*=} ($what has not landed in this build; nothing shown)"
      return 0
    fi
  done
  return 1
}
known_bug() {
  local key=$1 k
  for k in "${KNOWN_BUGS[@]:-}"; do
    if [ "${k%%=*}" = "$key" ]; then
      say "KNOWN BUG (shown, not hidden): ${k#*=}"
      BUGS_SEEN=$((BUGS_SEEN + 1))
      return 0
    fi
  done
  return 1
}
pause() { [ "${DEMO_FAST:-}" = 1 ] || sleep "${1:-1}"; }
# wait_for TIMEOUT_S DESCRIPTION COMMAND...: poll every 0.1 s.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local end=$(( $(date +%s) + timeout ))
  until eval "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# names prints the metadata.name of every object in a JSON list or watch stream.
names() { grep -o '"metadata":{"name":"[^"]*"' | cut -d'"' -f6 | tr '\n' ' '; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- cleanup: every process we started, by PID --------------------------------------
PIDS=()
FAILED=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    p=${PIDS[i]}
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "$rc" != 0 ] || [ "$FAILED" = 1 ]; then
    if [ -n "${DEMO_DIR:-}" ] && [ -f "$DEMO_DIR/hub.log" ]; then
      echo "--- last lines of the hub's log ($DEMO_DIR/hub.log):" >&2
      tail -n 30 "$DEMO_DIR/hub.log" >&2
    fi
    echo "demo files kept in $DEMO_DIR" >&2
  elif [ "${DEMO_KEEP:-}" = 1 ]; then
    echo "demo files kept in $DEMO_DIR"
  elif [ -n "${DEMO_OWN_DIR:-}" ]; then
    rm -rf "$DEMO_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM

# --- 0. build ---------------------------------------------------------------------------
step "Build yurthub and the test control plane"
show make -s build || fail "make build"
if [ -z "${YURTHUB_KUBE_BIN_DIR:-}" ]; then
  say "building (or finding cached) etcd, kube-apiserver and kubectl; a first build takes about 6 minutes on 2 cores and prints a progress line every 20 s"
  YURTHUB_KUBE_BIN_DIR=$(testdata/kube/build.sh | tail -n1) || fail "testdata/kube/build.sh"
fi
export YURTHUB_KUBE_BIN_DIR
say "control-plane binaries: $YURTHUB_KUBE_BIN_DIR"
go build -o bin/kubecluster ./internal/testkube/cmd/kubecluster || fail "build internal/testkube/cmd/kubecluster"

if [ -z "${DEMO_DIR:-}" ]; then
  DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/yurthub-demo.XXXXXX")
  DEMO_OWN_DIR=1
fi
mkdir -p "$DEMO_DIR"
KUBECTL=$YURTHUB_KUBE_BIN_DIR/kubectl

# --- 1. the cloud -----------------------------------------------------------------------
step "Start the cloud: etcd + kube-apiserver on loopback"
bin/kubecluster --dir "$DEMO_DIR/cloud" --node "$NODE" --quiet 2>"$DEMO_DIR/kubecluster.log" &
CLUSTER_PID=$!
PIDS+=("$CLUSTER_PID")
wait_for 180 "the apiserver (see $DEMO_DIR/kubecluster.log)" "[ -f '$DEMO_DIR/cloud/ready' ] || ! kill -0 $CLUSTER_PID"
[ -f "$DEMO_DIR/cloud/ready" ] || { cat "$DEMO_DIR/kubecluster.log" >&2; fail "kubecluster exited"; }
# shellcheck disable=SC1091
. "$DEMO_DIR/cloud/env"
ADMIN="$KUBECTL --kubeconfig=$ADMIN_KUBECONFIG"
say "kube-apiserver $APISERVER_URL (kubecluster pid $CLUSTER_PID; files in $DEMO_DIR/cloud)"
say "node identity: $NODE_PEM (CN=system:node:$NODE, O=system:nodes), cluster CA $CA_FILE"
show "$ADMIN get --raw /version | grep gitVersion" || fail "apiserver /version"

# --- 2. workload -----------------------------------------------------------------------
step "Create a small workload in the cloud (as admin, straight to the apiserver)"
ADMIN="$KUBECTL --kubeconfig=$ADMIN_KUBECONFIG"
cat >"$DEMO_DIR/workload.yaml" <<EOF
apiVersion: v1
kind: Node
metadata: {name: $NODE, labels: {kubernetes.io/hostname: $NODE}}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: yurt-hub-cfg, namespace: kube-system}
data: {cache_agents: "kubectl"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: demo}
data: {greeting: "hello from the cloud"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: demo, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.0.11]
  nodeName: $NODE
- addresses: [10.244.0.12]
  nodeName: $NODE
EOF
for p in web-a web-b db-a; do
  app=${p%-*}
  cat >>"$DEMO_DIR/workload.yaml" <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $p, namespace: demo, labels: {app: $app}}
spec:
  nodeName: $NODE
  containers: [{name: main, image: registry.k8s.io/pause:3.10}]
EOF
done
say "a Node, namespace demo with 3 pods on $NODE, a Service, its EndpointSlice, a ConfigMap,"
say "and kube-system/yurt-hub-cfg with cache_agents=kubectl (kubectl is not cached by default)"
show "$ADMIN apply -f $DEMO_DIR/workload.yaml" || fail "create the workload"

# --- 3. the hub -------------------------------------------------------------------------
step "Start yurthub in edge mode in front of it"
PROXY_PORT=10261 SERVE_PORT=10267 SECURE_PORT=10268
if [ "${DEMO_RANDOM_PORTS:-}" = 1 ] || ! port_free $PROXY_PORT || ! port_free $SERVE_PORT || ! port_free $SECURE_PORT; then
  base=$(( 20000 + RANDOM % 20000 ))
  while ! port_free $base || ! port_free $((base + 6)) || ! port_free $((base + 7)); do base=$((base + 10)); done
  PROXY_PORT=$base SERVE_PORT=$((base + 6)) SECURE_PORT=$((base + 7))
  say "the default ports 10261/10267/10268 are taken; using $PROXY_PORT/$SERVE_PORT/$SECURE_PORT"
fi
NETNS=""
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then NETNS=$(ip netns identify $$ 2>/dev/null || true); fi
if [ -n "$NETNS" ]; then
  # Root in a network namespace of its own (ip netns exec NAME make demo): the hub may
  # create its dummy interface and iptables rules there without touching the host.
  NETFLAGS=""
else
  NETFLAGS="--enable-dummy-if=false --enable-iptables=false"
fi
HUB_ARGS=(--server-addr="$APISERVER_URL" --node-name="$NODE"
  --bootstrap-mode=kubeletcertificate --kubelet-ca-file="$CA_FILE" --kubelet-client-certificate="$NODE_PEM"
  --root-dir="$DEMO_DIR/hub" --disk-cache-path="$DEMO_DIR/hub/openyurt-cache"
  --proxy-port="$PROXY_PORT" --serve-port="$SERVE_PORT" --proxy-secure-port="$SECURE_PORT"
  $NETFLAGS --heartbeat-interval-seconds=2)
HUB="http://127.0.0.1:$PROXY_PORT"
HUBSRV="http://127.0.0.1:$SERVE_PORT"
start_hub() {
  local t0
  t0=$(date +%s%N)
  bin/yurthub "${HUB_ARGS[@]}" >>"$DEMO_DIR/hub.log" 2>&1 &
  HUB_PID=$!
  PIDS+=("$HUB_PID")
  wait_for 30 "the hub's /v1/readyz" "curl -sf $HUBSRV/v1/readyz"
  say "hub pid $HUB_PID ready in $(ms_since "$t0") ms (log $DEMO_DIR/hub.log)"
}
cmdline "bin/yurthub ${HUB_ARGS[*]} &"
if [ -z "$NETNS" ]; then
  say "(--enable-dummy-if/--enable-iptables are off: this demo does not touch the host's network;"
  say " as root, 'ip netns add demo && ip netns exec demo ip link set lo up && ip netns exec demo make demo' turns them on)"
fi
start_hub
if [ -n "$NETNS" ]; then
  say "in network namespace $NETNS the hub sets up its iptables ACCEPT rules and a dummy interface (169.254.2.1) its proxy also listens on:"
  show "iptables -S | grep -i yurthub | head -n 4" || fail "the hub's iptables rules"
  for _ in $(seq 50); do
    ip -br addr show yurthub-dummy0 2>/dev/null | grep -q 169.254.2.1 && break
    grep -q "cannot ensure the dummy interface" "$DEMO_DIR/hub.log" && break
    sleep 0.1
  done
  if ip -br addr show yurthub-dummy0 2>/dev/null | grep -q 169.254.2.1; then
    show "ip -br addr show yurthub-dummy0" || true
    wait_for 15 "the proxy on the dummy IP" "curl -sf -o /dev/null -A kubelet/v1.36.3 http://169.254.2.1:$PROXY_PORT/api/v1/namespaces/demo/configmaps/web-config"
    show "curl -sSf -A kubelet/v1.36.3 http://169.254.2.1:$PROXY_PORT/api/v1/namespaces/demo/configmaps/web-config | grep -o '\"greeting\":\"[^\"]*\"'" || fail "proxy on the dummy IP"
  elif grep -q "cannot ensure the dummy interface" "$DEMO_DIR/hub.log"; then
    say "this kernel cannot create the dummy interface; the hub says why and keeps serving on its other addresses:"
    show "grep 'cannot ensure the dummy interface' $DEMO_DIR/hub.log | head -n1 | cut -c1-240" || true
  else
    fail "neither a dummy interface yurthub-dummy0 nor the hub's reason for lacking one"
  fi
fi
show curl -sS "$HUBSRV/v1/readyz" || fail "readyz"
healthy() { curl -sf "$HUBSRV/metrics" | grep -q "^node_yurthub_server_healthy_status{server=\"$APISERVER_URL\"} $1"; }
wait_for 30 "the hub to count the apiserver healthy" "healthy 1"
show "curl -s $HUBSRV/metrics | grep ^node_yurthub_server_healthy_status   # 1: the cloud answers its heartbeats" || true
cat >"$DEMO_DIR/hub.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster:
    server: $HUB
contexts:
- name: hub
  context:
    cluster: hub
current-context: hub
EOF
say "clients talk plain HTTP to $HUB; the hub forwards with the node's certificate."
say "kubectl through the hub: $KUBECTL --kubeconfig=$DEMO_DIR/hub.kubeconfig ..."
HUBCTL="$KUBECTL --kubeconfig=$DEMO_DIR/hub.kubeconfig --cache-dir=$DEMO_DIR/kubectl-cache"
if ! not_yet cache "the cache tee (internal/cachemgr)"; then
  wait_for 30 "the hub to read cache_agents from kube-system/yurt-hub-cfg" "grep 'cache agents set' '$DEMO_DIR/hub.log' | grep -q kubectl"
  show "grep 'cache agents set' $DEMO_DIR/hub.log | tail -n1 | cut -c1-200" || true
fi

# --- 4. clients through the hub --------------------------------------------------------
step "Clients list and watch through the hub (online)"
say "kubelet lists its node's pods (component = User-Agent up to the first '/'):"
show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE' | names" || fail "kubelet list through the hub"
for p in web-a web-b db-a; do grep -qw "$p" <<<"$LAST_OUT" || fail "pod $p missing from kubelet's list"; done
say "kube-proxy lists services and endpointslices:"
show "curl -sSf -A kube-proxy/v1.36.3 '$HUB/api/v1/services' | names" || fail "kube-proxy services"
grep -qw web <<<"$LAST_OUT" || fail "service web missing"
show "curl -sSf -A kube-proxy/v1.36.3 '$HUB/apis/discovery.k8s.io/v1/endpointslices' | names" || fail "kube-proxy endpointslices"
grep -qw web-1 <<<"$LAST_OUT" || fail "endpointslice web-1 missing"
show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/namespaces/demo/configmaps/web-config' | grep -o '\"greeting\":\"[^\"]*\"'" || fail "kubelet get configmap"
say "kubectl through the hub:"
show "$HUBCTL get pods,services,configmaps -n demo" || fail "kubectl through the hub"
grep -qw web-a <<<"$LAST_OUT" || fail "kubectl through the hub did not show web-a"
say "kubectl's default output is a Table the apiserver renders; the hub caches objects, not renderings."
say "Reading the objects (-o name, -o yaml, as scripts and controllers do) is what gets cached for kubectl:"
show "$HUBCTL get pods,services,configmaps -n demo -o name" || fail "kubectl -o name through the hub"
grep -q pod/web-a <<<"$LAST_OUT" || fail "kubectl -o name through the hub did not show pod/web-a"

say "two long-running watches through the hub, as kubelet and kube-proxy run them:"
KWATCH="curl -sSN -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE&watch=true&allowWatchBookmarks=true'"
PWATCH="curl -sSN -A kube-proxy/v1.36.3 '$HUB/apis/discovery.k8s.io/v1/endpointslices?watch=true'"
cmdline "$KWATCH > kubelet.watch &"
eval "$KWATCH" >"$DEMO_DIR/kubelet.watch" 2>&1 &
KWATCH_PID=$!; PIDS+=("$KWATCH_PID")
cmdline "$PWATCH > kube-proxy.watch &"
eval "$PWATCH" >"$DEMO_DIR/kube-proxy.watch" 2>&1 &
PWATCH_PID=$!; PIDS+=("$PWATCH_PID")
wait_for 10 "the kubelet watch's initial events" "grep -q db-a '$DEMO_DIR/kubelet.watch'"
say "a new pod in the cloud reaches the kubelet's watch through the hub:"
show "$ADMIN -n demo run web-c --image=registry.k8s.io/pause:3.10 --labels=app=web --overrides='{\"spec\":{\"nodeName\":\"$NODE\"}}'" || fail "create web-c"
wait_for 10 "web-c on the kubelet watch" "grep -q '\"name\":\"web-c\"' '$DEMO_DIR/kubelet.watch'"
show "names < $DEMO_DIR/kubelet.watch" || true

# --- 5. hubctl inspect -----------------------------------------------------------------
step "What the hub has cached: hubctl inspect (one bbolt file)"
show bin/hubctl inspect --root-dir="$DEMO_DIR/hub" || fail "hubctl inspect"
if ! not_yet cache "the cache tee (internal/cachemgr)"; then
  for c in kubelet kubectl; do
    grep -qw "$c" <<<"$LAST_OUT" || fail "hubctl inspect shows nothing cached for $c"
  done
  say "kube-proxy's services and endpointslices are --pool-scope-resources: one upstream list/watch"
  say "per resource (component yurthub-multiplexer) serves every local client of them."
  grep -q "yurthub-multiplexer.*endpointslices" <<<"$LAST_OUT" || fail "hubctl inspect shows no multiplexed endpointslices"
fi
pause 1

# --- 6. cut the cloud --------------------------------------------------------------------
step "Stop the apiserver (the cloud link is gone)"
show "kill -USR1 $CLUSTER_PID   # kubecluster stops kube-apiserver; etcd keeps running"
t_cut=$(date +%s%N)
wait_for 60 "the hub to notice the cloud is gone" "healthy 0"
say "the hub noticed in $(ms_since "$t_cut") ms:"
show "curl -s $HUBSRV/metrics | grep ^node_yurthub_server_healthy_status" || true
wait_for 30 "the apiserver to stop" "grep -q stopped '$DEMO_DIR/cloud/apiserver.state'"
if show "$ADMIN get pods -n demo --request-timeout=2s"; then fail "the apiserver still answers"; fi

# --- 7. served from the cache ---------------------------------------------------------
step "The same clients are still served, from the cache"
if ! not_yet offline "the local proxy (internal/localproxy)"; then
  show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE' | names" || fail "kubelet list offline"
  for p in web-a web-b web-c db-a; do grep -qw "$p" <<<"$LAST_OUT" || fail "pod $p missing from kubelet's offline list"; done
  show "curl -sSf -A kube-proxy/v1.36.3 '$HUB/apis/discovery.k8s.io/v1/endpointslices' | names" || fail "kube-proxy endpointslices offline"
  grep -qw web-1 <<<"$LAST_OUT" || fail "endpointslice web-1 missing offline"
  show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/namespaces/demo/configmaps/web-config' | grep -o '\"greeting\":\"[^\"]*\"'" || fail "kubelet get configmap offline"
  for w in "kubelet:$KWATCH_PID" "kube-proxy:$PWATCH_PID"; do
    if kill -0 "${w#*:}" 2>/dev/null; then
      say "the ${w%%:*} watch opened online is still open (no made-up events)"
    else
      say "the ${w%%:*} watch opened online ended with the cloud's connection; a real client re-watches, as the next step shows"
    fi
  done

  step "A restarted client syncs from the cache"
  kill "$KWATCH_PID" 2>/dev/null || true
  say "kubelet restarts: it lists, then watches from the list's resourceVersion"
  show "curl -sSf -A kubelet/v1.36.3 -o $DEMO_DIR/relist.json -w '%{http_code} %{size_download} bytes\n' '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE'" || fail "kubelet relist offline"
  rv=$(grep -o '"resourceVersion":"[0-9]*"' "$DEMO_DIR/relist.json" | head -n1 | cut -d'"' -f4)
  say "list resourceVersion $rv (what the cache was synced at); pods: $(names <"$DEMO_DIR/relist.json")"
  [ -n "$rv" ] || fail "the offline list has no resourceVersion"
  eval "curl -sSN -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE&watch=true&resourceVersion=$rv'" >"$DEMO_DIR/kubelet2.watch" 2>&1 &
  KWATCH_PID=$!; PIDS+=("$KWATCH_PID")
  sleep 1
  kill -0 "$KWATCH_PID" 2>/dev/null || fail "the restarted kubelet's watch was refused offline: $(cat "$DEMO_DIR/kubelet2.watch")"
  say "its watch from rv $rv is open (pid $KWATCH_PID)"

  step "kubectl through the hub, offline (discovery and lists from the cache)"
  show "$HUBCTL get pods,services,configmaps -n demo" || fail "kubectl through the hub offline"
  if ! grep -qw web-a <<<"$LAST_OUT"; then
    grep -q "No resources found" <<<"$LAST_OUT" && known_bug kubectl-table || fail "kubectl offline did not show web-a"
  fi
  say "(kubectl asks for a Table; offline the hub answers with the cached objects, which kubectl prints itself."
  say " The cache is per component: kubectl sees what it last read, without web-c, created after; kubelet, which watches, has web-c.)"
  say "with an empty discovery cache too (a kubectl that never ran online: discovery comes from the hub's cache):"
  show "$KUBECTL --kubeconfig=$DEMO_DIR/hub.kubeconfig --cache-dir=$DEMO_DIR/kubectl-cache-new get pods -n demo" || fail "kubectl offline with an empty discovery cache"
  if ! grep -qw web-a <<<"$LAST_OUT"; then
    grep -q "No resources found" <<<"$LAST_OUT" && known_bug kubectl-table || fail "kubectl offline (empty discovery cache) did not show web-a"
  fi
fi

# --- 8. hub restart offline ------------------------------------------------------------
step "Restart the hub itself while offline"
cmdline "kill $HUB_PID   # SIGTERM: graceful stop"
kill "$HUB_PID"
for _ in $(seq 150); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$HUB_PID" 2>/dev/null && fail "the hub did not stop within 15 s"
show "bin/hubctl inspect --root-dir=$DEMO_DIR/hub | head -n 6   # the stopped hub's file, read-only" || fail "hubctl inspect on a stopped hub"
start_hub
if ! not_yet offline "the local proxy (internal/localproxy)"; then
  show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE' | names" || fail "kubelet list after an offline restart"
  for p in web-a web-b web-c db-a; do grep -qw "$p" <<<"$LAST_OUT" || fail "pod $p missing after the offline restart"; done
  show "$HUBCTL get services -n demo" || fail "kubectl after the offline restart"
  if ! grep -qw web <<<"$LAST_OUT"; then
    grep -q "No resources found" <<<"$LAST_OUT" && known_bug kubectl-table || fail "kubectl after the offline restart did not show service web"
  fi
fi

# --- 9. the cloud comes back ---------------------------------------------------------------
step "Start the apiserver again: everything converges"
$ADMIN version >/dev/null 2>&1 && fail "apiserver unexpectedly up"
show "kill -USR2 $CLUSTER_PID   # kubecluster starts kube-apiserver on the same port"
wait_for 120 "the apiserver to start" "grep -q running '$DEMO_DIR/cloud/apiserver.state'"
t_back=$(date +%s%N)
wait_for 60 "the hub to notice the cloud is back" "healthy 1"
say "the hub noticed in $(ms_since "$t_back") ms"
if ! not_yet offline "the local proxy (internal/localproxy)"; then
  wait_for 30 "the offline watch to end so the client relists" "! kill -0 $KWATCH_PID"
  say "the watch opened offline was ended by the hub, so kubelet relists from the cloud"
fi
say "a change made in the cloud meanwhile reaches the node's clients:"
show "$ADMIN -n demo delete pod db-a --grace-period=0 --force 2>/dev/null" || fail "delete db-a"
show "curl -sSf -A kubelet/v1.36.3 '$HUB/api/v1/pods?fieldSelector=spec.nodeName%3D$NODE' | names" || fail "kubelet list after the cloud returned"
grep -qw db-a <<<"$LAST_OUT" && fail "db-a still listed"
grep -qw web-c <<<"$LAST_OUT" || fail "web-c missing after the cloud returned"
show "bin/hubctl inspect --root-dir=$DEMO_DIR/hub" || fail "hubctl inspect"

echo
if [ "$BUGS_SEEN" -gt 0 ]; then
  bold "Demo complete: every step passed, except $BUGS_SEEN showing of a KNOWN BUG (see above)."
else
  bold "Demo complete: every step passed."
fi
