// Type test: the README's SDK example, compiled by `tsc --noEmit` in scripts/test. Never executed.
import { BerthClient, type FollowEvent, type OutputEvent, type TaskView } from "../../src/client/index.js";

export async function readmeExample(): Promise<TaskView> {
  const berth = new BerthClient({ url: "http://127.0.0.1:8080", apiKey: process.env.BERTH_API_KEY });
  const task = await berth.submit({ command: ["python3", "-c", "print(42)"], labels: { ticket: "ABC-1" } });
  for await (const event of berth.followOutput(task.id)) {
    const e: OutputEvent = event;
    if (e.type === "output") (e.stream === "stdout" ? process.stdout : process.stderr).write(e.data);
  }
  for await (const event of berth.follow(task.id)) {
    const e: FollowEvent = event;
    if (e.type === "log") process.stdout.write(e.text);
  }
  const done = await berth.wait(task.id);
  await berth.download(task.id, { file: `${done.workspace}.tar.gz` });
  return done;
}
