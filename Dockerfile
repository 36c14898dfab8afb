# The same steps as the README's set-up: Debian, Node.js 20, the toolchain better-sqlite3 builds
# with, `npm ci`, `npm start`. No step downloads anything but npm and Debian packages.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
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
STOPSIGNAL SIGTERM
CMD ["npm", "start"]
