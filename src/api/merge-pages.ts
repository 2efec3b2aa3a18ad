// An admin's list of every tenant's tasks: one page of each tenant's own list (newest first, from the same
// cursor), merged into one page in the same order. Pure, so its edge cases are unit-tested.

/** One tenant's page: its records newest first, and where its list continues (null: it has nothing more). */
export interface TenantPage<T> {
  readonly records: readonly T[];
  readonly nextCursor: string | null;
}

/**
 * Merges tenants' pages, each read from the same cursor, into the first `limit` records of all, newest first.
 * `member(r)` is a record's index member (creation time, then id: larger is newer). A tenant's page is complete
 * down to its own cursor (it scanned that far); below the highest of those cursors nothing is known yet, so the
 * merged page stops there and continues from there.
 */
export function mergePages<T>(pages: readonly TenantPage<T>[], member: (r: T) => string, limit: number): TenantPage<T> {
  const known = pages.flatMap((p) => (p.nextCursor === null ? [] : [p.nextCursor]));
  const boundary = known.sort().at(-1) ?? null;
  const all = pages
    .flatMap((p) => p.records)
    .filter((r) => boundary === null || member(r) >= boundary)
    .sort((a, b) => (member(a) < member(b) ? 1 : member(a) > member(b) ? -1 : 0));
  if (all.length > limit) {
    const records = all.slice(0, limit);
    return { records, nextCursor: member(records[records.length - 1] as T) };
  }
  return { records: all, nextCursor: boundary };
}
