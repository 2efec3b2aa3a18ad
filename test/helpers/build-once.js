// Jest globalSetup: compile src/ once, so tests that spawn `node dist/cli/main.js` run the code under test, and
// bundle the dashboard (dist/web), which the server serves at GET /.
import { execFileSync } from "node:child_process";

export default function buildOnce() {
  execFileSync("node", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  execFileSync("node", ["scripts/build-web.mjs", "--quiet"], { stdio: "inherit" });
}
