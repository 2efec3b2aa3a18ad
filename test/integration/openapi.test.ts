// GET /v1/openapi.json (API.md §5): a valid OpenAPI 3.1 document with every route of the contract, generated from the
// schemas the routes validate and serialize with; real answers of a test run validate against it; a client generator
// takes it as it is; GET /docs shows it with assets served by berth itself.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { execa } from "execa";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness, type HttpResult } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
let h: Harness;
/** The OpenAPI document, walked as plain JSON; `resolved` is the same with every $ref resolved. */
let doc: any;
let resolved: any;

beforeAll(async () => {
  h = await startHarness({ BERTH_API_KEYS: "acme:acme-key-0001", BERTH_METRICS_TOKEN: "metrics-token-0123456789" });
  const res = await h.request("GET", "/v1/openapi.json");
  expect(res.statusCode).toBe(200);
  doc = res.json();
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  if (!result.valid) throw new Error(`the document is not valid OpenAPI: ${JSON.stringify(result.errors).slice(0, 2000)}`);
  resolved = validator.resolveRefs();
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
}, 180_000);

/** The contract's routes (API.md §3 and §5), as OpenAPI paths. */
const CONTRACT: [string, string][] = [
  ["post", "/v1/tasks"],
  ["get", "/v1/tasks"],
  ["get", "/v1/tasks/{id}"],
  ["delete", "/v1/tasks/{id}"],
  ["post", "/v1/tasks/{id}/cancel"],
  ["get", "/v1/tasks/{id}/logs"],
  ["get", "/v1/tasks/{id}/archive"],
  ["get", "/v1/tasks/{id}/files"],
  ["get", "/v1/tasks/{id}/files/{path}"],
  ["get", "/v1/tasks/{id}/changes"],
  ["get", "/v1/tasks/{id}/diff"],
  ["get", "/v1/info"],
  ["get", "/v1/usage"],
  ["get", "/v1/audit"],
  ["get", "/v1/events"],
  ["get", "/healthz"],
  ["get", "/readyz"],
  ["get", "/metrics"],
];

describe("the document", () => {
  it("is OpenAPI 3.1, valid by a maintained validator, and needs no key to read", async () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info).toMatchObject({ title: "berth", version: expect.any(String) });
    expect(doc.components.securitySchemes.apiKey).toEqual(expect.objectContaining({ type: "http", scheme: "bearer" }));
  });

  it("has every route of the contract, and nothing that is not API", () => {
    for (const [method, route] of CONTRACT)
      expect({ route, method, op: doc.paths[route]?.[method] !== undefined }).toMatchObject({ op: true });
    expect(Object.keys(doc.paths).sort()).toEqual([...new Set(CONTRACT.map(([, r]) => r))].sort());
    // Fastify's wildcard "*" is named for generated clients.
    expect(doc.paths["/v1/tasks/{id}/files/{path}"].get.parameters.map((p: { in: string; name: string }) => `${p.in}:${p.name}`)).toEqual([
      "path:id",
      "path:path",
    ]);
    expect(doc.components.schemas).toEqual(
      expect.objectContaining({ Task: expect.any(Object), Error: expect.any(Object), SubmitTask: expect.any(Object) }),
    );
  });

  it("describes the submit body from the schema that validates it", () => {
    const body = resolved.paths["/v1/tasks"].post.requestBody.content["application/json"].schema;
    expect(body.required).toEqual(["command"]);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.command).toMatchObject({ type: "array", minItems: 1, maxItems: 256 });
    expect(body.properties.network.enum).toEqual(["none", "bridge"]);
    expect(body.properties.webhook.properties.url.type).toBe("string");
  });

  it("feeds a client generator without edits: openapi-typescript's output type-checks and reads as the API", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "berth-openapi-"));
    try {
      await writeFile(path.join(dir, "openapi.json"), JSON.stringify(doc));
      await execa("node", ["node_modules/openapi-typescript/bin/cli.js", path.join(dir, "openapi.json"), "-o", path.join(dir, "api.d.ts")]);
      await writeFile(
        path.join(dir, "use.ts"),
        [
          'import type { paths, components } from "./api";',
          'type Task = paths["/v1/tasks/{id}"]["get"]["responses"][200]["content"]["application/json"];',
          'const status: Task["status"] = "succeeded";',
          'const body: paths["/v1/tasks"]["post"]["requestBody"] = { content: { "application/json": { command: ["true"], webhook: { url: "https://x.example/" } } } };',
          'const err: components["schemas"]["Error"] = { error: { code: "not_found", message: "No task." } };',
          'type Listed = paths["/v1/tasks"]["get"]["parameters"]["query"];',
          'const file: paths["/v1/tasks/{id}/files/{path}"]["get"]["parameters"]["path"] = { id: "x", path: "dir/out.txt" };',
          'const q: Listed = { status: "failed", limit: "10" };',
          "export { status, body, err, q, file };",
        ].join("\n"),
      );
      // Only the generated file and its use: no @types from this repository.
      const options = { strict: true, noEmit: true, types: [], lib: ["es2022"], skipLibCheck: true, module: "nodenext" };
      await writeFile(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: options, files: ["use.ts"] }));
      const tsc = await execa("node", ["node_modules/typescript/bin/tsc", "-p", dir], { reject: false });
      expect(tsc.stdout + tsc.stderr).toBe("");
      expect(tsc.exitCode).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("real answers validate against the document", () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const seen = new Set<string>();

  /** Finds the operation for a concrete URL and checks the answer's status, content type and (JSON) body. */
  function check(method: string, url: string, res: HttpResult): void {
    const pathname = url.split("?")[0] as string;
    const route = Object.keys(resolved.paths).find((p) =>
      // A file's path may hold "/" (sent as is here).
      new RegExp(`^${p.replace(/\/files\/\{path\}$/, "/files/.+").replace(/\{[^}]+\}/g, "[^/]+")}$`).test(pathname),
    );
    expect({ url, route }).toEqual({ url, route: expect.any(String) });
    const op = resolved.paths[route as string][method.toLowerCase()];
    const declared = op.responses[String(res.statusCode)];
    expect({ url, status: res.statusCode, declared: declared !== undefined }).toEqual({ url, status: res.statusCode, declared: true });
    seen.add(`${method} ${route} ${res.statusCode}`);
    if (res.statusCode === 204) return;
    const type = (res.headers.get("content-type") ?? "").split(";")[0] as string;
    const media = declared.content?.[type];
    expect({ url, status: res.statusCode, type, declared: media !== undefined }).toEqual({
      url,
      status: res.statusCode,
      type,
      declared: true,
    });
    if (type !== "application/json") return;
    const validate = ajv.compile(media.schema);
    const ok = validate(res.json());
    expect({ url, status: res.statusCode, errors: ok ? null : validate.errors }).toEqual({ url, status: res.statusCode, errors: null });
  }

  const call = async (method: "GET" | "POST" | "DELETE", url: string, body?: unknown, headers: Record<string, string> = ACME) => {
    const res = await h.request(method, url, body, headers);
    check(method, url, res);
    return res;
  };

  it("over a run that uses every route, with its errors", async () => {
    const RUN = "echo hi > out.txt; mkdir sub; echo deep > sub/in.txt; echo done";
    const made = (await call("POST", "/v1/tasks", { command: ["sh", "-c", RUN], idempotencyKey: "k1" })).json() as TaskView;
    expect((await call("POST", "/v1/tasks", { command: ["sh", "-c", RUN], idempotencyKey: "k1" })).statusCode).toBe(200);
    const id = made.id;
    const done = (await call("GET", `/v1/tasks/${id}?waitSeconds=30`)).json() as TaskView;
    const finished =
      done.status === "succeeded"
        ? done
        : await waitFor(
            "the task",
            () => h.get(id, ACME),
            (t) => t.status === "succeeded",
          );
    expect(finished.archive).not.toBeNull();
    await call("GET", `/v1/tasks/${id}`);
    await call("GET", "/v1/tasks?status=succeeded&label=a:b&limit=5");
    const page = (await call("GET", "/v1/tasks?limit=1")).json();
    await call("GET", `/v1/tasks?limit=1&cursor=${page.nextCursor ?? ""}`);
    await call("GET", `/v1/tasks/${id}/logs`);
    await call("GET", `/v1/tasks/${id}/archive`);
    await call("GET", `/v1/tasks/${id}/archive`, undefined, { ...ACME, range: "bytes=0-9" });
    await call("GET", `/v1/tasks/${id}/archive`, undefined, { ...ACME, range: "bytes=999999999-" });
    await call("GET", `/v1/tasks/${id}/files`);
    await call("GET", `/v1/tasks/${id}/files/out.txt`);
    // As a generated client sends the path parameter: one segment, its "/" escaped.
    const deep = await call("GET", `/v1/tasks/${id}/files/${encodeURIComponent("sub/in.txt")}`);
    expect(deep.body).toBe("deep\n");
    expect((await call("GET", `/v1/tasks/${id}/files/${encodeURIComponent("sub/../out.txt")}`)).statusCode).toBe(404);
    await call("GET", `/v1/tasks/${id}/files/nope.txt`);
    const changed = (await call("GET", `/v1/tasks/${id}/changes`)).json();
    expect(changed.summary).toMatchObject({ added: 3 });
    expect((await call("GET", `/v1/tasks/${id}/diff`)).body).toContain("+deep");
    await call("GET", `/v1/tasks/${id}/diff?path=${encodeURIComponent("../x")}`);
    await call("GET", `/v1/tasks/${id}/changes?limit=0`);
    await call("GET", `/v1/tasks/${id}/archive?changes=only`);
    await call("POST", `/v1/tasks/${id}/cancel`);
    await call("GET", "/v1/info");
    await call("GET", "/v1/usage?since=1h");
    await call("GET", "/v1/usage?since=yesterday");
    await call("GET", "/v1/usage?tenant=globex");
    // The audit trail is written in the background: the submit's entry shows up among the newest 500.
    await waitFor(
      "the submit in the audit trail",
      async () => (await call("GET", "/v1/audit?limit=500")).json().entries as { action: string }[],
      (entries) => entries.some((e) => e.action === "submit"),
    );
    await call("GET", "/v1/audit?limit=0");
    await call("GET", "/healthz", undefined, {});
    await call("GET", "/readyz", undefined, {});
    await call("GET", "/metrics", undefined, { authorization: "Bearer metrics-token-0123456789" });
    await call("GET", "/metrics", undefined, {});
    // Errors, each in the contract's shape and declared for its route.
    await call("POST", "/v1/tasks", { command: [] });
    await call("POST", "/v1/tasks", { command: ["true"], colour: "red" });
    await call("POST", "/v1/tasks", { command: ["true"] }, {});
    await call("GET", "/v1/tasks/doesnotexist123");
    await call("GET", `/v1/tasks/${id}?waitSeconds=61`);
    await call("GET", "/v1/tasks?limit=0");
    await call("GET", "/v1/tasks?status=lost");
    await call("GET", "/v1/tasks?cursor=not-a-cursor");
    await call("GET", "/v1/tasks?label=nocolon");
    // The live streams answer with their declared type (then the client leaves).
    for (const url of [`/v1/tasks/${id}/logs`, "/v1/events"]) {
      const ctl = new AbortController();
      const res = await fetch(`${h.url}${url}`, { headers: { ...ACME, accept: "text/event-stream" }, signal: ctl.signal });
      expect(res.status).toBe(200);
      check("GET", url, { statusCode: res.status, headers: res.headers, body: "", raw: Buffer.alloc(0), json: () => null });
      ctl.abort();
    }
    const queued = (await call("POST", "/v1/tasks", { command: ["sleep", "30"] })).json() as TaskView;
    await call("GET", `/v1/tasks/${queued.id}/archive`);
    await call("GET", `/v1/tasks/${queued.id}/changes`);
    await call("DELETE", `/v1/tasks/${queued.id}`);
    await call("DELETE", `/v1/tasks/${id}`);
    await call("GET", `/v1/tasks/${id}`);
    for (const s of [
      "POST /v1/tasks 202",
      "POST /v1/tasks 400",
      "POST /v1/tasks 401",
      "GET /v1/tasks/{id} 404",
      "GET /v1/tasks/{id}/archive 206",
    ]) {
      expect(seen).toContain(s);
    }
  });

  it("keeps the contract's messages for what the schemas refuse", async () => {
    const msg = async (url: string) => (await h.request("GET", url, undefined, ACME)).json().error;
    expect(await msg("/v1/tasks?limit=0")).toEqual({
      code: "invalid_input",
      message: "Invalid limit: must be a whole number from 1 to 500.",
    });
    expect(await msg("/v1/tasks?status=lost")).toEqual({
      code: "invalid_input",
      message: "Invalid status: must be one of queued, running, succeeded, failed, timed_out, canceled, expired.",
    });
    expect(await msg("/v1/tasks?cursor=xyz")).toEqual({
      code: "invalid_input",
      message: "Invalid cursor: pass back nextCursor from the previous page unchanged.",
    });
    expect(await msg("/v1/tasks?label=x")).toEqual({ code: "invalid_input", message: "Invalid label: use label=key:value." });
    expect(await msg("/v1/tasks/abcdefgh123?waitSeconds=61")).toEqual({
      code: "invalid_input",
      message: "Invalid waitSeconds: must be a whole number from 0 to 60.",
    });
    const body = (await h.request("POST", "/v1/tasks", "[1]", { ...ACME, "content-type": "application/json" })).json().error;
    expect(body).toEqual({ code: "invalid_input", message: 'The request body must be a JSON object with at least a "command" array.' });
  });
});

describe("GET /docs", () => {
  it("serves Swagger UI on the document, every asset from berth itself", async () => {
    const page = await fetch(`${h.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(refs.sort()).toEqual(["/docs/docs.js", "/docs/favicon-32x32.png", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"]);
    for (const ref of refs) {
      const res = await fetch(`${h.url}${ref}`);
      expect({ ref, status: res.status }).toEqual({ ref, status: 200 });
      if (ref.endsWith(".js")) expect(res.headers.get("content-type")).toMatch(/^text\/javascript/);
    }
    expect(await (await fetch(`${h.url}/docs/docs.js`)).text()).toContain('url: "/v1/openapi.json"');
    for (const bad of ["/docs/package.json", "/docs/..%2Fpackage.json", "/docs/index.html"]) {
      expect((await fetch(`${h.url}${bad}`)).status).toBe(404);
    }
  });
});
