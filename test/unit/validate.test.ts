// validateSubmit (src/domain/validate.ts): what a POST /v1/tasks body may hold, the defaults it gets, and for
// everything refused a message that names the field (also in the error's details, for clients).
import { loadConfig } from "../../src/config/config.js";
import { validateSubmit } from "../../src/domain/validate.js";
import { BerthError } from "../../src/errors.js";

const config = loadConfig({ HOME: "/home/x" });

/** The BerthError validateSubmit throws for `body`, or a failure naming the body when it accepts it. */
function refusal(body: unknown, cfg = config, header?: string): BerthError {
  try {
    validateSubmit(body, cfg, header);
  } catch (err) {
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).code).toBe("invalid_input");
    return err as BerthError;
  }
  throw new Error(`accepted ${JSON.stringify(body)?.slice(0, 200)}`);
}

describe("validateSubmit accepts", () => {
  it("a bare command, with the server's defaults", () => {
    expect(validateSubmit({ command: ["echo", "hi"] }, config)).toEqual({
      spec: {
        command: ["echo", "hi"],
        image: "berth-runner:latest",
        env: {},
        files: {},
        fromTask: null,
        timeoutSeconds: 600,
        limits: { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 },
        network: "none",
        ttlSeconds: 604_800,
      },
      labels: {},
      idempotencyKey: null,
      webhookUrl: null,
    });
  });

  it("everything a task may ask for, up to the configured maxima", () => {
    const open = loadConfig({ HOME: "/home/x", BERTH_ALLOW_NETWORK: "true", BERTH_ALLOWED_IMAGES: "berth-runner:*,python:3.*" });
    const v = validateSubmit(
      {
        command: ["python3", "main.py"],
        image: "python:3.12",
        env: { _TOKEN: "s3cret", PATH2: "" },
        files: { "src/main.py": "print(1)", "a/b/c.txt": "" },
        timeoutSeconds: 3600,
        limits: { memoryMb: 4096, cpus: 2, pids: 1024 },
        network: "bridge",
        ttlSeconds: 2_592_000,
        labels: { "ticket/id": "ABC-1" },
        idempotencyKey: "req-1",
      },
      open,
      "req-1",
    );
    expect(v.spec).toMatchObject({
      image: "python:3.12",
      timeoutSeconds: 3600,
      network: "bridge",
      limits: { memoryMb: 4096, cpus: 2, pids: 1024 },
    });
    expect(v.labels).toEqual({ "ticket/id": "ABC-1" });
    expect(v.idempotencyKey).toBe("req-1");
  });

  it("the Idempotency-Key header alone, trimmed", () => {
    expect(validateSubmit({ command: ["true"] }, config, "  key-7 ").idempotencyKey).toBe("key-7");
  });
});

describe("validateSubmit refuses, naming the field", () => {
  it("a body that is not an object", () => {
    for (const body of [null, [], "ls", 42])
      expect(refusal(body).message).toBe('The request body must be a JSON object with at least a "command" array.');
  });

  it("unknown fields, all of them named", () => {
    const err = refusal({ command: ["a"], comand: 1, memory: 2 });
    expect(err.message).toBe('Unknown fields "comand", "memory"; see the API reference for the fields a task takes.');
    expect(err.details).toEqual({ fields: ["comand", "memory"] });
    expect(refusal({ command: ["a"], limits: { gpus: 1 } }).details).toEqual({ fields: ["gpus"] });
  });

  it.each([
    [{}, "command", "Invalid command: must be an array of strings."],
    [{ command: "ls -l" }, "command", "Invalid command: must be an array of strings."],
    [{ command: [] }, "command", "Invalid command: must have at least 1 string."],
    [{ command: Array.from({ length: 257 }, () => "a") }, "command", "Invalid command: must have at most 256 strings."],
    [
      { command: ["x".repeat(131_073)] },
      "command.0",
      "Invalid command.0: is 131073 bytes; the kernel takes at most 131071 bytes per argument.",
    ],
    [{ command: ["a"], env: { "1BAD": "x" } }, "env.1BAD", "Invalid env.1BAD: env names must match [A-Za-z_][A-Za-z0-9_]*."],
    [{ command: ["a"], env: { A: "a\0b" } }, "env.A", "Invalid env.A: env values must not contain NUL."],
    [
      { command: ["a"], env: { A: "1", BERTH_TASK_ID: "x" } },
      "env.BERTH_TASK_ID",
      "Invalid env.BERTH_TASK_ID: BERTH_TASK_ID is set by berth in every task (BERTH_TASK_ID, BERTH_WORKSPACE); leave it out.",
    ],
    [
      { command: ["a"], env: { BERTH_WORKSPACE: "/tmp" } },
      "env.BERTH_WORKSPACE",
      "Invalid env.BERTH_WORKSPACE: BERTH_WORKSPACE is set by berth in every task (BERTH_TASK_ID, BERTH_WORKSPACE); leave it out.",
    ],
    [{ command: ["a"], timeoutSeconds: 1.5 }, "timeoutSeconds", "Invalid timeoutSeconds: must be a whole number."],
    [{ command: ["a"], timeoutSeconds: 0 }, "timeoutSeconds", "Invalid timeoutSeconds: must be at least 1."],
    [{ command: ["a"], limits: { memoryMb: 8 } }, "limits.memoryMb", "Invalid limits.memoryMb: must be at least 16."],
    [
      { command: ["a"], limits: { cpus: 0 } },
      "limits.cpus",
      "Invalid limits.cpus: must be at least 0.01 (the smallest CPU limit the engine accepts).",
    ],
    [{ command: ["a"], network: "host" }, "network", 'Invalid network: must be "none" or "bridge".'],
    [{ command: ["a"], fromTask: "../x" }, "fromTask", "Invalid fromTask: must be a task id."],
    [
      { command: ["a"], labels: { "bad key!": "x" } },
      "labels.bad key!",
      "Invalid labels.bad key!: label keys must be 1-63 characters of [A-Za-z0-9_./-].",
    ],
    [{ command: ["a"], labels: { k: "v".repeat(257) } }, "labels.k", "Invalid labels.k: label values must be at most 256 characters."],
    [{ command: ["a"], webhook: { url: 7 } }, "webhook.url", "Invalid webhook.url: must be a URL."],
    [
      { command: ["a"], webhook: { url: "gopher://x.example/" } },
      "webhook.url",
      "Invalid webhook.url: must use http or https, not gopher.",
    ],
    [
      { command: ["a"], webhook: { url: "https://me:pw@x.example/" } },
      "webhook.url",
      "Invalid webhook.url: must not carry credentials (user:password@).",
    ],
  ])("%j: %s", (body, field, message) => {
    const err = refusal(body);
    expect(err.message).toBe(message);
    expect(err.details).toEqual({ field });
  });

  it("file paths that are absolute, climb out, or have empty or dot parts", () => {
    for (const p of ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\b", ""]) {
      const err = refusal({ command: ["a"], files: { [p]: "x" } });
      expect(err.details).toEqual({ field: `files.${p}` });
      expect(err.message).toMatch(/: file paths must be relative, without '\.\.', '\.', empty parts or backslashes\.$/);
    }
  });

  it("more than 32 labels", () => {
    const labels = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]));
    expect(refusal({ command: ["a"], labels }).message).toBe("Invalid labels: at most 32 labels.");
  });

  it("an image, timeout, retention or limit beyond what the server allows, saying which setting", () => {
    expect(refusal({ command: ["a"], image: "evil:latest" }).message).toBe(
      'Invalid image: "evil:latest" is not in BERTH_ALLOWED_IMAGES (berth-runner:latest).',
    );
    expect(refusal({ command: ["a"], timeoutSeconds: 3601 }).message).toBe(
      "Invalid timeoutSeconds: must be at most 3600 (BERTH_MAX_TASK_TIMEOUT_SECONDS), got 3601.",
    );
    expect(refusal({ command: ["a"], ttlSeconds: 2_592_001 }).message).toBe(
      "Invalid ttlSeconds: must be at most 2592000 (BERTH_MAX_RETENTION_SECONDS), got 2592001.",
    );
    const err = refusal({ command: ["a"], limits: { pids: 1025 } });
    expect(err.message).toBe("Invalid limits.pids: must be at most 1024 (BERTH_MAX_PIDS), got 1025.");
    expect(err.details).toEqual({ field: "limits.pids" });
  });

  it("network access the server does not allow", () => {
    expect(refusal({ command: ["a"], network: "bridge" }).message).toBe(
      'Invalid network: "bridge" is not allowed on this server (BERTH_ALLOW_NETWORK=false); use "none".',
    );
  });

  it("an idempotency key that differs from the header, or a header that is too long", () => {
    expect(refusal({ command: ["a"], idempotencyKey: "a" }, config, "b").details).toEqual({ field: "idempotencyKey" });
    expect(refusal({ command: ["a"] }, config, "k".repeat(257)).message).toBe("Invalid Idempotency-Key: must be at most 256 characters.");
  });
});
