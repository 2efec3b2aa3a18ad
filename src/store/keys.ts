// Every Redis key and channel berth uses is spelled here and nowhere else.
//
// The layout works on one Redis and on a Redis Cluster alike. A Lua script, MULTI or pipeline may only touch keys
// of one hash slot, so every small key of a namespace (records, specs, per-tenant indexes, queues, usage and caches,
// idempotency keys, the expiry index, cleanup and cache locks, worker heartbeats, hosts' addresses, the capped audit
// streams) carries the hash tag `{<namespace>}` and lives in one slot, while each task's log stream, the bulk of the
// data, has a tag of its own (`{<task id>}`) and spreads over the cluster. BullMQ's keys share the `{<namespace>}`
// tag in a cluster (its scripts touch many keys of one queue).

export interface Keys {
  readonly namespace: string;
  task(id: string): string;
  spec(id: string): string;
  /** `SET NX PX` lock held while one cleaner removes a task's files, so no item is removed twice or half-removed. */
  cleanupLock(id: string): string;
  logs(id: string): string;
  tenantIndex(tenant: string): string;
  tenantActive(tenant: string): string;
  /** Zset of the tenant's queued tasks by their queue priority (fair scheduling across tenants). */
  tenantQueued(tenant: string): string;
  idempotency(tenant: string, keyHash: string): string;
  /** Zset of finished tasks by expiresAt (ms), for the cleanup job. */
  readonly expiry: string;
  /** Pub/sub channel carrying task ids whose cancel was requested, for whichever worker runs them. */
  readonly cancelChannel: string;
  /** Pub/sub channel carrying the id of every task that reaches a final status (long-polling readers wait on it). */
  readonly finishedChannel: string;
  /**
   * Pub/sub channel announcing every change of a task (created, any transition, removed) as
   * `{"tenant","id"}` (plus `"deleted": true`), for live views of a tenant's tasks.
   */
  readonly changesChannel: string;
  /** Heartbeat of a live worker process; containers labelled with a worker whose key is gone are orphans. */
  workerHeartbeat(workerId: string): string;
  /** A worker host's advertised URL (BERTH_ADVERTISE_URL), renewed with its heartbeat: how API processes reach it. */
  nodeAddress(nodeId: string): string;
  /**
   * BullMQ's own prefix: `<namespace>:bull` (shared/API.md §5), and `{<namespace>}:bull` on a Redis Cluster, where
   * BullMQ's scripts need every key of a queue in one slot.
   */
  readonly bullPrefix: string;
  /** Hash of the bytes the tenant's finished tasks hold on disk and in the archive store (`workspaceBytes`, `archiveBytes`). */
  tenantStored(tenant: string): string;
  /** Zset of the tenant's ended tasks' CPU time: member `<task id>:<cpu ms>`, scored by when the task ended (ms). */
  tenantCpu(tenant: string): string;
  /** Hash of the tenant's shared caches: field `<host>/<name>`, value `{"bytes","lastUsedAtMs"}` as JSON. */
  tenantCaches(tenant: string): string;
  /** `SET NX PX` lock held while a cache is prepared for a task or removed, so the two never overlap. */
  cacheLock(host: string, volume: string): string;
  /** Capped stream of the tenant's audit entries; `null`: entries about no tenant (failed authentications, admins' views of all). */
  auditStream(tenant: string | null): string;
  /** Set of the tenants that have audit entries. */
  readonly auditTenants: string;
  /** SCAN patterns that together match every key of the namespace (and nothing of another namespace). */
  readonly patterns: readonly string[];
}

export function createKeys(namespace: string, opts: { cluster?: boolean } = {}): Keys {
  const ns = namespace;
  // The first `{…}` of a key decides its slot: `{ns}` here, the task id in a log stream's key.
  const small = `{${ns}}`;
  return {
    namespace: ns,
    task: (id) => `${small}:task:${id}`,
    spec: (id) => `${small}:task:${id}:spec`,
    cleanupLock: (id) => `${small}:task:${id}:cleanup-lock`,
    logs: (id) => `${ns}:logs:{${id}}`,
    tenantIndex: (tenant) => `${small}:tenant:${tenant}:tasks`,
    tenantActive: (tenant) => `${small}:tenant:${tenant}:active`,
    tenantQueued: (tenant) => `${small}:tenant:${tenant}:queued`,
    idempotency: (tenant, keyHash) => `${small}:tenant:${tenant}:idem:${keyHash}`,
    expiry: `${small}:expiry`,
    cancelChannel: `${ns}:cancel`,
    finishedChannel: `${ns}:finished`,
    changesChannel: `${ns}:changes`,
    workerHeartbeat: (workerId) => `${small}:worker:${workerId}`,
    nodeAddress: (nodeId) => `${small}:node:${nodeId}:address`,
    bullPrefix: opts.cluster ? `${small}:bull` : `${ns}:bull`,
    tenantStored: (tenant) => `${small}:tenant:${tenant}:stored`,
    tenantCpu: (tenant) => `${small}:tenant:${tenant}:cpu`,
    tenantCaches: (tenant) => `${small}:tenant:${tenant}:caches`,
    cacheLock: (host, volume) => `${small}:cache-lock:${host}:${volume}`,
    auditStream: (tenant) => (tenant === null ? `${small}:audit:global` : `${small}:audit:tenant:${tenant}`),
    auditTenants: `${small}:audit:tenants`,
    // Namespaces are [a-z0-9-]: nothing in them is special to a SCAN pattern, braces included.
    patterns: [`${small}:*`, `${ns}:*`],
  };
}
