#!/usr/bin/env bash
# cluster.sh — replicated registries on loopback, for trying Kite against
# a ZooKeeper ensemble or an etcd cluster by hand (the Go tests start
# their own through internal/quorum; scripts/services.sh keeps running
# the single-node servers make test uses).
#
#   up [zk|etcd|all]      start a 3-node ZooKeeper ensemble and/or a
#                         3-member etcd cluster, wait until every member
#                         serves, write .kite/cluster.env:
#                             export KITE_ZK_CLUSTER=127.0.0.1:2191,127.0.0.1:2192,127.0.0.1:2193
#                             export KITE_ETCD_CLUSTER=127.0.0.1:2391,127.0.0.1:2393,127.0.0.1:2395
#   down [zk|etcd|all]    stop the members this script started, remove their data
#   kill NAME             SIGKILL one member (zk1..zk3, etcd1..etcd3): a crashed host
#   stop NAME             SIGTERM one member
#   start NAME            start a killed/stopped member again (same ports and data)
#   status                each member: pid, client address, leader/follower
#
# Ports (override with the environment): ZooKeeper clients
# KITE_CLUSTER_ZK_PORT (2191)+0..2, quorum +700, election +1700;
# etcd clients KITE_CLUSTER_ETCD_PORT (2391)+0,2,4 and peers +1,3,5.
# None clashes with services.sh's 2181/2379/2380. A busy port is an
# error (the script does not pick others: the addresses are meant to be
# typed). Loopback only. Needs bash, coreutils and the Debian packages
# zookeeper and etcd-server (installed with apt-get when missing).
set -euo pipefail

cd "$(dirname "$0")/.."
STATE=.kite/cluster
mkdir -p "$STATE"
ZK_PORT=${KITE_CLUSTER_ZK_PORT:-2191}
ETCD_PORT=${KITE_CLUSTER_ETCD_PORT:-2391}
N=3

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
ensure_pkg() {
  pkg_installed "$1" && return 0
  command -v apt-get >/dev/null || die "package $1 is missing and apt-get is not available"
  local sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  log "installing $1 (apt-get)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq update >"$STATE/apt.log" 2>&1 &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq install -y \
      --no-install-recommends "$1" >>"$STATE/apt.log" 2>&1 || { tail -n 30 "$STATE/apt.log" >&2; die "apt-get install $1 failed"; }
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
tcp_ask() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf '%b' "$2" >&3; timeout 2 cat <&3 ) 2>/dev/null
}
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
state() { cat "$STATE/$1" 2>/dev/null || true; }
# ours: pid $1 alive and its command line names our data root.
ours() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$(state root)"; }

zk_client() { echo $((ZK_PORT + $1 - 1)); }
etcd_client() { echo $((ETCD_PORT + 2 * ($1 - 1))); }

# role NAME prints leader/follower, or nothing while the member does not serve.
role() {
  local name=$1 i=${1: -1}
  case $name in
    zk*) tcp_ask "$(zk_client "$i")" srvr | sed -n 's/^Mode: //p' ;;
    etcd*)
      local out; out=$(tcp_ask "$(etcd_client "$i")" 'POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}')
      local me leader
      me=$(grep -o '"member_id":"[0-9]*"' <<<"$out" | grep -o '[0-9]\+' || true)
      leader=$(grep -o '"leader":"[0-9]*"' <<<"$out" | grep -o '[0-9]\+' || true)
      if [ -n "$me" ] && [ -n "$leader" ] && [ "$leader" != 0 ]; then
        [ "$me" = "$leader" ] && echo leader || echo follower
      fi ;;
  esac
}

root_dir() {
  local r; r=$(state root)
  if [ -z "$r" ] || [ ! -d "$r" ]; then
    r=$(mktemp -d /tmp/kite-cluster.XXXXXX); echo "$r" >"$STATE/root"
  fi
  echo "$r"
}

java_bin() {
  command -v java && return
  local j; j=$(ls /usr/lib/jvm/*/bin/java 2>/dev/null | head -n1)
  [ -n "$j" ] && echo "$j" && return
  die "java not found (the zookeeper package pulls a JRE)"
}

# prepare NAME writes a member's configuration (once) and its command line.
prepare() {
  local name=$1 i=${1: -1} root; root=$(root_dir)
  local dir="$root/$name"; mkdir -p "$dir"
  case $name in
    zk*)
      if [ ! -f "$dir/zoo.cfg" ]; then
        mkdir -p "$dir/data"; echo "$i" >"$dir/data/myid"
        {
          printf 'tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\n' "$dir/data" "$(zk_client "$i")"
          printf 'admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\nmaxSessionTimeout=60000\nmaxClientCnxns=0\n'
          for j in $(seq $N); do
            printf 'server.%d=127.0.0.1:%d:%d\n' "$j" $(( $(zk_client "$j") + 700 )) $(( $(zk_client "$j") + 1700 ))
          done
        } >"$dir/zoo.cfg"
      fi
      CMD=("$(java_bin)" -Xmx64m -Xms16m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData
           "-Djava.io.tmpdir=$dir" -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
           org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg")
      PORTS=("$(zk_client "$i")" $(( $(zk_client "$i") + 700 )) $(( $(zk_client "$i") + 1700 )))
      ;;
    etcd*)
      local initial="" j
      for j in $(seq $N); do initial+="${initial:+,}etcd$j=http://127.0.0.1:$(( $(etcd_client "$j") + 1 ))"; done
      local c="http://127.0.0.1:$(etcd_client "$i")" p="http://127.0.0.1:$(( $(etcd_client "$i") + 1 ))"
      CMD=(etcd --name "$name" --data-dir "$dir/data" --listen-client-urls "$c" --advertise-client-urls "$c"
           --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$initial"
           --initial-cluster-token "kite-cluster-$(basename "$root")" --initial-cluster-state new
           --logger zap --log-outputs stderr)
      PORTS=("$(etcd_client "$i")" $(( $(etcd_client "$i") + 1 )))
      ;;
    *) die "unknown member $name (zk1..zk$N, etcd1..etcd$N)" ;;
  esac
  DIR=$dir
}

start_member() {
  local name=$1
  [[ $name =~ ^(zk|etcd)[1-$N]$ ]] || die "unknown member $name (zk1..zk$N, etcd1..etcd$N)"
  if ours "$(state "$name.pid")"; then log "$name already running (pid $(state "$name.pid"))"; return; fi
  prepare "$name"
  local p; for p in "${PORTS[@]}"; do port_busy "$p" && die "port $p for $name is busy (set KITE_CLUSTER_ZK_PORT / KITE_CLUSTER_ETCD_PORT)"; done
  case "$(uname -m)" in aarch64|arm64) export ETCD_UNSUPPORTED_ARCH=arm64 ;; esac
  "${CMD[@]}" </dev/null >>"$DIR/$name.log" 2>&1 &
  local pid=$!; disown "$pid" 2>/dev/null || true
  echo "$pid" >"$STATE/$name.pid"
  log "$name started (pid $pid, log $DIR/$name.log)"
}

stop_member() { # NAME SIGNAL
  local name=$1 sig=$2 pid i; pid=$(state "$name.pid")
  if ! ours "$pid"; then log "$name is not running"; rm -f "$STATE/$name.pid"; return; fi
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$STATE/$name.pid"
  log "$name ($sig) stopped (pid $pid)"
}

members() { # zk|etcd|all
  case ${1:-all} in
    zk) echo zk1 zk2 zk3 ;; etcd) echo etcd1 etcd2 etcd3 ;;
    all) echo zk1 zk2 zk3 etcd1 etcd2 etcd3 ;; *) die "want zk, etcd or all, got $1" ;;
  esac
}

wait_serving() { # NAME...
  local name i
  for name in "$@"; do
    for i in $(seq 300); do                 # 60 s: JVMs on a busy 2-core box
      [ -n "$(role "$name")" ] && break
      ours "$(state "$name.pid")" || { tail -n 30 "$(root_dir)/$name/$name.log" >&2; die "$name exited"; }
      sleep 0.2
    done
    [ -n "$(role "$name")" ] || die "$name does not serve after 60 s (log: $(root_dir)/$name/$name.log)"
  done
}

write_env() {
  local zk="" etcd="" i
  for i in $(seq $N); do zk+="${zk:+,}127.0.0.1:$(zk_client "$i")"; etcd+="${etcd:+,}127.0.0.1:$(etcd_client "$i")"; done
  printf 'export KITE_ZK_CLUSTER=%s\nexport KITE_ETCD_CLUSTER=%s\n' "$zk" "$etcd" >".kite/cluster.env"
}

cmd=${1:-}; arg=${2:-}
case "$cmd" in
  up)
    ms=$(members "$arg")
    [[ " $ms " == *" zk1 "* ]] && ensure_pkg zookeeper
    [[ " $ms " == *" etcd1 "* ]] && ensure_pkg etcd-server
    for m in $ms; do start_member "$m"; done
    # shellcheck disable=SC2086
    wait_serving $ms
    write_env
    for m in $ms; do log "$m: $(role "$m") on 127.0.0.1:$([[ $m == zk* ]] && zk_client "${m: -1}" || etcd_client "${m: -1}")"; done
    log "addresses in .kite/cluster.env"
    ;;
  down)
    for m in $(members "$arg"); do stop_member "$m" TERM; done
    if ! ls "$STATE"/*.pid >/dev/null 2>&1; then
      r=$(state root)
      case "$r" in /tmp/kite-cluster.*) rm -rf -- "$r" ;; esac
      rm -f "$STATE/root" .kite/cluster.env
    fi
    ;;
  kill) [ -n "$arg" ] || die "kill NAME"; stop_member "$arg" KILL ;;
  stop) [ -n "$arg" ] || die "stop NAME"; stop_member "$arg" TERM ;;
  start) [ -n "$arg" ] || die "start NAME"; start_member "$arg"; wait_serving "$arg"; log "$arg: $(role "$arg")" ;;
  status)
    for m in $(members all); do
      pid=$(state "$m.pid")
      if ours "$pid"; then r=$(role "$m"); echo "$m: pid $pid, ${r:-not serving}"; else echo "$m: not running"; fi
    done
    ;;
  *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
