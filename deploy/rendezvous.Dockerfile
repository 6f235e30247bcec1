# syntax=docker/dockerfile:1
# Image "rendezvous-service": holepunch-rendezvous, the HTTP + WebSocket
# rendezvous. Build from the top of the repository:
#   docker build -f deploy/rendezvous.Dockerfile -t rendezvous-service .
#   docker run --rm -p 8080:8080 rendezvous-service
# PORT (default 8080) is honoured by the binary and by the HEALTHCHECK:
#   docker run --rm -e PORT=9000 -p 9000:9000 rendezvous-service

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
RUN sh /tmp/hp-deploy/runtime-setup.sh rendezvous && rm -rf /tmp/hp-deploy
COPY --from=build /build/holepunch-rendezvous /usr/local/bin/holepunch-rendezvous
# The user runtime-setup.sh created (numeric, for runAsNonRoot checks).
USER 10001:10001
ENV PORT=8080 \
    LOG_FORMAT=json
EXPOSE 8080
# --start-interval (Docker 25+) checks often while starting, so compose's
# "service_healthy" does not wait a whole interval.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --start-interval=1s --retries=3 \
  CMD ["/usr/local/bin/hp-healthcheck"]
# SIGTERM: the service closes its WebSockets (1001) and exits within seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/holepunch-rendezvous"]
