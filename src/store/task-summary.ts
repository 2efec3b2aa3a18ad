// Task records read for a list: large fields are left out inside Redis (never copied, not even into Lua), so a
// page's size and cost do not grow with what its tasks carry.
import type { TaskRecord } from "../domain/task.js";

/** A record read for a list: fields too large for one were left out, and are named in `leftOut`. */
export type TaskSummary = TaskRecord & { readonly leftOut: readonly string[] };

// A record for a list: every field but those whose stored value is longer than ARGV[1] bytes (labels and status
// excepted: filters need them), which are named in '_leftOut'. Big values are never copied, not even inside Redis.
export const SUMMARY = `
local names = redis.call('HKEYS', KEYS[1])
local keep, cut = {}, {}
local max = tonumber(ARGV[1])
for _, name in ipairs(names) do
  if name ~= 'labels' and name ~= 'status' and redis.call('HSTRLEN', KEYS[1], name) > max then
    cut[#cut + 1] = name
  else
    keep[#keep + 1] = name
  end
end
if #keep == 0 then return {} end
local values = redis.call('HMGET', KEYS[1], unpack(keep))
local out = {}
for i, name in ipairs(keep) do
  out[#out + 1] = name
  out[#out + 1] = values[i]
end
if #cut > 0 then
  out[#out + 1] = '_leftOut'
  out[#out + 1] = cjson.encode(cut)
end
return out
`;

/** The reply of {@link SUMMARY}: the stored fields (to decode as any record's) and the names of those left out. */
export function splitSummary(flat: string[]): { fields: Record<string, string>; leftOut: string[] } {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
  const leftOut = fields._leftOut ? (JSON.parse(fields._leftOut) as string[]) : [];
  delete fields._leftOut;
  return { fields, leftOut };
}
