// Shared caches: a tenant's named directories that persist across its tasks (`"caches": ["pip"]` mounts the
// tenant's cache "pip" at /cache/pip). Each is a Docker volume on the worker host, named after the namespace, the
// tenant and the cache, so that no two tenants (and no two berth installations) can ever name the same volume.
import { createHash } from "node:crypto";

/** What a cache name may be: short, lower case, safe as a path segment and in a volume name. */
export const CACHE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** Caches one task may mount. */
export const MAX_CACHES_PER_TASK = 8;
/** Caches one tenant may have (names, on any host). */
export const MAX_CACHES_PER_TENANT = 32;
/** Where a task's container sees its caches: `/cache/<name>`. */
export const CACHE_MOUNT_ROOT = "/cache";
/** Escaped tenant names longer than this are replaced by a hash (volume names become directory names). */
const MAX_TENANT_PART = 100;

/**
 * A tenant name as a part of a volume name, one-to-one: `a-z`, `0-9` and `.` stay, every other byte becomes `_`
 * and two hex digits (upper case letters too: a case-insensitive store must not merge `Acme` and `acme`). The
 * result never holds `-`, so the `-` after it in {@link cacheVolumeName} is where the cache's name begins; a
 * very long one is `_z` and a hash (`_z` never comes out of the escaping).
 */
export function escapeTenant(tenant: string): string {
  let out = "";
  for (const byte of Buffer.from(tenant, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[a-z0-9.]/.test(c) ? c : `_${byte.toString(16).padStart(2, "0")}`;
  }
  return out.length <= MAX_TENANT_PART ? out : `_z${createHash("sha256").update(tenant).digest("hex").slice(0, 40)}`;
}

/** The Docker volume of a tenant's cache: `<namespace>-cache-<escaped tenant>-<name>` (`berth-cache-acme-pip`). */
export const cacheVolumeName = (namespace: string, tenant: string, name: string): string =>
  `${namespace}-cache-${escapeTenant(tenant)}-${name}`;

/** Where a cache is mounted in a task's container. */
export const cacheMountPath = (name: string): string => `${CACHE_MOUNT_ROOT}/${name}`;
