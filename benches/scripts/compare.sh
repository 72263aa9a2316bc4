#!/usr/bin/env bash
# LLMScope side by side with rotel (the Rust OTLP collector) under one load generator.
#
#   pip install rotel                       # the reference: rotel-agent, exporter `blackhole`
#   cargo build --release -p llmscope -p llmscope-benches
#   benches/scripts/compare.sh
#
# Each round runs, one after another (interleaved, so drift in the machine hits all alike):
#   rotel       rotel-agent, blackhole exporter
#   full        LLMScope: normalize, cost, redact, anomaly; memory queue; `nop` exporter
#   bare        LLMScope: no processors; memory queue; `nop` exporter
#   full-disk   LLMScope: the full chain; disk queue (fsync `interval`); `nop` exporter
# with the same OTLP/HTTP protobuf load (BATCH spans of ~1.6 KB per request, CONCURRENCY
# requests in flight, SECONDS_PER_RUN s). A run reports accepted spans/s, request latency p50
# and p99, and the collector's peak RSS (VmHWM). The table at the end holds each one's median
# over ROUNDS rounds and its ratio to rotel's. Then each LLMScope setup takes ten times the
# requests in flight (OVERLOAD, default 10 x CONCURRENCY) to show its memory stays bounded.
#
# ROTEL_AGENT overrides where rotel-agent is found (default: the `rotel` Python package's).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
batch=${BATCH:-500}
concurrency=${CONCURRENCY:-16}
overload=${OVERLOAD:-$((concurrency * 10))}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

rotel=${ROTEL_AGENT:-$(python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))' 2>/dev/null || true)}
if [ ! -x "$rotel" ]; then
  echo "rotel-agent not found: pip install rotel (or set ROTEL_AGENT)" >&2
  exit 1
fi
for b in llmscope llmscope-loadgen; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: cargo build --release -p llmscope -p llmscope-benches" >&2; exit 1; }
done

config() { # processors, queue kind
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:24317}
      http: {endpoint: 127.0.0.1:24318}
processors: {normalize: , cost: , redact: , anomaly: }
exporters:
  nop:
service:
  queue: {kind: $2, dir: $work/queue}
  pipelines:
    traces: {receivers: [otlp], processors: [$1], exporters: [nop]}
YAML
}
config "normalize, cost, redact, anomaly" memory > "$work/full.yaml"
config "" memory > "$work/bare.yaml"
config "normalize, cost, redact, anomaly" disk > "$work/full-disk.yaml"

start() { # setup; prints the pid
  rm -rf "$work/queue"
  case $1 in
    rotel) "$rotel" start --exporter blackhole --otlp-grpc-endpoint 127.0.0.1:24317 \
             --otlp-http-endpoint 127.0.0.1:24318 > "$work/$1.log" 2>&1 & ;;
    *) "$bin/llmscope" --config "$work/$1.yaml" > "$work/$1.log" 2>&1 & ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    if curl -s -o /dev/null -X POST -H 'content-type: application/x-protobuf' \
         --data-binary '' http://127.0.0.1:24318/v1/traces; then
      echo "$pid"
      return
    fi
    sleep 0.1
  done
  echo "$1 did not start: $(cat "$work/$1.log")" >&2
  exit 1
}

# One run: "spans/s p50 p99 peak-MiB".
run() { # setup, requests in flight
  local pid out
  pid=$(start "$1")
  out=$("$bin/llmscope-loadgen" --protocol http-proto --endpoint http://127.0.0.1:24318 \
    --duration "$seconds" --batch "$batch" --concurrency "$2" 2> /dev/null | tail -1)
  local peak
  peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" 2> /dev/null || true
  # "spans/s: sent S, accepted A, refused R; requests N; latency ms p50 X p95 Y p99 Z"
  echo "$out" | awk -v peak="$peak" '{
    for (i = 1; i <= NF; i++) {
      if ($i == "accepted") a = $(i + 1)
      if ($i == "p50") p50 = $(i + 1)
      if ($i == "p99") p99 = $(i + 1)
    }
    gsub(",", "", a); printf "%s %s %s %s\n", a, p50, p99, peak
  }'
}

setups=(rotel full bare full-disk)
echo "$rounds rounds of $seconds s: OTLP/HTTP protobuf, $batch spans/request, $concurrency in flight"
for r in $(seq "$rounds"); do
  for s in "${setups[@]}"; do
    result=$(run "$s" "$concurrency")
    echo "round $r $s: $result"
    echo "$result" >> "$work/$s.results"
  done
done

median() { # file, column
  sort -g -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
rotel_rate=$(median "$work/rotel.results" 1)
echo
echo "| setup | spans/s | x rotel | p50 ms | p99 ms | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for s in "${setups[@]}"; do
  rate=$(median "$work/$s.results" 1)
  printf "| %s | %.0f | %.2f | %s | %s | %s |\n" "$s" "$rate" \
    "$(awk -v a="$rate" -v b="$rotel_rate" 'BEGIN { print a / b }')" \
    "$(median "$work/$s.results" 2)" "$(median "$work/$s.results" 3)" \
    "$(median "$work/$s.results" 4)"
done

echo
echo "Overload: $overload requests in flight, $seconds s"
for s in full bare full-disk; do
  echo "$s: $(run "$s" "$overload" | awk '{ printf "%s spans/s accepted, p99 %s ms, peak RSS %s MiB", $1, $3, $4 }')"
done
