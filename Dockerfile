# The M2M Connector image (multi-stage). Two ways to build it; k8s/README.md, "The image", says
# more.
#
#   With a registry (what operators run): compiles in rust:bookworm, runs on bookworm-slim.
#     docker build -t m2m-connector:0.1.0 .
#
#   Without one (CI here; scripts/image.sh): the runtime stage alone, from a binary built on the
#   host (Debian bookworm, the same glibc) and put in the build context as dist/m2m-connector.
#     cargo build --release --locked --features tigerbeetle --bin m2m-connector
#     objcopy --strip-debug target/release/m2m-connector dist/m2m-connector
#     buildah bud --isolation chroot --target runtime -t m2m-connector:dev .
#
# The runtime: user and group 1000; tini as PID 1, so SIGTERM reaches the node, which stops
# accepting, drains the packets in flight (up to max_hold_time_ms) and flushes the journal; a
# read-only root filesystem works, because everything the node writes (journal, snapshots,
# Explorer index, archive) is under /data, the volume.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# --- build: the binary with the TigerBeetle client ------------------------------------------
FROM ${RUST_IMAGE} AS build
# bindgen (the TigerBeetle client crate) needs libclang; Zig 0.14.1 (PyPI) builds tb_client.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev python3-pip binutils \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m pip install --no-cache-dir --break-system-packages --target /opt/zig ziglang==0.14.1
WORKDIR /src
COPY . .
RUN ZIG_PATH=/opt/zig/ziglang/zig cargo build --release --locked --features tigerbeetle --bin m2m-connector \
 && mkdir -p /out \
 && objcopy --strip-debug target/release/m2m-connector /out/m2m-connector

# --- base: everything of the runtime but the binary --------------------------------------------
FROM ${DEBIAN_IMAGE} AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 m2m \
 && useradd --uid 1000 --gid 1000 --home-dir /data --no-create-home --shell /usr/sbin/nologin m2m \
 && mkdir -p /data /etc/m2m \
 && chown 1000:1000 /data
# The configuration is mounted at /etc/m2m/config.toml (a ConfigMap); the environment overrides
# it (config.example.toml lists every variable).
ENV CONFIG_FILE=/etc/m2m/config.toml \
    JOURNAL_DIR=/data/journal \
    EXPLORER_INDEX_DIR=/data/explorer-index
VOLUME ["/data"]
WORKDIR /data
# BTP (WebSocket), health and metrics, Explorer.
EXPOSE 4000 8080 5173
USER 1000:1000
# Asks 127.0.0.1:8080 (HEALTH_PORT, when set, moves both the node's listener and this check).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/m2m-connector", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/m2m-connector"]
CMD ["run"]
LABEL org.opencontainers.image.title="m2m-connector" \
      org.opencontainers.image.description="Interledger (ILPv4) connector for machine-to-machine payments" \
      org.opencontainers.image.licenses="Apache-2.0"

# --- runtime: the binary built on the host (dist/m2m-connector) --------------------------------
FROM base AS runtime
COPY dist/m2m-connector /usr/local/bin/m2m-connector

# --- release (the default target): the binary built above ------------------------------------
FROM base AS release
COPY --from=build /out/m2m-connector /usr/local/bin/m2m-connector
