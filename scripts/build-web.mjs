// Builds the dashboard (src/web) into dist/web: one minified script and one stylesheet named by their content's hash
// (served with long cache lifetimes), the page that names them, and .gz/.br copies of each asset. esbuild only
// bundles: type-checking is `tsc -p tsconfig.web.json` (npm run build runs both). Prints the first page's size.
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const src = path.join(root, "src/web");
const out = path.join(root, "dist/web");
const staging = `${out}.tmp-${process.pid}`;

await rm(staging, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { app: "src/web/main.tsx", style: "src/web/style.css" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome109", "firefox115", "safari16"],
  outdir: path.join(staging, "assets"),
  entryNames: "[name]-[hash]",
  jsx: "automatic",
  jsxImportSource: "preact",
  tsconfig: "tsconfig.web.json",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((f) => path.resolve(root, f));
const named = (ext) => {
  const file = outputs.find((f) => f.endsWith(ext));
  if (!file) throw new Error(`esbuild wrote no ${ext} file`);
  return path.basename(file);
};
const icon = await readFile(path.join(src, "icon.svg"));
const iconName = `icon-${createHash("sha256").update(icon).digest("hex").slice(0, 8)}.svg`;
await writeFile(path.join(staging, "assets", iconName), icon);

const page = (await readFile(path.join(src, "index.html"), "utf8"))
  .replaceAll("%APP_JS%", `/assets/${named(".js")}`)
  .replaceAll("%APP_CSS%", `/assets/${named(".css")}`)
  .replaceAll("%ICON%", `/assets/${iconName}`);
await writeFile(path.join(staging, "index.html"), page);

let firstPageGzip = Buffer.byteLength(gzipSync(page));
for (const name of [named(".js"), named(".css"), iconName]) {
  const file = path.join(staging, "assets", name);
  const bytes = await readFile(file);
  const gz = gzipSync(bytes, { level: 9 });
  firstPageGzip += gz.length;
  await writeFile(`${file}.gz`, gz);
  await writeFile(`${file}.br`, brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
}

// Swap the new build in whole, so a server starting meanwhile sees the old build or the new one, never half.
await mkdir(path.dirname(out), { recursive: true });
await rm(`${out}.old`, { recursive: true, force: true });
await rename(out, `${out}.old`).catch(() => undefined);
await rename(staging, out);
await rm(`${out}.old`, { recursive: true, force: true });
if (!process.argv.includes("--quiet")) {
  process.stderr.write(`dashboard built into dist/web: first page ${(firstPageGzip / 1024).toFixed(1)} KiB gzipped\n`);
}
