#!/usr/bin/env bash
# services.sh up|down|status — the external servers Kite's integration
# tests need, on loopback only: ZooKeeper (Debian package `zookeeper`)
# and etcd (Debian package `etcd-server`).
#
#   up      install missing packages (apt-get), start both servers on free
#           loopback ports (2181 / 2379 when free), wait until they answer,
#           and write .kite/services.env (source it to set them):
#               export KITE_ZK_ADDR=127.0.0.1:PORT
#               export KITE_ETCD_ADDR=127.0.0.1:PORT
#           Servers this script already started and that still answer are
#           kept, so `up` is idempotent.
#   down    stop only the processes `up` started (pids under .kite/) and
#           remove their temporary data directories.
#   status  print what runs, from .kite/.
#
# It fails loudly (non-zero exit, the reason on stderr) when a server
# cannot be installed or started: CI must never skip the integration
# tests silently. It needs bash, coreutils and apt-get; no nc, no curl
# (readiness is checked through bash's /dev/tcp).
set -euo pipefail

cd "$(dirname "$0")/.."
STATE=.kite
mkdir -p "$STATE"

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- install

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and apt-get is not available; install them by hand"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "packages ${missing[*]} are missing; run as root or install sudo"
    sudo=(sudo -n)
  fi
  log "installing ${missing[*]} (apt-get; takes a minute or two the first time)"
  local out="$STATE/apt.log"
  # Wait for a dpkg lock held by another apt run instead of failing.
  local opts=(-o DPkg::Lock::Timeout=300 -qq)
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update >"$out" 2>&1; then
    cat "$out" >&2; die "apt-get update failed"
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y \
      --no-install-recommends "${missing[@]}" >>"$out" 2>&1; then
    tail -n 40 "$out" >&2; die "apt-get install ${missing[*]} failed (log: $out)"
  fi
  for p in "${missing[@]}"; do pkg_installed "$p" || die "package $p did not install (log: $out)"; done
}

# ------------------------------------------------------------ ports, probes

# port_busy succeeds when something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints the preferred port if nothing listens there, else a
# random free one; $2... are ports already taken by this run.
free_port() {
  local want=$1 p i; shift
  local taken=" $* "
  if ! port_busy "$want" && [[ $taken != *" $want "* ]]; then echo "$want"; return; fi
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    if ! port_busy "$p" && [[ $taken != *" $p "* ]]; then echo "$p"; return; fi
  done
  die "no free loopback port found"
}

# tcp_ask sends $2 to 127.0.0.1:$1 and prints the reply (2 s at most).
tcp_ask() {
  local port=$1 msg=$2
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf '%b' "$msg" >&3
    timeout 2 cat <&3
  ) 2>/dev/null
}

zk_ready()   { [ "$(tcp_ask "$1" ruok)" = imok ]; }
etcd_ready() { tcp_ask "$1" 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' | grep -q '"health":[[:space:]]*"true"'; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# ours succeeds when pid $1 is alive and its command line names dir $2,
# so a recycled pid is never mistaken for our server.
ours() { alive "$1" && [ -n "${2:-}" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }

read_state() { cat "$STATE/$1" 2>/dev/null || true; }

# wait_ready NAME PID PROBE PORT LOG: poll until PROBE PORT succeeds.
# Returns 0 when ready, 1 when the process exited (the caller decides
# whether to retry), and dies after 60 s.
wait_ready() {
  local name=$1 pid=$2 probe=$3 port=$4 logf=$5 i
  for i in $(seq 300); do             # 60 s: a JVM on a busy 2-core box
    if "$probe" "$port"; then return 0; fi
    if ! alive "$pid"; then return 1; fi
    sleep 0.2
  done
  tail -n 40 "$logf" >&2 || true
  kill "$pid" 2>/dev/null || true
  die "$name did not become ready on 127.0.0.1:$port within 60 s"
}

# start_failed NAME LOG: after the process exited during start-up, retry
# (return 0) if it lost a race for its port, else die with the log.
start_failed() {
  local name=$1 logf=$2
  if grep -qiE 'address already in use|bind: address' "$logf" 2>/dev/null; then
    log "$name lost its port to another process; trying another"
    return 0
  fi
  tail -n 40 "$logf" >&2 || true
  die "$name exited during start-up (log above, $logf)"
}

# ---------------------------------------------------------------- servers

java_bin() {
  command -v java && return
  local j; j=$(ls /usr/lib/jvm/*/bin/java 2>/dev/null | head -n1)
  [ -n "$j" ] && echo "$j" && return
  die "java not found (the zookeeper package should have pulled a JRE)"
}

start_zk() {
  local pid dir port
  pid=$(read_state zk.pid) dir=$(read_state zk.dir) port=$(read_state zk.port)
  if ours "$pid" "$dir" && zk_ready "$port"; then
    ZK_PORT=$port; log "ZooKeeper already running on 127.0.0.1:$port (pid $pid)"; return
  fi
  stop_one zk
  local attempt
  for attempt in 1 2 3; do
    port=$(free_port 2181 "${TAKEN[@]}")
    TAKEN+=("$port")
    dir=$(mktemp -d /tmp/kite-zk.XXXXXX)
    mkdir -p "$dir/data"
    # tickTime 500 ms lets tests ask for sessions as short as 1 s
    # (minSessionTimeout = 2 × tickTime) to exercise expiry quickly.
    cat >"$dir/zoo.cfg" <<CFG
tickTime=500
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
maxSessionTimeout=60000
maxClientCnxns=0
CFG
    local java cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar
    java=$(java_bin)
    [ -f /usr/share/java/zookeeper.jar ] || die "/usr/share/java/zookeeper.jar missing: is the zookeeper package installed?"
    # Small heap, serial GC and C1 only: starts faster and leaves CPU to the tests.
    "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dzookeeper.kite.dir="$dir" \
      -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
      </dev/null >"$dir/zk.log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$STATE/zk.pid"; echo "$dir" >"$STATE/zk.dir"; echo "$port" >"$STATE/zk.port"
    if wait_ready ZooKeeper "$pid" zk_ready "$port" "$dir/zk.log"; then
      ZK_PORT=$port
      log "ZooKeeper ready on 127.0.0.1:$port (pid $pid, dir $dir)"
      return
    fi
    start_failed ZooKeeper "$dir/zk.log"
    stop_one zk
  done
  die "ZooKeeper could not get a port after 3 attempts"
}

start_etcd() {
  local pid dir port peer
  pid=$(read_state etcd.pid) dir=$(read_state etcd.dir) port=$(read_state etcd.port)
  if ours "$pid" "$dir" && etcd_ready "$port"; then
    ETCD_PORT=$port; log "etcd already running on 127.0.0.1:$port (pid $pid)"; return
  fi
  stop_one etcd
  command -v etcd >/dev/null || die "etcd not found: is the etcd-server package installed?"
  # etcd 3.4 refuses to run on arm64 unless told it is fine.
  case "$(uname -m)" in aarch64|arm64) export ETCD_UNSUPPORTED_ARCH=arm64 ;; esac
  local attempt
  for attempt in 1 2 3; do
    port=$(free_port 2379 "${TAKEN[@]}"); TAKEN+=("$port")
    peer=$(free_port 2380 "${TAKEN[@]}"); TAKEN+=("$peer")
    dir=$(mktemp -d /tmp/kite-etcd.XXXXXX)
    etcd --name kite --data-dir "$dir/data" \
      --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "kite=http://127.0.0.1:$peer" \
      </dev/null >"$dir/etcd.log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$STATE/etcd.pid"; echo "$dir" >"$STATE/etcd.dir"; echo "$port" >"$STATE/etcd.port"
    if wait_ready etcd "$pid" etcd_ready "$port" "$dir/etcd.log"; then
      ETCD_PORT=$port
      log "etcd ready on 127.0.0.1:$port (pid $pid, dir $dir)"
      return
    fi
    start_failed etcd "$dir/etcd.log"
    stop_one etcd
  done
  die "etcd could not get a port after 3 attempts"
}

# stop_one NAME: stop the server recorded under .kite/NAME.*, if it is ours.
stop_one() {
  local name=$1 pid dir i
  pid=$(read_state "$name.pid") dir=$(read_state "$name.dir")
  if ours "$pid" "$dir"; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped $name (pid $pid)"
  fi
  # Only ever remove our own temp dirs.
  case "$dir" in /tmp/kite-"$name".*) rm -rf -- "$dir" ;; esac
  rm -f "$STATE/$name.pid" "$STATE/$name.dir" "$STATE/$name.port"
}

cmd=${1:-}
case "$cmd" in
  up)
    install_pkgs zookeeper etcd-server
    TAKEN=()
    # Reserve the port of a server we keep so a restart of the other one
    # never picks it.
    for n in zk etcd; do
      if ours "$(read_state "$n.pid")" "$(read_state "$n.dir")"; then TAKEN+=("$(read_state "$n.port")"); fi
    done
    start_zk
    start_etcd
    tmp=$(mktemp "$STATE/services.env.XXXXXX")
    # export lines, so `source .kite/services.env` alone sets them for
    # the go test a user runs next.
    printf 'export KITE_ZK_ADDR=127.0.0.1:%s\nexport KITE_ETCD_ADDR=127.0.0.1:%s\n' "$ZK_PORT" "$ETCD_PORT" >"$tmp"
    mv -f "$tmp" "$STATE/services.env"
    ;;
  down)
    stop_one zk
    stop_one etcd
    rm -f "$STATE/services.env"
    ;;
  status)
    for n in zk etcd; do
      pid=$(read_state "$n.pid") dir=$(read_state "$n.dir") port=$(read_state "$n.port")
      if ours "$pid" "$dir"; then echo "$n: running, 127.0.0.1:$port, pid $pid, dir $dir"; else echo "$n: not running"; fi
    done
    [ -f "$STATE/services.env" ] && cat "$STATE/services.env"
    ;;
  *)
    echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
