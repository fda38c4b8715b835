#!/bin/bash
# TEST SCAFFOLDING (molecule/firewall; reusable by other scenarios): probe targets that stay INSIDE
# the test host, so a firewall test never sends a packet to a real metadata service, LAN or internet.
#
#   targets.sh up [--host PORT]... ADDR[:PORT]...   (idempotent)
#   targets.sh down
#
# ADDR[:PORT]: ADDR is put into a network namespace (tmpnb-targets) behind a veth pair, routed from
# the test host, with a tiny HTTP listener on PORT (default 80) answering "tmpnb-target ADDR:PORT".
# --host PORT: a listener on 0.0.0.0:PORT in the test host's own namespace (a stand-in for sshd or
# nginx, reachable on every address of the host, including a Docker bridge's gateway).
# Each listener is a transient systemd unit tmpnb-target-*.service. `up` ends by checking that every
# ADDR is routed into the namespace (never out of the host's default route), and fails if not.
set -euo pipefail

NS=tmpnb-targets
HOST_IF=tgt-host          # not tmpnb-*: the firewall must not treat it as a notebook bridge
NS_IF=tgt-ns
LINK_HOST=10.99.255.1
LINK_NS=10.99.255.2
WWW=/run/tmpnb-targets

listener() { # UNIT NETNS ADDR PORT
  local unit=$1 netns=$2 addr=$3 port=$4 dir="$WWW/$1"
  mkdir -p "$dir"
  echo "tmpnb-target $addr:$port" >"$dir/index.html"
  if systemctl is-active --quiet "$unit.service"; then return 0; fi
  systemctl reset-failed "$unit.service" 2>/dev/null || true
  local cmd=(python3 -m http.server --bind "$addr" --directory "$dir" "$port")
  if [ -n "$netns" ]; then cmd=(ip netns exec "$netns" "${cmd[@]}"); fi
  systemd-run --quiet --unit "$unit" --description "tmpnb test target $addr:$port" "${cmd[@]}"
}

wait_listening() { # NETNS ADDR PORT
  local run=()
  if [ -n "$1" ]; then run=(ip netns exec "$1"); fi
  for _ in $(seq 150); do
    if "${run[@]}" python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' \
      "$2" "$3" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "targets.sh: nothing listens on $2:$3" >&2
  return 1
}

up() {
  local hosts=() targets=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --host) hosts+=("$2"); shift 2 ;;
      *) targets+=("$1"); shift ;;
    esac
  done
  if ! ip netns list | grep -qw "$NS"; then ip netns add "$NS"; fi
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
  fi
  ip addr replace "$LINK_HOST/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip -n "$NS" addr replace "$LINK_NS/30" dev "$NS_IF"
  ip -n "$NS" link set lo up
  ip -n "$NS" link set "$NS_IF" up
  ip -n "$NS" route replace default via "$LINK_HOST"
  local t addr port
  for t in "${targets[@]}"; do
    addr=${t%%:*}
    port=80
    if [ "$t" != "$addr" ]; then port=${t#*:}; fi
    ip -n "$NS" addr replace "$addr/32" dev "$NS_IF"
    ip route replace "$addr/32" via "$LINK_NS" dev "$HOST_IF"
    listener "tmpnb-target-${addr//./-}-$port" "$NS" "$addr" "$port"
  done
  for port in "${hosts[@]}"; do
    listener "tmpnb-target-host-$port" "" 0.0.0.0 "$port"
  done
  for t in "${targets[@]}"; do
    addr=${t%%:*}
    if ! ip route get "$addr" | grep -q "dev $HOST_IF "; then
      echo "targets.sh: $addr is not routed into $NS: $(ip route get "$addr")" >&2
      exit 1
    fi
    port=80
    if [ "$t" != "$addr" ]; then port=${t#*:}; fi
    wait_listening "$NS" "$addr" "$port"
  done
  for port in "${hosts[@]}"; do wait_listening "" 127.0.0.1 "$port"; done
}

down() {
  local unit
  for unit in $(systemctl list-units --plain --no-legend 'tmpnb-target-*' | awk '{print $1}'); do
    systemctl stop "$unit"
  done
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WWW"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up [--host PORT]... ADDR[:PORT]... | down" >&2; exit 2 ;;
esac
