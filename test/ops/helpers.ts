/**
 * Shared pieces of the operator-tool tests: generated history, a store that "crashes", and a dump of the
 * learned state for comparisons.
 */
import type { ActivityEvent } from '../../shared/activity/types.js';
import { type BaselineStore, type Entity, type TableName } from '../../shared/baseline/store.js';
import { ev, IP } from '../support/events.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;
/** A Monday, 00:00 UTC. */
export const T0 = Date.UTC(2026, 9, 5);
export const DEPLOY = 'Microsoft.Resources/deployments/write';
export const LISTKEYS = 'Microsoft.Storage/storageAccounts/listKeys/action';
export const ROLES = 'Microsoft.Authorization/roleAssignments/write';
export const VM = 'Microsoft.Compute/virtualMachines/write';
export const BACKUP = 'Microsoft.Sql/servers/databases/write';
/** Geoname ids the embedded 2019 GeoLite2-City gives the IPs of test/support/events.ts. */
export const GEONAME = { london: 2643743, lagos: 2332459 } as const;

/**
 * `days` days of a small tenant: a London team on weekdays (two IPs), an admin listing keys every three hours,
 * an Amsterdam operator and a nightly job, a Mumbai developer every other day, a week in New York, and callers who show up late in
 * an hour (so the hour is seen in parts by 15-minute runs). Deterministic.
 */
export function history(days: number, from = T0): ActivityEvent[] {
  const out: ActivityEvent[] = [];
  for (let d = 0; d < days; d++) {
    const weekday = (d % 7) + 1 <= 5;
    for (let h = 0; h < 24; h++) {
      const t = from + d * DAY + h * HOUR;
      if (weekday && h >= 8 && h < 18) {
        out.push(ev(t + 5 * MIN, DEPLOY, 'dev1@contoso.com', IP.london));
        out.push(ev(t + 25 * MIN, DEPLOY, 'dev2@contoso.com', IP.london2));
        if (h % 2 === 0) out.push(ev(t + 52 * MIN, DEPLOY, 'dev4@contoso.com', IP.london));
      }
      if (h % 3 === 0) out.push(ev(t + 40 * MIN, LISTKEYS, 'admin@contoso.com', IP.london));
      if (h >= 9 && h < 12) out.push(ev(t + 15 * MIN, VM, 'ops1@contoso.com', IP.amsterdam));
      // A nightly job that runs into the last hours before midnight (the overlap of the timer's first windows).
      if (h >= 22) out.push(ev(t + 10 * MIN, BACKUP, 'backup@contoso.com', IP.amsterdam));
      if (d % 2 === 0 && h >= 6 && h < 9) out.push(ev(t + 33 * MIN, DEPLOY, 'dev3@contoso.com', IP.mumbai));
      if (d >= 5 && d < 8 && h >= 14 && h < 20)
        out.push(ev(t + 47 * MIN, DEPLOY, 'dev1@contoso.com', IP.newYork));
      // Azure-internal and private callers: counted as internal, never located.
      if (h === 3) out.push(ev(t + 1 * MIN, ROLES, 'backup-identity', '10.1.2.3', 'servicePrincipal'));
    }
  }
  return out;
}

export async function* iterate(events: readonly ActivityEvent[]): AsyncGenerator<ActivityEvent> {
  for (const e of events) yield e;
  await Promise.resolve();
}

export class Crash extends Error {
  override name = 'Crash';
}

/**
 * Delegates to a real store and "dies" at its n-th write (before or after the write lands): that write and every
 * later one fail, as if the process had been killed there.
 */
export function crashingStore(inner: BaselineStore, crashAtWrite: number, after: boolean): BaselineStore {
  let writes = 0;
  let dead = false;
  const write = async <T>(op: () => Promise<T>): Promise<T> => {
    if (dead) throw new Crash('already crashed');
    const n = ++writes;
    if (n === crashAtWrite && !after) {
      dead = true;
      throw new Crash(`crash before write ${n}`);
    }
    const r = await op();
    if (n === crashAtWrite && after) {
      dead = true;
      throw new Crash(`crash after write ${n}`);
    }
    return r;
  };
  return {
    readPartition: (t, p) => inner.readPartition(t, p),
    readRows: (t, p, k) => inner.readRows(t, p, k),
    listPartitions: (t) => inner.listPartitions(t),
    updatePartition: (t, p, apply) => write(() => inner.updatePartition(t, p, apply)),
    updateRows: (t, p, k, apply) => write(() => inner.updateRows(t, p, k, apply)),
    close: () => inner.close(),
  };
}

/** Every row of the given tables, partitions and rows sorted: comparable with toEqual across stores. */
export async function dump(
  store: BaselineStore,
  tables: readonly TableName[] = ['baselines', 'tenant'],
): Promise<Record<string, Record<string, Entity>>> {
  const out: Record<string, Record<string, Entity>> = {};
  for (const t of tables) {
    for (const p of (await store.listPartitions(t)).sort()) {
      const rows = [...(await store.readPartition(t, p)).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
      if (rows.length > 0) out[`${t}/${p}`] = Object.fromEntries(rows);
    }
  }
  return out;
}

/** Partitions of a table that hold rows. */
export async function partitionsWithRows(store: BaselineStore, table: TableName): Promise<string[]> {
  const out: string[] = [];
  for (const p of await store.listPartitions(table))
    if ((await store.readPartition(table, p)).size > 0) out.push(p);
  return out.sort();
}
