#!/usr/bin/env bash
# The live stream under load: the built-in default (SQLite, disk queue, every processor) on
# ports 2531x, the load generator over gRPC, and llmscope-streambench subscribers.
#   cargo build --release -p llmscope -p llmscope-benches && benches/scripts/stream.sh
# Runs, each SECONDS_PER_RUN (default 10) long:
#   1. no subscriber (the baseline);
#   2. one subscriber that never reads (its queue fills, it is told what it lost);
#   3. SUBSCRIBERS (default 1000) subscribers spread over the load generator's three models,
#      plus one that never reads, at full load;
#   4. the same at a fixed RATE (default 2000 spans/s), for delivery latency;
#   5. SUBSCRIBERS subscribers whose filter matches nothing the load sends (connected, idle):
#      the cost of converting every span and checking every filter.
# Prints each run's accepted spans/s and latency, what the subscribers got, and the
# collector's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
seconds=${SECONDS_PER_RUN:-10}
subscribers=${SUBSCRIBERS:-1000}
filters=(
  "kind=llm_calls&model=gpt-4o-mini"
  "kind=llm_calls&model=claude-3-5-haiku-20241022"
  "kind=llm_calls&model=gemini-2.5-flash"
)

start_collector() {
  rm -rf "$work/data"
  (cd "$work" && LLMSCOPE_OTLP_GRPC_ENDPOINT=127.0.0.1:25317 LLMSCOPE_OTLP_HTTP_ENDPOINT=127.0.0.1:25318 \
    LLMSCOPE_API_ENDPOINT=127.0.0.1:25320 exec "$bin/llmscope" 2> "$work/collector.log") &
  pid=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:25320/healthz > /dev/null && return; sleep 0.1; done
  echo "collector did not start"; cat "$work/collector.log"; exit 1
}

cpu_seconds() { # pid: user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"
}

stop_collector() {
  echo "collector peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' /proc/$pid/status), CPU $(cpu_seconds "$pid") s"
  kill -TERM "$pid"; wait "$pid" || true
}

load() { # extra loadgen arguments
  "$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:25317 --duration "$seconds" "$@" \
    2> /dev/null | tail -1
}

bench() { # subscribers stalled [filters...]
  local n=$1 stalled=$2; shift 2
  local args=()
  for f in "$@"; do args+=(--filters "$f"); done
  "$bin/llmscope-streambench" --api 127.0.0.1:25320 --subscribers "$n" --stalled "$stalled" \
    --duration $((seconds + 3)) "${args[@]}" > "$work/bench.txt" 2> "$work/bench.err" &
  bench_pid=$!
  # Start the load once every subscriber is connected.
  for _ in $(seq 600); do grep -q connected "$work/bench.err" 2>/dev/null && break; sleep 0.1; done
  cat "$work/bench.err"
}

bench_done() {
  echo "subscribers' CPU: $(cpu_seconds "$bench_pid") s"
  wait "$bench_pid"; cat "$work/bench.txt"
}

echo "== 1. no subscriber"
start_collector; load; stop_collector

echo "== 2. one subscriber that never reads"
start_collector; bench 0 1 "kind=spans"; load; bench_done
curl -s http://127.0.0.1:25320/metrics | grep '^llmscope_stream_messages_total'
stop_collector

echo "== 3. $subscribers subscribers (+1 never reading), full load"
start_collector; bench "$subscribers" 1 "${filters[@]}"; load; bench_done
curl -s http://127.0.0.1:25320/metrics | grep '^llmscope_stream_messages_total'
stop_collector

echo "== 4. $subscribers subscribers (+1 never reading), ${RATE:-2000} spans/s"
start_collector; bench "$subscribers" 1 "${filters[@]}"; load --rate "${RATE:-2000}"; bench_done
curl -s http://127.0.0.1:25320/metrics | grep '^llmscope_stream_messages_total'
stop_collector

echo "== 5. $subscribers idle subscribers (their filter matches nothing), full load"
start_collector; bench "$subscribers" 0 "kind=llm_calls&service=not-sending"; load; bench_done
curl -s http://127.0.0.1:25320/metrics | grep '^llmscope_stream_messages_total'
stop_collector
