// Jest globalSetup: compile src/ once, so tests that spawn `node dist/cli/main.js` run the code under test.
import { execFileSync } from "node:child_process";

export default function buildOnce() {
  execFileSync("node", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
