#!/usr/bin/env bash
# Records the MapResponse fixtures in fixtures/ from real peers: headscale
# (coordination server, embedded DERP) and three tailscaled nodes, all on
# loopback. Nothing leaves the machine: headscale has derp.urls [] and only
# its own DERP on 127.0.0.1, DNS servers are benchmark-range addresses, and
# tailscaled runs with --no-logs-no-support, --accept-dns=false and without
# the port mapper.
#
# tailscaled logs every MapResponse it decodes when TS_DEBUG_MAP=1
# (control/controlclient/direct.go, decodeMsg: the JSON as received,
# re-indented). extract_map_responses.py cuts those out of the logs.
#
# The story, seen by node "alpha":
#   1. alpha joins alone           -> first full map (no peers yet)
#   2. bravo joins                 -> PeersChanged (new peer), then patches
#   3. charlie joins, routes       -> PeersChanged, PeersChangedPatch
#   4. bravo is deleted            -> PeersRemoved
#   5. quiet for ~60 s             -> KeepAlive
# and charlie's first map is a full one with two peers.
#
# Usage: tests/unit/netmap/record_fixtures.sh [output-dir]   (default: fixtures/)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/fixtures}
BIN=${LOPOWER_CACHE:-$HOME/.cache/lopower}/bin
for b in headscale tailscaled tailscale; do
  [ -x "$BIN/$b" ] || { echo "record_fixtures: $BIN/$b missing (tools/setup installs it)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/lopower-netmap-rec.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "record_fixtures: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); METRICS_PORT=$(free_port); GRPC_PORT=$(free_port); STUN_PORT=$(free_udp_port)
URL=http://127.0.0.1:$HTTP_PORT

cat >"$WORK/policy.hujson" <<'EOF'
{
  "tagOwners": { "tag:router": ["rec@"] },
  "acls": [
    { "action": "accept", "src": ["rec@"], "dst": ["rec@:*", "tag:router:*"] },
    { "action": "accept", "src": ["tag:router"], "dst": ["rec@:22,80-443"] },
    { "action": "accept", "src": ["rec@"], "proto": "udp", "dst": ["198.18.5.0/24:53"] }
  ],
  "autoApprovers": { "routes": { "198.18.5.0/24": ["tag:router"] } }
}
EOF

cat >"$WORK/config.yaml" <<EOF
server_url: $URL
listen_addr: 127.0.0.1:$HTTP_PORT
metrics_listen_addr: 127.0.0.1:$METRICS_PORT
grpc_listen_addr: 127.0.0.1:$GRPC_PORT
grpc_allow_insecure: false
noise:
  private_key_path: $WORK/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: "headscale"
    region_name: "Headscale Embedded DERP"
    verify_clients: true
    stun_listen_addr: "127.0.0.1:$STUN_PORT"
    private_key_path: $WORK/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: $WORK/db.sqlite
    write_ahead_log: true
log:
  level: info
  format: text
policy:
  mode: file
  path: $WORK/policy.hujson
dns:
  magic_dns: true
  base_domain: tailnet.example
  override_local_dns: true
  nameservers:
    global:
      - 198.18.0.53
      - fd00:198:18::53
    split:
      corp.example:
        - 198.18.0.54
  search_domains: [search.example]
  extra_records:
    - name: "grafana.tailnet.example"
      type: "A"
      value: "100.64.0.3"
unix_socket: $WORK/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: false
EOF

hs() { "$BIN/headscale" -c "$WORK/config.yaml" "$@"; }
"$BIN/headscale" -c "$WORK/config.yaml" serve >"$WORK/headscale.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/headscale.sock" ] && curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
hs users create rec >/dev/null
USER_ID=$(hs users list -o json | python3 -c 'import json,sys; print([u["id"] for u in json.load(sys.stdin) if u["name"]=="rec"][0])')
AUTHKEY=$(hs preauthkeys create --user "$USER_ID" --reusable --expiration 1h -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
# A tagged node can only come from a key that carries the tag.
TAGKEY=$(hs preauthkeys create --user "$USER_ID" --tags tag:router --expiration 1h -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

start_node() {  # name
  local n=$1
  TS_DEBUG_MAP=1 TS_DEBUG_USE_DERP_HTTP=1 TS_DISABLE_PORTMAPPER=1 TS_NO_LOGS_NO_SUPPORT=true \
    "$BIN/tailscaled" --tun=userspace-networking --state=mem: --socket="$WORK/$n.sock" --port=0 \
    --statedir="$WORK/$n-state" --no-logs-no-support >"$WORK/$n.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -S "$WORK/$n.sock" ] && break; sleep 0.1; done
}
up_node() {  # name auth-key extra-flags...
  local n=$1 key=$2; shift 2
  "$BIN/tailscale" --socket="$WORK/$n.sock" up --login-server="$URL" --auth-key="$key" \
    --hostname="$n" --accept-dns=false --timeout=60s "$@"
}
# `tailscale debug netmap` is the client's own merged netmap: the oracle for
# the merge tests. Taken between two counts of decoded responses that agree,
# so it belongs to a known prefix of the stream.
snapshot() {  # name
  local n=$1 before after
  for _ in $(seq 20); do
    before=$(grep -c "MapResponse: " "$WORK/$n.log" || true)
    "$BIN/tailscale" --socket="$WORK/$n.sock" debug netmap >"$WORK/$n-netmap.tmp"
    after=$(grep -c "MapResponse: " "$WORK/$n.log" || true)
    if [ "$before" = "$after" ]; then mv "$WORK/$n-netmap.tmp" "$WORK/$n-netmap-after-$after.json"; return; fi
    sleep 0.5
  done
  echo "record_fixtures: $n's map stream never paused for a snapshot" >&2; exit 1
}
node_id() { hs nodes list -o json | python3 -c "import json,sys; print([n['id'] for n in json.load(sys.stdin) if n['given_name']=='$1'][0])"; }

start_node alpha; up_node alpha "$AUTHKEY"
sleep 3
start_node bravo; up_node bravo "$AUTHKEY"
sleep 5
snapshot alpha
start_node charlie; up_node charlie "$TAGKEY" --advertise-routes=198.18.5.0/24
sleep 5
snapshot alpha; snapshot charlie
hs nodes delete --identifier "$(node_id bravo)" --force >/dev/null
sleep 5
# headscale sends a KeepAlive every 50-59 s of silence on a stream.
for _ in $(seq 90); do grep -q '"KeepAlive": true' "$WORK/alpha.log" && break; sleep 1; done
snapshot alpha; snapshot charlie

mkdir -p "$OUT"
rm -f "$OUT"/*_[0-9][0-9].json "$OUT"/*_netmap_after_*.json "$OUT"/manifest.json  # the previous recording
python3 "$HERE/extract_map_responses.py" "$WORK" "$OUT"
echo "record_fixtures: wrote $OUT (headscale $("$BIN/headscale" version | head -1 | awk '{print $3}'), tailscaled $("$BIN/tailscaled" --version | head -1))"
