#!/usr/bin/env bash
# Sizing for deploy/README.md: the Kubernetes manifests' own configs under the load generator,
# with each process's peak RSS.
#   1. the gateway (deploy/kubernetes/gateway.yaml: PostgreSQL, disk queue, keys required; the
#      per-key rate limit lifted so the store is what bounds it), loaded directly with a key;
#   2. the node agent (deploy/kubernetes/daemonset.yaml: normalize, redact, disk queue, keys
#      listed in its config) forwarding to that gateway, loaded with the agent's key.
# Needs PostgreSQL (POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres; a fresh
# database is made and dropped) and psql.
#   cargo build --release -p llmscope -p llmscope-benches && benches/scripts/sizing.sh
# SECONDS_PER_RUN (default 30), CONCURRENCY (default "4 16").
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
work=$(mktemp -d)
seconds=${SECONDS_PER_RUN:-30}
server=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=llmscope_sizing_$$
trap 'kill $(jobs -p) 2>/dev/null || true; psql -q "$server" -c "DROP DATABASE IF EXISTS $db" || true; rm -rf "$work"' EXIT
psql -q "$server" -c "CREATE DATABASE $db"
database=${server%/*}/$db

# The `llmscope.yaml` of a manifest's ConfigMap.
config_of() {
  awk '/^  llmscope.yaml: \|/ {on = 1; next} on && /^    / {print substr($0, 5); next} on && !/^$/ {exit}' "$1"
}
config_of deploy/kubernetes/gateway.yaml |
  sed 's/spans_per_second: 5000/spans_per_second: 0/; s/requests_per_second: 100/requests_per_second: 0/' \
  > "$work/gateway.yaml"
config_of deploy/kubernetes/daemonset.yaml > "$work/agent.yaml"

# Samples the RSS (KiB) of pid $1 into $2 every 200 ms while it lives.
sample() { (while kill -0 "$1" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$1/status" >> "$2" 2>/dev/null || true; sleep 0.2; done) & }
peak() { awk '$1 > p {p = $1} END {printf "%d MiB\n", p / 1024}' "$1"; }

export POSTGRES_URL=$database LLMSCOPE_ADMIN_TOKEN=sizing-admin-token-0123456789
export LLMSCOPE_OTLP_GRPC_ENDPOINT=127.0.0.1:24317 LLMSCOPE_OTLP_HTTP_ENDPOINT=127.0.0.1:24318
export LLMSCOPE_API_ENDPOINT=127.0.0.1:24320
key=$(cd "$work" && LLMSCOPE_QUEUE_DIR="$work/gateway-queue" \
  "$bin/llmscope" --config "$work/gateway.yaml" keys create --project sizing --name loadgen 2> /dev/null)
(cd "$work" && LLMSCOPE_QUEUE_DIR="$work/gateway-queue" exec "$bin/llmscope" --config "$work/gateway.yaml" 2> "$work/gateway.log") &
gateway=$!
sleep 3
sample "$gateway" "$work/gateway.rss"

for c in ${CONCURRENCY:-4 16}; do
  echo "== 1. gateway (PostgreSQL), $c requests in flight, $seconds s"
  "$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:24317 --api-key "$key" \
    --duration "$seconds" --concurrency "$c" 2> /dev/null | tail -4
done
echo "gateway peak RSS: $(peak "$work/gateway.rss")"

(cd "$work" && LLMSCOPE_GATEWAY_ENDPOINT=http://127.0.0.1:24317 LLMSCOPE_API_KEY=$key \
  LLMSCOPE_AGENT_KEY=sizing-agent-key-0123456789abcdef0123 LLMSCOPE_QUEUE_DIR="$work/agent-queue" \
  LLMSCOPE_OTLP_GRPC_ENDPOINT=127.0.0.1:25317 LLMSCOPE_OTLP_HTTP_ENDPOINT=127.0.0.1:25318 \
  exec "$bin/llmscope" --config "$work/agent.yaml" 2> "$work/agent.log") &
agent=$!
sleep 2
sample "$agent" "$work/agent.rss"
for c in ${CONCURRENCY:-4 16}; do
  echo "== 2. agent -> gateway, $c requests in flight, $seconds s"
  "$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:25317 \
    --api-key sizing-agent-key-0123456789abcdef0123 --duration "$seconds" --concurrency "$c" \
    2> /dev/null | tail -4
done
echo "agent peak RSS: $(peak "$work/agent.rss")"
kill -TERM "$agent"; wait "$agent" || true
echo "gateway peak RSS (with the agent's load): $(peak "$work/gateway.rss")"
kill -TERM "$gateway"; wait "$gateway" || true
