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
  # RSS (KiB) once every 200 ms, one line each.
  (while kill -0 "$pid" 2>/dev/null; do
     awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null >> "$dir/rss" || true
     sleep 0.2
   done) &
  echo "== queue $1, $2 requests in flight, $3 s"
  "$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:4317 \
    --duration "$3" --concurrency "$2" 2> /dev/null | tail -4
  # The peak, and the peak of each 10 s: a bound shows as a plateau.
  awk '{ w = int((NR - 1) / 50); if ($1 > p[w]) p[w] = $1; if ($1 > peak) peak = $1; n = w } END {
    printf "peak RSS: %d MiB; per 10 s:", peak / 1024
    for (i = 0; i <= n; i++) printf " %d", p[i] / 1024
    print ""
  }' "$dir/rss"
  kill -TERM "$pid"; wait "$pid" || true
}

run memory 4 10
run disk 4 10
run memory 40 120
run disk 40 120
