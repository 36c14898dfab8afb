# The same steps as the README's set-up: Debian, Node.js 20, the toolchain better-sqlite3 builds
# with, `npm ci`, `npm start`. No step downloads anything but npm and Debian packages.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
# Listen on all interfaces inside the container; the compose file publishes on loopback only.
ENV SNAPVISOR_HOST=0.0.0.0 \
    NODE_ENV=production
# `npm start` bundles the daemon into /app/.build on every start: the node user must be able to write it.
RUN mkdir -p /app/data /app/.build && chown -R node:node /app/data /app/.build
USER node
EXPOSE 7480
# Liveness from inside the container. The image has no curl: Node's own fetch does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SNAPVISOR_PORT || 7480) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# `docker stop` sends SIGTERM: tini (PID 1) passes it to the daemon and reaps orphaned hypervisor
# commands. The daemon is what `npm start` runs, without npm in between. It needs up to
# engine.shutdownGraceSec (30 s) + 2 s: `docker stop -t 40` (docker run --stop-timeout 40; the
# compose file sets stop_grace_period), or Docker's default 10 s kills it first.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "scripts/start.mjs"]
