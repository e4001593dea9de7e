#!/usr/bin/env bash
# End to end: the demo's `GET /me` (lockout + JWT auth + the stream-expiry layer, a valid token)
# against `GET /health` (the lockout only), through the same server, under wrk, both sent the
# same `Authorization` header.
#
#   bash benches/load/e2e.sh            # 4 rounds of 10 s per route, 64 connections
#   ROUNDS=2 SECS=3 bash benches/load/e2e.sh   # the smoke
#
# Rounds alternate health, me, me, health, ... so a drift in the machine's load hits both
# routes alike. Prints each run, then the medians: requests per second, p99 latency, and the
# ratio me / health (issue 16's target: at least 0.95). Needs wrk (Debian package `wrk`) and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-4}
SECS=${SECS:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-3917}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
cargo build --release --example demo >&2
export DEMO_ADDR=127.0.0.1:$PORT JWT_SECRET=e2e-secret-e2e-secret-e2e-secret-0123456 RUST_LOG=warn
"${CARGO_TARGET_DIR:-target}/release/examples/demo" >/tmp/e2e-demo.log 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$DEMO_ADDR/health" >/dev/null && break; sleep 0.1; done
token=$(curl -sf -X POST "http://$DEMO_ADDR/auth/token" -H 'content-type: application/json' \
  -d '{"sub":"load","ttl":86400}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" "http://$DEMO_ADDR/me")" = 200 ] \
  || { echo "/me did not answer 200 with the token" >&2; exit 1; }
run() { # route, extra wrk args...; prints "rps p99_ms"
  local route=$1; shift
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$@" "http://$DEMO_ADDR$route")
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -z "$non2xx" ] || { echo "$route: $non2xx non-2xx answers" >&2; exit 1; }
  echo "$rps $p99"
}
health=() me=()
for i in $(seq "$ROUNDS"); do
  if (( i % 2 )); then order="health me"; else order="me health"; fi
  for r in $order; do
    # The same request head to both (the token is ignored on /health): what differs is the
    # guard, the route and the handler, not the bytes on the wire.
    if [ "$r" = health ]; then res=$(run /health -H "authorization: Bearer $token"); health+=("$res"); else res=$(run /me -H "authorization: Bearer $token"); me+=("$res"); fi
    echo "round $i $r: $res (requests/s, p99 ms)" >&2
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
h_rps=$(printf '%s\n' "${health[@]}" | cut -d' ' -f1 | median)
m_rps=$(printf '%s\n' "${me[@]}" | cut -d' ' -f1 | median)
h_p99=$(printf '%s\n' "${health[@]}" | cut -d' ' -f2 | median)
m_p99=$(printf '%s\n' "${me[@]}" | cut -d' ' -f2 | median)
echo "| route | requests/s (median of $ROUNDS × ${SECS} s) | p99 latency | connections |"
echo "|---|---:|---:|---:|"
echo "| GET /health | $h_rps | $h_p99 ms | $CONNS |"
echo "| GET /me (valid token) | $m_rps | $m_p99 ms | $CONNS |"
awk -v m="$m_rps" -v h="$h_rps" 'BEGIN {printf "me / health: %.3f\n", m / h}'
