// Every Redis key and channel berth uses is spelled here and nowhere else.

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
  /** BullMQ's own prefix; its keys live under `<namespace>:bull:*`. */
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
}

export function createKeys(namespace: string): Keys {
  const ns = namespace;
  return {
    namespace: ns,
    task: (id) => `${ns}:task:${id}`,
    spec: (id) => `${ns}:task:${id}:spec`,
    cleanupLock: (id) => `${ns}:task:${id}:cleanup-lock`,
    logs: (id) => `${ns}:logs:${id}`,
    tenantIndex: (tenant) => `${ns}:tenant:${tenant}:tasks`,
    tenantActive: (tenant) => `${ns}:tenant:${tenant}:active`,
    tenantQueued: (tenant) => `${ns}:tenant:${tenant}:queued`,
    idempotency: (tenant, keyHash) => `${ns}:tenant:${tenant}:idem:${keyHash}`,
    expiry: `${ns}:expiry`,
    cancelChannel: `${ns}:cancel`,
    finishedChannel: `${ns}:finished`,
    changesChannel: `${ns}:changes`,
    workerHeartbeat: (workerId) => `${ns}:worker:${workerId}`,
    nodeAddress: (nodeId) => `${ns}:node:${nodeId}:address`,
    bullPrefix: `${ns}:bull`,
    tenantStored: (tenant) => `${ns}:tenant:${tenant}:stored`,
    tenantCpu: (tenant) => `${ns}:tenant:${tenant}:cpu`,
    tenantCaches: (tenant) => `${ns}:tenant:${tenant}:caches`,
    cacheLock: (host, volume) => `${ns}:cache-lock:${host}:${volume}`,
    auditStream: (tenant) => (tenant === null ? `${ns}:audit:global` : `${ns}:audit:tenant:${tenant}`),
    auditTenants: `${ns}:audit:tenants`,
  };
}
