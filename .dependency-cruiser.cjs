// The architecture's rules, checked by `./scripts/test` (npm run lint:arch). README "Architecture" explains them.
//
//   cli ─► client ─► contract
//   main ─► api, queue, cleanup, app ─► runner, workspace, archive, logs, store ─► domain, logging ─► config ─► errors, contract
//
// Each outside dependency has one owner: dockerode in runner/docker-runtime.ts, BullMQ in queue/ (and the cleanup
// schedule), Fastify in api/, node-tar in archive/, the AWS SDK in archive/s3-*.ts, ioredis connections in store/.
// Lowest first. An entry is a folder of src/, or a single file (the ports that everything below the roles shares).
const LAYERS = [
  ["contract", "errors.ts"],
  ["config"],
  ["domain", "logging", "metrics", "app/deps.ts", "runner/container-runtime.ts", "archive/archive-store.ts"],
  ["store", "logs", "workspace", "archive", "runner", "webhooks"],
  ["queue", "cleanup", "app"],
  ["api"],
  ["main.ts"],
];
const path = (entry) => (entry.endsWith(".ts") ? `^src/${entry.replace(/\./g, "\\.")}$` : `^src/${entry}/`);
const allEntries = LAYERS.flat();

const layerRules = LAYERS.flatMap((layer, i) => {
  const above = LAYERS.slice(i + 1).flat();
  if (above.length === 0) return [];
  // A file listed lower than its folder (app/deps.ts under app/) is judged by its own layer, not the folder's.
  const lowerFiles = allEntries.filter((e) => e.endsWith(".ts") && LAYERS.findIndex((l) => l.includes(e)) <= i);
  return layer.map((entry) => ({
    name: `layer-${entry.replace(/[/.]/g, "-")}`,
    comment: `src/${entry} may not import what sits above it (${above.join(", ")}): imports flow one way.`,
    severity: "error",
    from: { path: path(entry), pathNot: entry.endsWith(".ts") ? [] : lowerFiles.filter((f) => f.startsWith(`${entry}/`)).map(path) },
    to: { path: above.map(path), pathNot: lowerFiles.map(path) },
  }));
});

const owner = (name, pkg, allowed, why) => ({
  name,
  comment: why,
  severity: "error",
  from: { path: "^src/", pathNot: allowed },
  to: { path: `(^|/)node_modules/(${pkg})/`, dependencyTypesNot: ["type-only"] },
});

module.exports = {
  forbidden: [
    { name: "no-circular", comment: "Import circles make rooms that cannot be understood alone.", severity: "error", from: {}, to: { circular: true } },
    {
      name: "no-orphans",
      comment: "A module nobody imports is dead code (entry points and declarations excepted).",
      severity: "error",
      from: { orphan: true, path: "^src/", pathNot: ["^src/cli/main\\.ts$", "^src/client/index\\.ts$", "^src/web/main\\.tsx$", "\\.d\\.ts$"] },
      to: {},
    },
    {
      name: "no-undeclared-deps",
      comment: "Every package src/ imports is declared in package.json.",
      severity: "error",
      from: { path: "^src/" },
      to: { dependencyTypes: ["npm-no-pkg", "npm-unknown", "unknown", "undetermined"] },
    },
    {
      name: "no-dev-deps-in-src",
      comment: "src/ runs in production: devDependencies are for tests and tools (and src/web, which is bundled at build time).",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/web/" },
      to: { dependencyTypes: ["npm-dev"], dependencyTypesNot: ["type-only"] },
    },
    {
      name: "client-stands-alone",
      comment: "The published SDK (src/client) imports only the wire contract: never server code or its packages.",
      severity: "error",
      from: { path: "^src/client/" },
      to: { pathNot: ["^src/client/", "^src/contract/"], dependencyTypesNot: ["core"] },
    },
    {
      name: "web-runs-in-the-browser",
      comment:
        "src/web is the dashboard's browser bundle: it uses the public API like any client, so it imports only itself, the wire contract, the SDK's browser-safe modules and its bundled libraries (never server code or Node built-ins).",
      severity: "error",
      from: { path: "^src/web/" },
      to: { pathNot: ["^src/web/", "^src/contract/", "^src/client/(errors|follow|sse)\\.ts$", "(^|/)node_modules/(preact|anser)/"] },
    },
    {
      name: "nothing-imports-web",
      comment: "The server serves src/web's build output (dist/web) as files; no server or client module imports the bundle's code.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/web/" },
      to: { path: "^src/web/" },
    },
    {
      name: "contract-stands-alone",
      comment: "src/contract describes the wire format and imports nothing.",
      severity: "error",
      from: { path: "^src/contract/" },
      to: { pathNot: ["^src/contract/"] },
    },
    {
      name: "cli-loads-server-lazily",
      comment: "The CLI loads server code only inside the commands that need it (dynamic import), so `berth --help` and client commands start fast.",
      severity: "error",
      from: { path: "^src/cli/" },
      to: {
        path: "^src/(main\\.ts|api|queue|cleanup|app|runner|workspace|archive|logs|store|web)",
        dependencyTypesNot: ["dynamic-import", "type-only", "type-import"],
      },
    },
    owner("dockerode-owner", "dockerode|docker-modem", "^src/runner/docker-runtime\\.ts$", "Only runner/docker-runtime.ts talks to the Docker engine."),
    owner("bullmq-owner", "bullmq", ["^src/queue/", "^src/cleanup/schedule\\.ts$"], "Only queue/ (and the cleanup schedule) use BullMQ."),
    owner("fastify-owner", "fastify|@fastify/[^/]+", "^src/api/", "Only api/ uses Fastify."),
    owner(
      "openapi-owner",
      "fastify-type-provider-zod|swagger-ui-dist",
      "^src/api/",
      "Only api/ turns route schemas into validation, serialization and the OpenAPI document.",
    ),
    owner("tar-owner", "tar", "^src/archive/", "Only archive/ reads or writes tar files."),
    owner("aws-sdk-owner", "@aws-sdk/[^/]+|@smithy/[^/]+", "^src/archive/s3-", "Only archive/s3-*.ts talk to the object store (AWS SDK)."),
    owner("prom-client-owner", "prom-client", "^src/metrics/", "Only metrics/ uses prom-client: other modules report through its methods."),
    owner(
      "webhooks-owner",
      "standardwebhooks|ipaddr\\.js",
      "^src/webhooks/",
      "Only webhooks/ signs deliveries (standardwebhooks) and classifies addresses (ipaddr.js).",
    ),
    owner("ioredis-owner", "ioredis", ["^src/store/", "^src/logs/log-store\\.ts$"], "Only store/ opens Redis connections and issues commands."),
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.build.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"], extensions: [".ts", ".tsx", ".js"] },
    moduleSystems: ["es6"],
    reporterOptions: { text: { highlightFocused: true } },
  },
};
