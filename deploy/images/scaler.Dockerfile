# syntax=docker/dockerfile:1
# celery-scaler runtime image: a static musl binary on `scratch`, non-root (65532).
# Build from the repository root:
#   docker build -f deploy/images/scaler.Dockerfile -t celery-scaler:0.1.0 .
#   (or: buildah bud -f deploy/images/scaler.Dockerfile -t celery-scaler:0.1.0 .)
# Without a base-image registry, build the binary on the host and use
# deploy/images/build-scaler-buildah.sh instead (FROM scratch, nothing pulled).

ARG RUST_IMAGE=docker.io/library/rust:1.88.0-bookworm

FROM ${RUST_IMAGE} AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
COPY Cargo.toml Cargo.lock* build.rs ./
COPY proto ./proto
COPY src ./src
# protoc comes from the protoc-bin-vendored build dependency; ring builds with musl-gcc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --target "${TARGET}" --bin celery-scaler \
 && install -D -m 0755 "target/${TARGET}/release/celery-scaler" /out/celery-scaler \
 && ! ldd /out/celery-scaler 2>/dev/null | grep -q '=>' \
 && mkdir -p /out/tmp

FROM scratch
LABEL org.opencontainers.image.title="celery-scaler" \
      org.opencontainers.image.description="KEDA external scaler for Celery workers on a Redis broker" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/celery-scaler /usr/local/bin/celery-scaler
ENV PATH=/usr/local/bin
# Numeric user: Kubernetes' runAsNonRoot can only verify numeric UIDs.
USER 65532:65532
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/celery-scaler"]
CMD ["serve"]
