// The warm pool's profiles: which kinds of container each worker keeps started ahead (runner/warm-pool.ts).
// A profile is a small explicit set: an image and the four limits, all fixed when a container is created.

/** The limits a profile fixes (the same four a task may set). */
export interface ProfileLimits {
  readonly memoryMb: number;
  readonly cpus: number;
  readonly pids: number;
  readonly diskMb: number;
}

export interface WarmProfile {
  /** "default", or "profile-N" for the N-th entry of BERTH_WARM_POOL_PROFILES; a container label. */
  readonly name: string;
  readonly image: string;
  readonly limits: ProfileLimits;
  /** How many containers of this profile each worker keeps started. */
  readonly size: number;
}

/** Containers one worker may keep started in all, whatever the profiles ask. */
export const MAX_WARM_CONTAINERS = 64;

const MIN = { memoryMb: 16, cpus: 0.01, pids: 8, diskMb: 1 } as const;
const KEYS = ["image", "memoryMb", "cpus", "pids", "diskMb", "size"] as const;

/**
 * Parses `image=I,memoryMb=N,cpus=C,pids=P,diskMb=D,size=K;…` (each key optional: the server's defaults, size 1)
 * into profiles after the default one. Throws an Error whose message names what is wrong (the caller adds the
 * variable's name).
 */
export function parseWarmProfiles(
  text: string,
  ctx: {
    readonly defaultImage: string;
    readonly defaultSize: number;
    readonly defaults: ProfileLimits;
    readonly max: ProfileLimits;
    readonly imageAllowed: (image: string) => boolean;
  },
): WarmProfile[] {
  const profiles: WarmProfile[] = [];
  if (ctx.defaultSize > 0) profiles.push({ name: "default", image: ctx.defaultImage, limits: ctx.defaults, size: ctx.defaultSize });
  const entries = text
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean);
  entries.forEach((entry, i) => {
    const name = `profile-${i + 1}`;
    const fields = new Map<string, string>();
    for (const part of entry.split(",").map((s) => s.trim())) {
      const eq = part.indexOf("=");
      const key = eq > 0 ? part.slice(0, eq).trim() : "";
      if (!(KEYS as readonly string[]).includes(key)) {
        throw new Error(`${name} has "${part}"; each entry is key=value with a key among ${KEYS.join(", ")}`);
      }
      if (fields.has(key)) throw new Error(`${name} gives ${key} twice`);
      fields.set(key, part.slice(eq + 1).trim());
    }
    const image = fields.get("image") || ctx.defaultImage;
    if (!ctx.imageAllowed(image)) throw new Error(`${name}'s image "${image}" is not in BERTH_ALLOWED_IMAGES`);
    const limit = (key: keyof ProfileLimits, whole: boolean): number => {
      const raw = fields.get(key);
      if (raw === undefined) return ctx.defaults[key];
      const value = Number(raw);
      if (raw === "" || !Number.isFinite(value) || (whole && !Number.isInteger(value)) || value < MIN[key] || value > ctx.max[key]) {
        throw new Error(
          `${name}'s ${key} must be ${whole ? "a whole number" : "a number"} from ${MIN[key]} to ${ctx.max[key]}, got "${raw}"`,
        );
      }
      return value;
    };
    const limits = {
      memoryMb: limit("memoryMb", true),
      cpus: limit("cpus", false),
      pids: limit("pids", true),
      diskMb: limit("diskMb", true),
    };
    const rawSize = fields.get("size");
    const size = rawSize === undefined ? 1 : Number(rawSize);
    if (!Number.isInteger(size) || size < 1 || size > MAX_WARM_CONTAINERS) {
      throw new Error(`${name}'s size must be a whole number from 1 to ${MAX_WARM_CONTAINERS}, got "${rawSize}"`);
    }
    const same = profiles.find((p) => p.image === image && sameLimits(p.limits, limits));
    if (same) {
      const instead = same.name === "default" ? " (the default profile's size is BERTH_WARM_POOL, 0 for none)" : "";
      throw new Error(`${name} is the same as ${same.name}; give it a different image or limits${instead}`);
    }
    profiles.push({ name, image, limits, size });
  });
  const total = profiles.reduce((n, p) => n + p.size, 0);
  if (total > MAX_WARM_CONTAINERS) {
    throw new Error(`asks for ${total} containers in all (BERTH_WARM_POOL and every size), more than ${MAX_WARM_CONTAINERS}`);
  }
  return profiles;
}

const sameLimits = (a: ProfileLimits, b: ProfileLimits) =>
  a.memoryMb === b.memoryMb && a.cpus === b.cpus && a.pids === b.pids && a.diskMb === b.diskMb;
