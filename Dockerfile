# The `iat2i` command in a container: what deploy/k8s/ runs (`iat2i batch run ...`).
#
#   docker build -t registry.example.invalid/iat2i:latest .
#   docker run --rm -e OPENAI_API_KEY -v iat2i-cache:/cache registry.example.invalid/iat2i:latest generate "A Graphorn at dusk"
#
# Build stage: the pinned Rust toolchain, a release build of the binary.
# Runtime stage: Debian slim, ONNX Runtime from the same onnxruntime==1.31.1 wheel the
# repository uses (scripts/setup-ort.sh), a non-root user, the cache as a volume.
# CI cannot pull base images here; it lints this file (scripts/lint-docker.sh).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY retrievers retrievers
COPY selectors selectors
COPY fuzz fuzz
COPY src src
COPY benches benches
COPY examples examples
COPY tests tests
COPY fixtures fixtures
RUN cargo build --release --locked --bin iat2i

FROM debian:bookworm-slim AS ort
# python3-pip only fetches the wheel; it does not reach the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip=23.0.1+dfsg-1 \
    && rm -rf /var/lib/apt/lists/*
RUN pip3 install --break-system-packages --no-cache-dir --no-deps --target /opt/onnxruntime onnxruntime==1.31.1

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="iat2i" \
      org.opencontainers.image.description="Internet-augmented text-to-image: the iat2i command" \
      org.opencontainers.image.source="https://example.invalid/iat2i" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 iat2i \
    && mkdir -p /cache /data \
    && chown iat2i:iat2i /cache /data
COPY --from=ort /opt/onnxruntime/onnxruntime/capi/libonnxruntime.so.1.31.1 /usr/local/lib/
COPY --from=build /src/target/release/iat2i /usr/local/bin/iat2i
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.31.1 \
    IAT2I_CACHE_DIR=/cache
VOLUME ["/cache"]
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["iat2i"]
CMD ["--help"]
