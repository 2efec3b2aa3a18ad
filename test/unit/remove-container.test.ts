// removeContainer (src/runner/docker-runtime.ts) against a stand-in for dockerode's container: every answer the
// engine can give to a removal, including another removal of the same container under way. The race itself runs
// on the real engine in test/integration/warm-pool.test.ts.
import type Docker from "dockerode";
import { removeContainer } from "../../src/runner/docker-runtime.js";

const engineError = (statusCode: number, message: string) =>
  Object.assign(new Error(`(HTTP code ${statusCode}) ${message}`), { statusCode });
const IN_PROGRESS = engineError(409, "unexpected - removal of container abc is already in progress");

/** A container whose remove, wait and inspect answer as given; records the calls. */
function container(answers: { remove: () => Promise<unknown>; wait?: () => Promise<unknown>; inspect?: () => Promise<unknown> }) {
  const calls: string[] = [];
  const c = {
    id: "abc",
    remove: (o: unknown) => {
      calls.push(`remove ${JSON.stringify(o)}`);
      return answers.remove();
    },
    wait: (o: { condition: string; abortSignal: AbortSignal }) => {
      calls.push(`wait ${o.condition}`);
      return answers.wait ? answers.wait() : Promise.resolve({});
    },
    inspect: () => {
      calls.push("inspect");
      return answers.inspect ? answers.inspect() : Promise.resolve({});
    },
  };
  return { c: c as unknown as Docker.Container, calls };
}

describe("removing a container", () => {
  it("removes it with its anonymous volumes, by force, and says it did", async () => {
    const { c, calls } = container({ remove: async () => undefined });
    expect(await removeContainer(c)).toBe(true);
    expect(calls).toEqual(['remove {"force":true,"v":true}']);
  });

  it("is done when the container is gone already", async () => {
    const { c } = container({ remove: () => Promise.reject(engineError(404, "no such container")) });
    expect(await removeContainer(c)).toBe(false);
  });

  it("waits for another removal under way, then checks that it is gone", async () => {
    const { c, calls } = container({
      remove: () => Promise.reject(IN_PROGRESS),
      inspect: () => Promise.reject(engineError(404, "no such container")),
    });
    expect(await removeContainer(c)).toBe(false);
    expect(calls.slice(1)).toEqual(["wait removed", "inspect"]);
  });

  it("fails when the other removal ended and the container is still there (that removal failed)", async () => {
    const { c } = container({ remove: () => Promise.reject(IN_PROGRESS), wait: async () => ({ Error: { Message: "device busy" } }) });
    await expect(removeContainer(c)).rejects.toThrow("Container abc is still there after another removal of it ended.");
  });

  it("still checks when the wait itself fails (the engine cut it, or it ran out of time)", async () => {
    const { c, calls } = container({
      remove: () => Promise.reject(IN_PROGRESS),
      wait: () => Promise.reject(new Error("socket hang up")),
      inspect: () => Promise.reject(engineError(404, "no such container")),
    });
    expect(await removeContainer(c)).toBe(false);
    expect(calls).toContain("inspect");
  });

  it("passes on any other refusal, a 409 that is not a removal under way included", async () => {
    const conflict = engineError(409, "conflict: cannot remove a paused container");
    const paused = container({ remove: () => Promise.reject(conflict) });
    await expect(removeContainer(paused.c)).rejects.toBe(conflict);
    expect(paused.calls).toHaveLength(1);
    const down = engineError(500, "server error");
    await expect(removeContainer(container({ remove: () => Promise.reject(down) }).c)).rejects.toBe(down);
  });
});
