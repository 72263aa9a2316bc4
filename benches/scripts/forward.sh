#!/usr/bin/env bash
# The pipeline without a store, and a sidecar forwarding to a gateway.
#   1. the built-in default's processors into the `nop` exporter (memory queue): what the
#      receivers and processors take with no store behind them;
#   2. otel-config/sidecar.yaml (normalize, redact, disk queue, `otlp` exporter over gRPC) in
#      front of a gateway that receives into `nop`: how fast a sidecar forwards, measured at the
#      gateway from the first span to the last.
#   cargo build --release -p llmscope -p llmscope-benches && benches/scripts/forward.sh
# CONCURRENCY (default 4) sets the requests in flight on the sidecar.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
seconds=${SECONDS_PER_RUN:-10}

# A collector on ports 2431x whose pipelines end in `nop`; `sqlite` is there only so that the
# API (and its /metrics) runs.
nop_config() { # processors
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:24317}
      http: {endpoint: 127.0.0.1:24318}
processors: {normalize: , cost: , redact: , anomaly: }
exporters:
  nop:
  sqlite: {path: $work/unused.db}
extensions:
  api: {endpoint: 127.0.0.1:24320, store: sqlite}
service:
  extensions: [api]
  pipelines:
    traces: {receivers: [otlp], processors: [$1], exporters: [nop]}
YAML
}

received() {
  curl -s http://127.0.0.1:24320/metrics |
    awk '/^llmscope_receiver_accepted_items_total\{.*signal="traces"/ {n += $2} END {print n + 0}'
}

echo "== 1. default processors into nop, $seconds s"
nop_config "normalize, cost, redact, anomaly" > "$work/nop.yaml"
"$bin/llmscope" --config "$work/nop.yaml" 2> "$work/nop.log" &
pid=$!
sleep 1
"$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:24317 --duration "$seconds" \
  2> /dev/null | tail -4
kill -TERM "$pid"; wait "$pid" || true

echo "== 2. sidecar -> gateway (nop), $seconds s of load on the sidecar"
nop_config "" | sed 's/processors: \[\]/processors: []/' > "$work/gateway.yaml"
"$bin/llmscope" --config "$work/gateway.yaml" 2> "$work/gateway.log" &
gateway=$!
sleep 1
(cd "$work" && LLMSCOPE_GATEWAY_ENDPOINT=http://127.0.0.1:24317 LLMSCOPE_QUEUE_DIR="$work/queue" \
  exec "$bin/llmscope" --config "$OLDPWD/otel-config/sidecar.yaml" 2> "$work/sidecar.log") &
sidecar=$!
sleep 1
start=$(date +%s.%N)
"$bin/llmscope-loadgen" --protocol grpc --endpoint http://127.0.0.1:4317 --duration "$seconds" \
  --concurrency "${CONCURRENCY:-4}" \
  2> /dev/null | tee "$work/load.txt" | tail -4
# Wait until the gateway's count has not moved for 2 s (the sidecar's queue drained).
last=-1; still=0; end=$(date +%s.%N)
while [ "$still" -lt 20 ]; do
  now=$(received)
  if [ "$now" -eq "$last" ]; then still=$((still + 1)); else still=0; last=$now; end=$(date +%s.%N); fi
  sleep 0.1
done
awk -v n="$last" -v s="$start" -v e="$end" \
  'BEGIN { printf "gateway received %d spans in %.1f s: %.0f spans/s forwarded\n", n, e - s, n / (e - s) }'
kill -TERM "$sidecar" "$gateway"; wait || true
