# berth's own image, for hosts that can pull images (see compose.yaml). Two stages: the build stage compiles
# TypeScript with every dependency; the runtime stage holds only production dependencies and dist/.
#
#   docker build -t berth:latest .
#
# The server runs as the image's non-root `node` user (uid 1000). It starts task containers through the host's
# Docker socket, so that user needs the socket's group (compose.yaml adds it as DOCKER_GID), and it owns the
# workspaces it creates, so tasks run as the same uid (BERTH_RUNNER_USER=1000:1000, the default).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json tsconfig.web.json ./
COPY scripts/build-web.mjs ./scripts/
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE}
# GNU tar, find and pigz archive large workspaces; rm removes them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tar pigz findutils coreutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENV NODE_ENV=production
USER node
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/main.js", "serve"]
