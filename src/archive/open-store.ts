// Picks the archive store the configuration names. The AWS SDK is loaded only when an object store is configured.
import type { Config } from "../config/config.js";
import type { ArchiveStore } from "./archive-store.js";
import { LocalArchiveStore } from "./local-store.js";

export async function openArchiveStore(config: Config): Promise<ArchiveStore> {
  const c = config.archiveStore;
  if (c.kind === "local") return new LocalArchiveStore(c.dir);
  const { S3ArchiveStore } = await import("./s3-store.js");
  return new S3ArchiveStore(c, config.dirs.archives);
}
