// Hand-made tar.gz bytes: every name, type and link target exactly as a hostile task (or a broken store) would have
// them, for tests of what reads archives.
import { gzipSync } from "node:zlib";
import { Header } from "tar";

export interface RawEntry {
  path: string;
  type: "File" | "Directory" | "SymbolicLink" | "Link" | "FIFO";
  linkpath?: string;
  body?: string | Buffer;
  mode?: number;
}

/** The tar (uncompressed) of `entries`, in order, with the end-of-archive blocks. */
export function tarBytes(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body ?? "");
    const block = Buffer.alloc(512);
    new Header({
      path: e.path,
      type: e.type,
      linkpath: e.linkpath ?? "",
      size: body.length,
      mode: e.mode ?? (e.type === "Directory" ? 0o755 : 0o644),
      uid: 1000,
      gid: 1000,
      mtime: new Date(0),
    }).encode(block, 0);
    blocks.push(block);
    if (body.length > 0) blocks.push(Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export const tarGz = (entries: readonly RawEntry[]): Buffer => gzipSync(tarBytes(entries));
