# syntax=docker/dockerfile:1
# LLMScope's container image: built with cargo, run from distroless (glibc, CA certificates, no
# shell) as a non-root user. Its config (deploy/docker/llmscope.yaml) listens on 0.0.0.0 with API
# keys required and keeps all state under the /var/lib/llmscope volume, so the root filesystem
# may be read-only. deploy/README.md has the details.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin llmscope \
 && install -D -m 0755 target/release/llmscope /out/llmscope \
 && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="LLMScope" \
      org.opencontainers.image.description="An OpenTelemetry-native collector for LLM telemetry" \
      org.opencontainers.image.source="https://github.com/llmscope/llmscope" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/llmscope /usr/local/bin/llmscope
COPY deploy/docker/llmscope.yaml /etc/llmscope/llmscope.yaml
COPY --from=build --chown=65532:65532 /out/state /var/lib/llmscope
ENV LLMSCOPE_CONFIG=/etc/llmscope/llmscope.yaml
WORKDIR /var/lib/llmscope
VOLUME ["/var/lib/llmscope"]
USER 65532:65532
# OTLP/gRPC, OTLP/HTTP, the query API.
EXPOSE 4317 4318 4320
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/llmscope", "health"]
ENTRYPOINT ["/usr/local/bin/llmscope"]
CMD ["run"]
