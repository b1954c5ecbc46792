# cimd-proxy container image: a static-ish Rust binary on distroless.
#
#   docker build -t ghcr.io/example/cimd-proxy:0.1.0 .
#
# Build stage: the official Rust image, pinned to the toolchain the project
# is tested with. Pin it by digest too in your own pipeline
# (rust:1.95-bookworm@sha256:...) for reproducible builds.
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer that only changes with Cargo.toml or
# Cargo.lock: build them against stub sources (every target the manifest
# names must exist), then throw the stub's own artifacts away.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/integration \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/integration/main.rs \
    && cargo build --release --locked --no-default-features \
    && rm -rf src tests \
        target/release/cimd-proxy target/release/deps/cimd_proxy-* \
        target/release/deps/libcimd_proxy-* target/release/.fingerprint/cimd-proxy-*

# The real sources (see .dockerignore). askama reads templates/ at compile time.
# Without the default `dev` feature: `cimd-proxy dev` and its development
# identity provider have no place in a production image.
COPY . .
RUN cargo build --release --locked --no-default-features \
    && cp target/release/cimd-proxy /cimd-proxy

# Runtime stage: glibc and libgcc only, no shell, no package manager, running
# as the image's numeric non-root user (65532). Pin by digest in production
# (gcr.io/distroless/cc-debian12:nonroot@sha256:...).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /cimd-proxy /cimd-proxy
USER 65532:65532
# 8080: the public listener (OAuth endpoints). 9090: the admin listener
# (/healthz, /readyz, /metrics); never expose it outside the cluster.
EXPOSE 8080 9090
# No HEALTHCHECK: the image has no shell or HTTP client to run one, and under
# Kubernetes the kubelet's probes on the admin port do this job.
#checkov:skip=CKV_DOCKER_2:distroless has no shell or HTTP client for a HEALTHCHECK; Kubernetes probes /healthz and /readyz on the admin port instead
ENTRYPOINT ["/cimd-proxy"]
CMD ["serve", "--config", "/etc/cimd-proxy/config.toml"]
