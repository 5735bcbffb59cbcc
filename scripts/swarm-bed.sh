#!/usr/bin/env bash
# swarm-bed.sh - a real multi-host Docker Swarm on ONE machine, for the cluster tests.
#
# Each "host" N is a network namespace drbedN whose eth0 ($NET.(10+N)/24) is one end of a veth
# pair plugged into the host bridge drbed0 ($NET.1). In it runs its own dockerd (with its own
# containerd), reachable from the host at unix:///run/drbed/N/docker.sock. Node 1 is the Swarm
# manager. The main engine is only read: `docker save` of the test image (no registry is used).
#
#   swarm-bed.sh up [N] [--managers M] [--overlay NAME]
#                       N=2..4 engines (default 3); M=1 or 3 managers (default 1); NAME: an
#                       attachable overlay network (use endpoint_mode dnsrr: no VIPs here).
#                       Idempotent: an existing bed is reused (a dead engine started again,
#                       a smaller bed grown, roles set to M); a bigger one is refused.
#   swarm-bed.sh status                   each engine's state, then `node ls` from a manager
#   swarm-bed.sh kill N [--with-containers]  SIGKILL node N's dockerd (a lost host); its
#                       containers keep running unless --with-containers
#   swarm-bed.sh revive N                 start node N's dockerd again; waits until it has
#                       rejoined and a manager sees it Ready
#   swarm-bed.sh down                     remove everything (safe when nothing is up)
#
# up and revive print one line per node (and up one line for the overlay network):
#   node=N socket=unix:///run/drbed/N/docker.sock addr=IP swarm_node_id=ID role=manager|worker
#   network=NAME id=ID driver=overlay attachable=true
# Nodes carry the hostname drbedN and the node label drbed.node=N (for placement constraints).
# Commands take the lock /run/lock/drbed.lock one at a time; a caller that holds it for longer
# (a test session using the bed) sets DRBED_LOCKED=/run/lock/drbed.lock for its own calls.
# Needs root, docker.io and util-linux; installs iproute2 when missing.
set -euo pipefail

BR=drbed0                          # host bridge
NET=${DRBED_NET:-192.168.237}      # private /24: bridge .1, node N .(10+N); clear of the main
                                   # engine's 172.17/16 and of Swarm's overlay pool 10/8
RUN=/run/drbed                     # per node: docker.sock docker.pid daemon.json dockerd.log x/ (exec-root)
LIB=/var/lib/drbed                 # per node: data-root
LOCK=/run/lock/drbed.lock
IMAGE=${RUNNER_TEST_IMAGE:-runner-test/busybox:latest}
MAIN=${DOCKER_HOST:-unix:///var/run/docker.sock}
RULE=(FORWARD -i "$BR" -o "$BR" -m comment --comment drbed -j ACCEPT)

die()   { echo "swarm-bed: $*" >&2; exit 1; }
sock()  { echo "unix://$RUN/$1/docker.sock"; }
addr()  { echo "$NET.$((10 + $1))"; }
# the node engines take no TLS settings or context meant for the main engine
d()     { local n=$1; shift; env -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H "$(sock "$n")" "$@"; }
pid()   { cat "$RUN/$1/docker.pid" 2>/dev/null || true; }
nodes() { local f; for f in "$RUN"/[0-9]; do [ -d "$f" ] && echo "${f##*/}"; done; return 0; }   # 1..4, sorted
state() { d "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unreachable; }
nid()   { d "$1" info --format '{{.Swarm.NodeID}}'; }
role()  { d "$1" info --format '{{if .Swarm.ControlAvailable}}manager{{else}}worker{{end}}'; }
show()  { local id r; id=$(nid "$1") && r=$(role "$1") || die "node $1: engine does not answer"
          echo "node=$1 socket=$(sock "$1") addr=$(addr "$1") swarm_node_id=$id role=$r"; }
# the command name of a live (not zombie) PID; PID 1 on some machines reaps late
procname() { local c s; read -r _ c s _ 2>/dev/null <"/proc/${1:-none}/stat" && [ "$s" != Z ] && echo "$c"; }
alive() { [ "$(procname "$(pid "$1")")" = "(dockerd)" ]; }   # node N's pidfile names a live dockerd
gone()  { local _i; for _i in $(seq 100); do [ "$(procname "${1:-none}")" = "(dockerd)" ] || return 0; sleep 0.1; done; }
# PIDs whose command line contains the fixed string $1 (no pgrep: procps may be missing)
pids_with() { grep -laF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 || true; }

need_tools() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  [[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "DRBED_NET must be three octets, e.g. 192.168.237"
  command -v ip >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq iproute2 >/dev/null; } || die "iproute2 missing and cannot be installed"
  local t
  for t in docker dockerd iptables; do command -v "$t" >/dev/null || die "$t missing: install docker.io"; done
  for t in nsenter unshare setsid flock; do command -v "$t" >/dev/null || die "$t missing: install util-linux"; done
}

lock() {   # one command at a time; fd 9 must not leak into the engines (see start_engine)
  [ "${DRBED_LOCKED:-}" = "$LOCK" ] && return 0
  mkdir -p "${LOCK%/*}"; exec 9>>"$LOCK"
  flock -n 9 && return 0
  echo "swarm-bed: waiting for $LOCK (another swarm-bed.sh or a test session uses the bed)" >&2
  flock -w "${DRBED_LOCK_WAIT:-300}" 9 || die "$LOCK still held after ${DRBED_LOCK_WAIT:-300} s"
}

# Host side: the bridge, and one ACCEPT rule, because br_netfilter passes bridged frames through
# the host's FORWARD chain, whose policy the main engine has set to DROP.
net_up() {
  ip link show "$BR" >/dev/null 2>&1 || { ip link add "$BR" type bridge &&
    ip addr add "$NET.1/24" dev "$BR" && ip link set "$BR" up; } || die "cannot create bridge $BR"
  iptables -C "${RULE[@]}" 2>/dev/null || iptables -I "${RULE[@]}" || die "cannot add the FORWARD rule"
}

node_net() {   # netns drbedN with eth0 = $(addr N); its veth peer vdrbedN on the bridge
  local n=$1 ns=drbed$1
  [ -e "/run/netns/$ns" ] || ip netns add "$ns" || die "cannot create netns $ns (no network namespaces here?)"
  if ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip link set "vdrbed$n" master "$BR" up || die "cannot plug vdrbed$n into $BR"; return 0; fi
  { ip link add "vdrbed$n" type veth peer name eth0 netns "$ns" && ip link set "vdrbed$n" master "$BR" up &&
    ip -n "$ns" addr add "$(addr "$n")/24" dev eth0 && ip -n "$ns" link set eth0 up &&
    ip -n "$ns" link set lo up; } || die "cannot wire netns $ns"
}

wait_engine() {   # N [PID]: until the engine answers; fail early when PID (its wrapper) has exited
  local _i
  for _i in $(seq 120); do d "$1" version >/dev/null 2>&1 && return 0
    [ -z "${2:-}" ] || [ -n "$(procname "$2")" ] || break; sleep 0.25; done
  tail -20 "$RUN/$1/dockerd.log" >&2; die "node $1: dockerd does not answer on $(sock "$1")"
}

start_engine() {
  local n=$1 dir=$RUN/$1
  alive "$n" && { wait_engine "$n"; return 0; }
  mkdir -p "$dir" "$LIB/$n"
  # pidfiles of a killed engine: dockerd refuses to start while that PID exists, and it waits for
  # a containerd whose PID exists; both may linger as zombies
  rm -f "$dir/docker.pid"
  [ "$(procname "$(cat "$dir/x/containerd/containerd.pid" 2>/dev/null)")" = "(containerd)" ] ||
    rm -f "$dir/x/containerd/containerd.pid"
  # Everything a second engine must not share with the main one. iptables stays on: its rules land
  # in the node's own netns. key.json is the engine ID (by default /etc/docker/key.json, the main
  # engine's). cgroupfs pinned: the cgroup paths below are what reap and down clean up.
  cat >"$dir/daemon.json" <<JSON
{ "hosts": ["$(sock "$n")"], "data-root": "$LIB/$n", "exec-root": "$dir/x",
  "pidfile": "$dir/docker.pid", "deprecated-key-path": "$LIB/$n/key.json",
  "bip": "172.30.$n.1/24", "default-address-pools": [{"base": "172.31.0.0/16", "size": 24}],
  "exec-opts": ["native.cgroupdriver=cgroupfs"], "cgroup-parent": "/drbed$n",
  "containerd-namespace": "drbed$n", "containerd-plugins-namespace": "drbed$n-plugins" }
JSON
  # nsenter --net, NOT `ip netns exec` (that remounts /sys, hides the cgroups: "Devices cgroup
  # isn't mounted"); unshare --uts gives the node its own hostname. sh stays dockerd's parent and
  # reaps it at once (no zombie dockerd holding its PID), and logs how it ended. 9>&-: the engine
  # must not inherit (and hold) the lock.
  setsid nsenter --net="/run/netns/drbed$n" unshare --uts sh -c \
    "echo drbed$n >/proc/sys/kernel/hostname && dockerd --config-file $dir/daemon.json; echo dockerd exited \$?" \
    >>"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
  wait_engine "$n" $!   # setsid, nsenter and unshare exec: $! is that sh
}

start_engines() {   # in parallel: an engine takes about a second to start
  local i p fail=0 pids=()
  for i in "$@"; do node_net "$i"; start_engine "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [ "$fail" = 0 ] || die "not every engine started"
}

load_images() {   # no registry: copy the test image from the main engine
  local i p fail=0 missing=() pids=()
  for i in "$@"; do d "$i" image inspect "$IMAGE" >/dev/null 2>&1 || missing+=("$i"); done
  [ "${#missing[@]}" -gt 0 ] || return 0
  [ -s "$RUN/image.tar" ] || { docker -H "$MAIN" save -o "$RUN/image.tar.part" "$IMAGE" &&
    mv "$RUN/image.tar.part" "$RUN/image.tar"; } || die "cannot save $IMAGE from $MAIN (is it there?)"
  for i in "${missing[@]}"; do d "$i" load -q -i "$RUN/image.tar" >/dev/null & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [ "$fail" = 0 ] || die "the image load failed on some node"
}

settled() {   # N: its swarm state once it is no longer pending (a revived node reconnecting)
  local s _i
  for _i in $(seq 60); do s=$(state "$1"); [ "$s" = pending ] || break; sleep 0.25; done
  echo "$s"
}

swarm_up() {
  local n=$1 managers=$2 want i s
  s=$(settled 1)
  case $s in
    active) ;;
    inactive) d 1 swarm init --advertise-addr "$(addr 1)" >/dev/null || die "node 1: swarm init failed" ;;
    *) die "node 1: unexpected swarm state '$s'" ;;
  esac
  for i in $(seq 2 "$n"); do
    want=worker; [ "$i" -le "$managers" ] && want=manager
    s=$(settled "$i")
    case $s in
      active) ;;
      inactive) d "$i" swarm join --token "$(d 1 swarm join-token -q "$want")" \
                  --advertise-addr "$(addr "$i")" "$(addr 1):2377" >/dev/null || die "node $i: swarm join failed" ;;
      *) die "node $i: unexpected swarm state '$s'" ;;
    esac
    case $want/$(role "$i") in   # a bed reused with another --managers
      manager/worker) d 1 node promote "$(nid "$i")" >/dev/null ;;
      worker/manager) d 1 node demote "$(nid "$i")" >/dev/null ;;
    esac
  done
  for i in $(seq 1 "$n"); do d 1 node update --label-add "drbed.node=$i" "$(nid "$i")" >/dev/null ||
    die "node $i: cannot label"; done
  local _t ready reach
  for _t in $(seq 120); do   # until the manager sees every node Ready and every manager reachable
    ready=$(d 1 node ls --format '{{.Status}}' | grep -c '^Ready$' || true)
    reach=$(d 1 node ls --format '{{.ManagerStatus}}' | grep -cE '^(Leader|Reachable)$' || true)
    [ "$ready" -ge "$n" ] && [ "$reach" -ge "$managers" ] && return 0; sleep 0.25; done
  d 1 node ls >&2; die "not all $n nodes became Ready (or not all $managers managers reachable)"
}

overlay_up() {   # NAME: an attachable overlay network, made once by the manager
  local id
  id=$(d 1 network inspect --format '{{.Id}}' "$1" 2>/dev/null) ||
    id=$(d 1 network create --driver overlay --attachable --label drbed=1 "$1") ||
    die "cannot create the overlay network $1"
  echo "network=$1 id=$id driver=overlay attachable=true"
}

cmd_up() {
  local n=3 managers=1 overlay="" i
  while [ $# -gt 0 ]; do case $1 in
    --managers) [ $# -ge 2 ] || die "--managers needs a value"; managers=$2; shift 2 ;;
    --overlay) [ $# -ge 2 ] || die "--overlay needs a network name"; overlay=$2; shift 2 ;;
    [0-9]*) n=$1; shift ;;
    *) die "unknown argument '$1'" ;; esac; done
  [[ $n =~ ^[2-4]$ ]] || die "N must be 2..4"
  [[ $managers =~ ^[13]$ ]] && [ "$managers" -le "$n" ] || die "--managers must be 1 or 3 (and <= N)"
  [ -z "$overlay" ] || [[ $overlay =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad network name '$overlay'"
  need_tools; lock
  for i in $(nodes); do [ "$i" -le "$n" ] || die "a bed with node $i is up: run '$0 down' first"; done
  net_up
  mkdir -p "$RUN" "$LIB"
  start_engines $(seq 1 "$n")
  swarm_up "$n" "$managers"
  load_images $(seq 1 "$n")
  for i in $(seq 1 "$n"); do show "$i"; done
  [ -z "$overlay" ] || overlay_up "$overlay"
}

# SIGKILL what a dead engine leaves running: its containerd, the shims, and the container
# processes (all of them in the node's cgroup /drbedN; v1 has one per controller)
reap() {
  local p c
  for p in $(pids_with "$RUN/$1/x/containerd/containerd."); do kill -KILL "$p" 2>/dev/null || true; done
  for c in /sys/fs/cgroup/"drbed$1" /sys/fs/cgroup/*/"drbed$1"; do [ -d "$c" ] || continue
    find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
  done
}

cmd_kill() {
  lock
  alive "$1" || die "node $1: dockerd is not running"
  local p; p=$(pid "$1"); kill -KILL "$p"; gone "$p"
  [ "${2:-}" = --with-containers ] && reap "$1"
  echo "node=$1 killed"
}

manager_of() {   # a node whose engine answers as a manager, or nothing
  local n
  for n in $(nodes); do alive "$n" && [ "$(role "$n" 2>/dev/null)" = manager ] && { echo "$n"; return 0; }; done
  return 0
}

cmd_revive() {
  need_tools; lock
  [ -d "$RUN/$1" ] || die "node $1 does not exist (run up first)"
  node_net "$1"; start_engine "$1"
  local s _i m id st
  s=$(settled "$1"); [ "$s" = active ] || die "node $1: swarm state '$s' after revive"
  m=$(manager_of); id=$(nid "$1")
  if [ -n "$m" ]; then   # the manager has it Ready again (a node seen Down takes a heartbeat)
    for _i in $(seq 120); do st=$(d "$m" node inspect --format '{{.Status.State}}' "$id" 2>/dev/null || true)
      [ "$st" = ready ] && break; sleep 0.25; done
    [ "$st" = ready ] || die "node $1: the manager still sees it '$st'"
  fi
  show "$1"
}

cmd_status() {
  local n m
  [ -n "$(nodes)" ] || die "no bed is up"
  for n in $(nodes); do
    if alive "$n"; then echo "node=$n engine=up pid=$(pid "$n") swarm=$(state "$n")"
    else echo "node=$n engine=down"; fi
  done
  m=$(manager_of); [ -n "$m" ] || die "no reachable manager"
  d "$m" node ls
}

cmd_down() {   # a bed is thrown away, not shut down: leaving the swarm and graceful stops take
  lock         # 2-10 s per engine (busybox sleep ignores SIGTERM); SIGKILL everything instead
  local n m c ns p _i
  for n in $(nodes); do p=$(pid "$n"); alive "$n" && kill -KILL "$p"; gone "$p"; reap "$n"; done
  sleep 0.2    # the shims' children die after the shims
  for n in $(nodes); do reap "$n"; done
  # mounts under our dirs (overlay layers, shm, netns of containers), deepest first
  for m in $(awk -v r="$RUN/" -v l="$LIB/" 'index($5, r) == 1 || index($5, l) == 1 {print $5}' \
             /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
  for c in /sys/fs/cgroup/drbed[0-9]* /sys/fs/cgroup/*/drbed[0-9]*; do
    [ -d "$c" ] && { find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; }; done
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^drbed[0-9]+$/ {print $1}'); do ip netns del "$ns"; done
  for _i in $(seq 100); do ip -br link 2>/dev/null | grep -q '^vdrbed' || break; sleep 0.1; done  # netns teardown is async
  ip link del "$BR" 2>/dev/null || true
  while iptables -C "${RULE[@]}" 2>/dev/null; do iptables -D "${RULE[@]}"; done
  # --one-file-system: never follow a mount that survived into someone else's files
  rm -rf --one-file-system "$RUN" "$LIB"
  # `ip netns add` made /run/netns a mount point; undo that when nothing else lives there
  if [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then umount /run/netns 2>/dev/null || true; rmdir /run/netns 2>/dev/null || true; fi
  echo "down"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) need_tools; cmd_down ;;
  status) cmd_status ;;
  kill) [[ ${2:-} =~ ^[1-4]$ ]] && [[ ${3:-} =~ ^(|--with-containers)$ ]] && [ $# -le 3 ] ||
          die "usage: $0 kill N [--with-containers]"
        [ "$(id -u)" = 0 ] || die "must run as root"
        cmd_kill "$2" "${3:-}" ;;
  revive) [[ ${2:-} =~ ^[1-4]$ ]] && [ $# -eq 2 ] || die "usage: $0 revive N"
          cmd_revive "$2" ;;
  *) echo "usage: $0 up [N] [--managers 3] [--overlay NAME] | status | kill N [--with-containers] | revive N | down" >&2; exit 2 ;;
esac
