/**
 * Callers' city histories in the `tenant` table, in 64 bucket partitions.
 *
 * Layout: partition `callers:<nn>` (nn = CALLER_BUCKETS buckets by a stable hash of the caller), one row per
 * (caller, city) keyed `<caller>\u0000<cityKey>`, the entity of callerCityToEntity. A run reads each bucket its
 * callers fall in once and writes each bucket in transactions of up to 100 rows: requests grow with the buckets
 * and rows touched, not with callers (one partition per caller cost a read and a transaction per active caller
 * per run: 17,000 of the 18,000 Table requests of a 1M-row window, see docs/performance.md).
 *
 * Before this layout each caller had its own partition `caller:<caller>` (callerPartition). Stores written by
 * that version are migrated lazily: while the tenant summary row lacks CALLER_LAYOUT_PROPERTY, a caller with no
 * rows in its bucket is also looked up in its old partition; a run that updates such a caller writes its rows to
 * the bucket and then deletes the old partition. A store created with this layout carries the marker from its
 * first run and never looks in old partitions.
 *
 * The bucket hash (FNV-1a over UTF-16 code units) addresses stored rows: it must never change.
 */
import type { BaselineStore, Entity, PartitionUpdate } from '../baseline/store.js';
import type { CallerCity } from '../scoring/model.js';
import { type CallerHourUpdate, countCallerHour, MAX_CITIES_PER_CALLER } from '../scoring/update.js';
import { type RejectHandler, updateIsolated } from './isolate.js';
import {
  callerCitiesFromRows,
  callerCityToEntity,
  callerPartition,
  sameEntity,
  TENANT_SUMMARY_ROW,
} from './state.js';

export const CALLER_BUCKETS = 64;
/** Property of the tenant summary row: present once every caller lives in buckets (stores created so). */
export const CALLER_LAYOUT_PROPERTY = 'callerLayout';
export const CALLER_LAYOUT_BUCKETS = 'buckets';

/**
 * FNV-1a, 32 bits, over UTF-16 code units: stable across processes and versions (it decides which partition
 * holds a caller).
 */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The bucket partition (in the `tenant` table) holding a caller's cities. */
export function callerBucket(caller: string): string {
  return bucketName(fnv1a(caller) % CALLER_BUCKETS);
}

const bucketName = (i: number): string => `callers:${String(i).padStart(2, '0')}`;

/** Row key of one (caller, city) in its bucket. City keys never contain U+0000; callers might, so split last. */
export const callerRowKey = (caller: string, cityKey: string): string => `${caller}\u0000${cityKey}`;

function splitRowKey(rowKey: string): [caller: string, cityKey: string] | undefined {
  const at = rowKey.lastIndexOf('\u0000');
  return at < 0 ? undefined : [rowKey.slice(0, at), rowKey.slice(at + 1)];
}

/** True when the tenant's rows say callers live in buckets only (no old per-caller partitions to look in). */
export function bucketsOnly(tenantRows: ReadonlyMap<string, Entity>): boolean {
  if (tenantRows.size === 0) return true; // a new store: written in buckets from its first run
  return tenantRows.get(TENANT_SUMMARY_ROW)?.[CALLER_LAYOUT_PROPERTY] === CALLER_LAYOUT_BUCKETS;
}

/** The rows of `callers` in one bucket's rows, by caller. */
function citiesInBucket(
  rows: ReadonlyMap<string, Entity>,
  callers: ReadonlySet<string>,
): Map<string, Map<string, Entity>> {
  const out = new Map<string, Map<string, Entity>>();
  for (const [rowKey, e] of rows) {
    const k = splitRowKey(rowKey);
    if (k === undefined || !callers.has(k[0])) continue;
    let mine = out.get(k[0]);
    if (!mine) out.set(k[0], (mine = new Map<string, Entity>()));
    mine.set(k[1], e);
  }
  return out;
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

const byBucket = (callers: Iterable<string>): Map<string, Set<string>> => {
  const out = new Map<string, Set<string>>();
  for (const c of callers) {
    const b = callerBucket(c);
    let set = out.get(b);
    if (!set) out.set(b, (set = new Set()));
    set.add(c);
  }
  return out;
};

export interface CallerHistories {
  cities: Map<string, Map<string, CallerCity>>;
  /** Callers found only in their old per-caller partition: migrated by the next update. */
  legacy: Map<string, Map<string, CallerCity>>;
}

/** Reads the cities of `callers`: one query per bucket, plus old partitions while a store is being migrated. */
export async function readCallerHistories(
  store: BaselineStore,
  callers: readonly string[],
  tenantRows: ReadonlyMap<string, Entity>,
  concurrency = 8,
): Promise<CallerHistories> {
  const cities = new Map<string, Map<string, CallerCity>>();
  const legacy = new Map<string, Map<string, CallerCity>>();
  await mapLimit([...byBucket(callers)], concurrency, async ([bucket, mine]) => {
    const rows = await store.readPartition('tenant', bucket);
    for (const [caller, r] of citiesInBucket(rows, mine)) cities.set(caller, callerCitiesFromRows(r));
  });
  if (!bucketsOnly(tenantRows)) {
    const missing = callers.filter((c) => !cities.has(c));
    await mapLimit(missing, concurrency, async (caller) => {
      const rows = await store.readPartition('tenant', callerPartition(caller));
      if (rows.size === 0) return;
      const old = callerCitiesFromRows(rows);
      cities.set(caller, old);
      legacy.set(caller, old);
    });
  }
  return { cities, legacy };
}

/**
 * The new rows of one caller after counting `hours`: the most recently used MAX_CITIES_PER_CALLER cities (an old
 * city dropped is simply "new to the caller" again). Returns changes against `current` (row key → entity|null).
 */
function callerChanges(
  caller: string,
  start: ReadonlyMap<string, CallerCity>,
  hours: readonly CallerHourUpdate[],
  current: ReadonlyMap<string, Entity>,
  out: Map<string, Entity | null>,
): void {
  let cities = new Map(start);
  for (const u of hours)
    cities = countCallerHour(cities, u.cityKey, u.hourMs, u.quarantineUntilMs, u.markOnly === true).cities;
  const keep = [...cities.values()].sort(
    (a, b) => b.lastSeenMs - a.lastSeenMs || a.cityKey.localeCompare(b.cityKey),
  );
  keep.forEach((c, i) => {
    const rowKey = callerRowKey(caller, c.cityKey);
    if (i >= MAX_CITIES_PER_CALLER) {
      if (current.has(rowKey)) out.set(rowKey, null);
      return;
    }
    const e = callerCityToEntity(c);
    if (!sameEntity(current.get(rowKey), e)) out.set(rowKey, e);
  });
}

/**
 * Counts each caller's (city, hour)s into its bucket, re-applied to what is stored now (a concurrent writer may
 * have moved it; idempotent). Then drops the old partition of every caller migrated by this write.
 */
export async function updateCallerHistories(
  store: BaselineStore,
  updates: ReadonlyMap<string, readonly CallerHourUpdate[]>,
  legacy: ReadonlyMap<string, ReadonlyMap<string, CallerCity>>,
  /** Rows the store refuses are skipped (the other callers of the bucket are written); absent: they throw. */
  rejected?: RejectHandler,
  concurrency = 8,
): Promise<void> {
  await mapLimit([...byBucket(updates.keys())], concurrency, async ([bucket, mine]) => {
    const apply: PartitionUpdate = (cur) => {
      const out = new Map<string, Entity | null>();
      const stored = citiesInBucket(cur, mine);
      for (const caller of mine) {
        const rows = stored.get(caller);
        // Rows in the bucket win over an old partition (another run may already have migrated the caller).
        const start = rows
          ? callerCitiesFromRows(rows)
          : (legacy.get(caller) ?? new Map<string, CallerCity>());
        const current = new Map<string, Entity>();
        for (const [cityKey, e] of rows ?? []) current.set(callerRowKey(caller, cityKey), e);
        callerChanges(caller, start, updates.get(caller) ?? [], current, out);
      }
      return out;
    };
    if (rejected) await updateIsolated(store, 'tenant', bucket, apply, rejected);
    else await store.updatePartition('tenant', bucket, apply);
  });
  await mapLimit([...legacy.keys()], concurrency, (caller) =>
    store.updatePartition(
      'tenant',
      callerPartition(caller),
      (cur) => new Map([...cur.keys()].map((k) => [k, null])),
    ),
  );
}

/**
 * Forgets one city from a caller's history (both layouts). Returns whether anything was removed. For tools
 * (`unusual-city baseline forget --caller`).
 */
export async function forgetCallerCity(
  store: BaselineStore,
  caller: string,
  cityKey: string,
): Promise<boolean> {
  let removed = false;
  const rowKey = callerRowKey(caller, cityKey);
  await store.updateRows('tenant', callerBucket(caller), [rowKey], (cur) => {
    removed = cur.has(rowKey);
    return removed ? new Map([[rowKey, null]]) : new Map<string, Entity | null>();
  });
  let removedOld = false;
  await store.updateRows('tenant', callerPartition(caller), [cityKey], (cur) => {
    removedOld = cur.has(cityKey);
    return removedOld ? new Map([[cityKey, null]]) : new Map<string, Entity | null>();
  });
  return removed || removedOld;
}

/** The cities a caller has (both layouts), for tools. */
export async function readCallerCities(
  store: BaselineStore,
  caller: string,
): Promise<Map<string, CallerCity>> {
  const h = await readCallerHistories(store, [caller], new Map([[TENANT_SUMMARY_ROW, {}]]));
  return h.cities.get(caller) ?? new Map();
}

/**
 * Lifts the quarantine (CallerCity.quarantinedUntilMs) of every (caller, city) an allow rule covers: one caller
 * (`caller`), one city for everyone (`cityKey`), or one caller in one city (both). Returns how many rows changed.
 * For `baseline allow`: an analyst confirmed the place as benign, so its hours count from now on.
 */
export async function liftQuarantine(
  store: BaselineStore,
  scope: { caller?: string; cityKey?: string },
): Promise<number> {
  const buckets =
    scope.caller !== undefined
      ? [callerBucket(scope.caller)]
      : Array.from({ length: CALLER_BUCKETS }, (_, i) => bucketName(i));
  let lifted = 0;
  await mapLimit(buckets, 8, async (bucket) => {
    await store.updatePartition('tenant', bucket, (cur) => {
      const out = new Map<string, Entity | null>();
      for (const [rowKey, e] of cur) {
        const k = splitRowKey(rowKey);
        if (k === undefined || typeof e.quarantinedUntilMs !== 'number' || e.quarantinedUntilMs <= 0)
          continue;
        if (scope.caller !== undefined && k[0] !== scope.caller) continue;
        if (scope.cityKey !== undefined && k[1] !== scope.cityKey) continue;
        const { quarantinedUntilMs: _lifted, ...rest } = e;
        out.set(rowKey, rest);
      }
      lifted += out.size;
      return out;
    });
  });
  return lifted;
}
