#!/usr/bin/env node
// Prints the Debian mirror this machine's apt uses for a suite (default bookworm), for debootstrap.
// Reads deb822 `/etc/apt/sources.list.d/*.sources` and one-line `/etc/apt/sources.list(.d/*.list)`;
// exits 1 with a message when no enabled `deb` source carries the suite's `main` component.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Sources of one deb822 file: `{types, uris, suites, components, enabled}` per stanza. */
export function parseDeb822(text) {
  const stanzas = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = {};
    let last;
    for (const raw of block.split("\n")) {
      if (raw.startsWith("#")) continue;
      if (/^\s/.test(raw) && last) {
        fields[last] += ` ${raw.trim()}`;
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1].toLowerCase();
      fields[last] = m[2].trim();
    }
    if (!fields.uris) continue;
    const words = (k) => (fields[k] ?? "").split(/\s+/).filter(Boolean);
    stanzas.push({
      types: words("types"),
      uris: words("uris"),
      suites: words("suites"),
      components: words("components"),
      enabled: (fields.enabled ?? "yes").toLowerCase() !== "no",
    });
  }
  return stanzas;
}

/** Sources of a one-line-style file: `deb [options] uri suite component...`. */
export function parseOneLine(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ types: [m[1]], uris: [m[2]], suites: [m[3]], components: m[4].split(/\s+/).filter(Boolean), enabled: true });
  }
  return out;
}

/**
 * The first URI of an enabled `deb` source that has `suite` with component `main`; failing that, of a Debian
 * archive (a URI ending in /debian) for another suite, since one archive serves every release. Null if none.
 */
export function pickMirror(sources, suite) {
  const usable = sources.filter((s) => s.enabled && s.types.includes("deb") && s.components.includes("main"));
  const uriOf = (s) => s.uris.find((u) => /^(https?|file):/.test(u))?.replace(/\/+$/, "");
  for (const s of usable) if (s.suites.includes(suite) && uriOf(s)) return uriOf(s);
  for (const s of usable) if (uriOf(s)?.endsWith("/debian")) return uriOf(s);
  return null;
}

function readSources(root = "/etc/apt") {
  const sources = [];
  const read = (file) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return null;
    }
  };
  const main = read(path.join(root, "sources.list"));
  if (main) sources.push(...parseOneLine(main));
  let names = [];
  try {
    names = readdirSync(path.join(root, "sources.list.d")).sort();
  } catch {
    // no directory: only sources.list
  }
  for (const name of names) {
    const text = read(path.join(root, "sources.list.d", name));
    if (text === null) continue;
    if (name.endsWith(".sources")) sources.push(...parseDeb822(text));
    else if (name.endsWith(".list")) sources.push(...parseOneLine(text));
  }
  return sources;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const suite = process.argv[2] ?? "bookworm";
  const mirror = pickMirror(readSources(process.argv[3]), suite);
  if (!mirror) {
    process.stderr.write(
      `no enabled apt source for Debian ${suite} (main) in /etc/apt/sources.list or /etc/apt/sources.list.d/; set BERTH_DEBIAN_MIRROR to a Debian mirror, e.g. http://deb.debian.org/debian\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`${mirror}\n`);
}
