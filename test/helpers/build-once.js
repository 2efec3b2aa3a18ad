// Jest globalSetup: compile src/ once, so tests that spawn `node dist/cli/main.js` run the code under test, and
// bundle the dashboard (dist/web), which the server serves at GET /. scripts/test builds (npm run build) before it
// runs jest, and may run two jest processes at once: it says so, and no second build runs here.
import { execFileSync } from "node:child_process";

export default function buildOnce() {
  if (process.env.BERTH_TEST_DIST_BUILT === "1") return;
  execFileSync("node", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  execFileSync("node", ["scripts/build-web.mjs", "--quiet"], { stdio: "inherit" });
}
