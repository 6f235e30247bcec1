# syntax=docker/dockerfile:1
# Image "holepunch-worker": holepunch, the worker. Build from the top of the
# repository:
#   docker build -f deploy/worker.Dockerfile -t holepunch-worker .
#   docker run --rm -e RENDEZVOUS_SERVICE_URL=http://HOST:8080 -e ROOM=demo holepunch-worker
# PORT (default 8080) is its health server, honoured by the binary and by the
# HEALTHCHECK; INTERNAL_TCP_PORT (default 8082) its listen + punch port.

# ---- build stage: the same scripts as a developer's machine and CI
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/build.sh /build -DHP_BUILD_TESTS=OFF

# ---- runtime stage: only the runtime libraries (deploy/runtime-packages.txt)
FROM debian:bookworm-slim
COPY deploy/runtime-packages.txt deploy/runtime-packages.sh deploy/runtime-setup.sh deploy/healthcheck.sh /tmp/hp-deploy/
RUN sh /tmp/hp-deploy/runtime-setup.sh worker && rm -rf /tmp/hp-deploy
COPY --from=build /build/holepunch /usr/local/bin/holepunch
# The user runtime-setup.sh created (numeric, for runAsNonRoot checks).
USER 10001:10001
ENV PORT=8080 \
    INTERNAL_TCP_PORT=8082 \
    LOG_FORMAT=json
EXPOSE 8080 8082
# --start-interval (Docker 25+) checks often while starting, so compose's
# "service_healthy" does not wait a whole interval.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --start-interval=1s --retries=3 \
  CMD ["/usr/local/bin/hp-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/holepunch"]
