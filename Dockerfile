# rocketns container image.
#
#   podman build -t rocketns .      (or docker build)
#
# The base images are build arguments: the defaults are the public images;
# offline builds pass locally made equivalents. PREBUILT=PATH (a binary
# inside the build context, e.g. target/release/rocketns) skips the
# compile, so CI does not build twice.
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# checkov:skip=CKV_DOCKER_7:the base images are build arguments whose defaults carry fixed tags
FROM ${BUILDER_IMAGE} AS build
ARG PREBUILT=
WORKDIR /src
COPY . .
# The KV volume's mount point is made here, owned by the runtime user,
# because the runtime image has no shell to make it.
# The server alone: no features, so the load generator's crates
# (feature "load" in Cargo.toml) are not built.
RUN mkdir -p /out/usr/local/bin /out/etc/rocketns /out/data \
    && if [ -n "${PREBUILT}" ]; then \
        cp "${PREBUILT}" /out/usr/local/bin/rocketns; \
    else \
        CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
            cargo build --release --locked --bin rocketns \
        && cp target/release/rocketns /out/usr/local/bin/rocketns; \
    fi \
    && chmod 0755 /out/usr/local/bin/rocketns \
    && cp conf/namesrv.properties /out/etc/rocketns/namesrv.properties

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/usr/local/bin/rocketns /usr/local/bin/rocketns
COPY --from=build /out/etc/rocketns/namesrv.properties /etc/rocketns/namesrv.properties
COPY --from=build --chown=65532:65532 /out/data /data
# distroless's nonroot user; numeric so Kubernetes can check runAsNonRoot.
USER 65532:65532
# Remoting, then HTTP (/metrics, /healthz, /readyz, /rocketmq/nsaddr).
EXPOSE 9876 8080
VOLUME ["/data"]
# Liveness without a shell or curl (kept by docker, and by podman with
# --format docker; Kubernetes uses the manifests' probes instead).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["/usr/local/bin/rocketns", "--healthcheck", "127.0.0.1:8080"]
# State lives on /data, so the root filesystem can be read-only. A mounted
# /etc/rocketns/namesrv.properties replaces the config; UPDATE_NAMESRV_CONFIG
# changes persist to /data/namesrv.properties, which is read after it at the
# next start (configStoreReadAtStart); args after the image name are flags
# that override both (the last of a repeated flag wins).
ENTRYPOINT ["/usr/local/bin/rocketns", "-c", "/etc/rocketns/namesrv.properties", \
    "--rocketmqHome", "/data", "--kvConfigPath", "/data/kvConfig.json", \
    "--configStorePath", "/data/namesrv.properties", "--configStoreReadAtStart", "true"]
