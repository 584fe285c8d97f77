/**
 * Warm baselines for the benchmark tenant: what eight weeks of this tenant's history would have left in Table
 * Storage — every (operation, city) its callers use, established, the tenant's cities, each caller's cities — so
 * that a "warm" run reads full partitions, updates existing rows and can tell the injected attacks from normal
 * work. Written with the production store (same encoding, transactions of up to 100).
 */
import type { BaselineStore, Entity } from '../shared/baseline/store.js';
import type { City, Geolocator } from '../shared/geo/types.js';
import {
  CALLER_LAYOUT_BUCKETS,
  CALLER_LAYOUT_PROPERTY,
  callerBucket,
  callerRowKey,
} from '../shared/pipeline/callers.js';
import { commitCheckpoint } from '../shared/pipeline/runState.js';
import {
  callerCityToEntity,
  cityToEntity,
  OPERATION_SUMMARY_ROW,
  operationSummaryEntity,
  TENANT_PARTITION,
  TENANT_SUMMARY_ROW,
  tenantCityToEntity,
} from '../shared/pipeline/state.js';
import type { BenchPopulation } from './tenant.js';
import { DAY_MS, HOUR_MS } from './tenant.js';

export interface SeedOptions {
  pop: BenchPopulation;
  geo: Geolocator;
  store: BaselineStore;
  /** The warm run's window start: history ends the day before. */
  windowStartMs: number;
  /** Callers to seed (those active in the window); undefined: all. */
  callers?: ReadonlySet<string>;
  maxCallersPerCity: number;
  /** Checkpoint to leave (the tick before the warm run's), or 0. */
  checkpointMs: number;
  concurrency?: number;
}

export interface SeedResult {
  operations: number;
  pairs: number;
  tenantCities: number;
  callers: number;
  callerCities: number;
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function seedWarmBaselines(o: SeedOptions): Promise<SeedResult> {
  const lastMs = Math.floor((o.windowStartMs - DAY_MS) / HOUR_MS) * HOUR_MS;
  const firstMs = lastMs - 56 * DAY_MS;
  const lastDay = Math.floor(lastMs / DAY_MS);
  const ops = new Map<number, Map<string, { city: City; callers: string[] }>>();
  const tenant = new Map<string, City>();
  const callers = new Map<string, Set<string>>();
  const cityOf = new Map<string, City | undefined>();
  for (const c of o.pop.callers) {
    if (o.callers !== undefined && !o.callers.has(c.caller)) continue;
    for (const ip of c.ips) {
      let city = cityOf.get(ip);
      if (!cityOf.has(ip)) {
        const r = o.geo.locate(ip);
        city = r.kind === 'city' ? r.city : undefined;
        cityOf.set(ip, city);
      }
      if (city === undefined) continue;
      tenant.set(city.key, city);
      let mine = callers.get(c.caller);
      if (!mine) callers.set(c.caller, (mine = new Set()));
      mine.add(city.key);
      for (const op of c.ops) {
        let pairs = ops.get(op);
        if (!pairs) ops.set(op, (pairs = new Map<string, { city: City; callers: string[] }>()));
        let pair = pairs.get(city.key);
        if (!pair) pairs.set(city.key, (pair = { city, callers: [] }));
        if (pair.callers.length < o.maxCallersPerCity && !pair.callers.includes(c.caller))
          pair.callers.push(c.caller);
      }
    }
  }
  const writes: { table: 'baselines' | 'tenant'; partition: string; rows: Map<string, Entity> }[] = [];
  let pairs = 0;
  for (const [op, cities] of ops) {
    const name = o.pop.operations[op]!;
    const rows = new Map<string, Entity>();
    rows.set(
      OPERATION_SUMMARY_ROW,
      operationSummaryEntity({
        operationKey: name.toLowerCase(),
        operation: name,
        activeHours: 600,
        firstSeenMs: firstMs,
        lastSeenMs: lastMs,
        recentHours: [],
        cities: new Map(),
      }),
    );
    for (const { city, callers: who } of cities.values()) {
      const hours = 20 + 4 * who.length;
      rows.set(
        city.key,
        cityToEntity({
          cityKey: city.key,
          name: city.name,
          region: city.region,
          country: city.country,
          latitude: city.latitude,
          longitude: city.longitude,
          n: hours * 0.8,
          decayedAtMs: lastMs,
          rawHours: hours,
          firstSeenMs: firstMs,
          lastSeenMs: lastMs,
          days: 30,
          lastDay,
          lastWeightedDay: lastDay,
          callers: who,
          established: true,
          recent: [],
          quarantinedHours: 0,
        }),
      );
      pairs += 1;
    }
    writes.push({ table: 'baselines', partition: name.toLowerCase(), rows });
  }
  const tenantRows = new Map<string, Entity>([
    [
      TENANT_SUMMARY_ROW,
      {
        firstSeenMs: firstMs,
        observedDays: 30,
        lastObservedDay: lastDay,
        [CALLER_LAYOUT_PROPERTY]: CALLER_LAYOUT_BUCKETS,
      },
    ],
  ]);
  for (const city of tenant.values()) {
    tenantRows.set(
      city.key,
      tenantCityToEntity({
        cityKey: city.key,
        name: city.name,
        country: city.country,
        latitude: city.latitude,
        longitude: city.longitude,
        n: 200,
        decayedAtMs: lastMs,
        rawHours: 250,
        firstSeenMs: firstMs,
        lastSeenMs: lastMs,
        days: 30,
        lastDay,
        recentHours: [],
        quarantinedHours: 0,
      }),
    );
  }
  writes.push({ table: 'tenant', partition: TENANT_PARTITION, rows: tenantRows });
  let callerCities = 0;
  const buckets = new Map<string, Map<string, Entity>>();
  for (const [caller, cities] of callers) {
    const bucket = callerBucket(caller);
    let rows = buckets.get(bucket);
    if (!rows) buckets.set(bucket, (rows = new Map<string, Entity>()));
    for (const key of cities) {
      rows.set(
        callerRowKey(caller, key),
        callerCityToEntity({
          cityKey: key,
          rawHours: 40,
          days: 20,
          lastDay,
          firstSeenMs: firstMs,
          lastSeenMs: lastMs,
          recentHours: [],
          quarantinedUntilMs: 0,
        }),
      );
      callerCities += 1;
    }
  }
  for (const [bucket, rows] of buckets) writes.push({ table: 'tenant', partition: bucket, rows });
  await mapLimit(writes, o.concurrency ?? 16, (w) =>
    o.store.updatePartition(w.table, w.partition, () => new Map(w.rows)),
  );
  if (o.checkpointMs > 0) await commitCheckpoint(o.store, o.checkpointMs);
  return {
    operations: ops.size,
    pairs,
    tenantCities: tenant.size,
    callers: callers.size,
    callerCities,
  };
}
