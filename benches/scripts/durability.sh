#!/usr/bin/env bash
# The cost of the durable queue: ingest throughput of the built-in default (disk queue, fsync
# `interval`) against the same config with the memory queue, then peak RSS while clients push
# ten times as many requests in flight as the throughput runs.
#   cargo build --release -p llmscope -p llmscope-benches && benches/scripts/durability.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/llmscope" default-config > "$work/disk.yaml"
sed 's/kind: disk/kind: memory/' "$work/disk.yaml" > "$work/memory.yaml"

run() { # kind, in-flight, seconds
  local dir="$work/$1-$2"
  mkdir -p "$dir"
  (cd "$dir" && exec "$bin/llmscope" --config "$work/$1.yaml" 2> collector.log) &
  local pid=$!
  sleep 2
  local peak=0
  (while kill -0 "$pid" 2>/dev/null; do
     rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
     [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" > "$dir/peak"
     sleep 0.2
   done) &
  echo "== queue $1, $2 requests in flight, $3 s"
  "$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:4317 \
    --duration "$3" --concurrency "$2" | tail -4
  echo "peak RSS: $(( $(cat "$dir/peak") / 1024 )) MiB"
  kill -TERM "$pid"; wait "$pid" || true
}

run memory 4 10
run disk 4 10
run memory 40 20
run disk 40 20
