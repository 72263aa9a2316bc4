#!/usr/bin/env bash
# What unauthenticated OTLP/gRPC traffic costs a collector that requires keys: the collector
# (otel-config/gateway.yaml) under 48 streams of 18 MiB on one connection, then 48 gzip bombs
# (18 MiB of zeros in a few KB) with a wrong key, three rounds each; its RSS sampled every
# 100 ms. Refused before the body is read, neither grows memory.
#   cargo build --release -p llmscope -p llmscope-benches && benches/scripts/unauthenticated.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && LLMSCOPE_ADMIN_TOKEN=an-admin-token-for-benches LLMSCOPE_OTLP_GRPC_ENDPOINT=127.0.0.1:24317 \
  LLMSCOPE_OTLP_HTTP_ENDPOINT=127.0.0.1:24318 LLMSCOPE_API_ENDPOINT=127.0.0.1:24320 \
  exec "$bin/llmscope" --config "$OLDPWD/otel-config/gateway.yaml" 2> collector.log) &
sleep 2
pid=$(pgrep -n -f "llmscope --config .*gateway.yaml")
(while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status" >> "$work/rss"; sleep 0.1; done) &
rss() { awk '{ if ($1 > p) p = $1 } END { printf "%d MiB", p / 1024 }' "$work/rss"; }
sleep 0.5
echo "RSS before: $(rss)"
"$bin/llmscope-unauthenticated" --endpoint 127.0.0.1:24317 --streams 48 --mib 18 --rounds 3
echo "peak RSS after plain streams: $(rss)"
"$bin/llmscope-unauthenticated" --endpoint 127.0.0.1:24317 --streams 48 --mib 18 --gzip --rounds 3
echo "peak RSS after gzip bombs: $(rss)"
time curl -s -o /dev/null -w "healthz %{http_code}\n" http://127.0.0.1:24320/healthz
