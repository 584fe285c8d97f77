/**
 * The performance changes to persistence, proven on both backends:
 * - BaselineStore.batch: SQLite makes a run one transaction (all or nothing); Table Storage reads each
 *   partition once per run and still detects a concurrent writer (ETag) when its remembered read is stale;
 * - callers' histories in 64 bucket partitions (shared/pipeline/callers.ts): requests per run grow with
 *   buckets, not callers; stores of the old per-caller layout are read and migrated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type CountingAzurite, startCountingAzurite } from '../../bench/azurite.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore, Entity } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator } from '../../shared/geo/types.js';
import {
  CALLER_BUCKETS,
  callerBucket,
  callerRowKey,
  forgetCallerCity,
  readCallerCities,
} from '../../shared/pipeline/callers.js';
import {
  callerCityToEntity,
  callerPartition,
  TENANT_PARTITION,
  TENANT_SUMMARY_ROW,
} from '../../shared/pipeline/state.js';
import { runTick } from '../../shared/pipeline/tick.js';
import type { EventGroup } from '../../shared/pipeline/types.js';
import { IP } from '../support/events.js';

const HOUR = 3_600_000;
const T = Date.UTC(2026, 10, 2, 10);

function group(operation: string, caller: string, ip: string, hourMs: number, count = 3): EventGroup {
  return {
    operation,
    operationKey: operation.toLowerCase(),
    caller,
    callerType: 'user',
    callerIp: ip,
    hourMs,
    count,
    firstMs: hourMs + 60_000,
    lastMs: hourMs + 120_000,
    resourceIds: [],
    correlationIds: [],
    subscriptionId: '',
    resourceGroup: '',
  };
}

/** Counts the store's calls, and forwards batch. */
function counting(inner: BaselineStore) {
  const calls = { readPartition: [] as string[], updatePartition: [] as string[] };
  const store: BaselineStore = {
    readPartition: (t, p) => (calls.readPartition.push(`${t}/${p}`), inner.readPartition(t, p)),
    readRows: (t, p, k) => inner.readRows(t, p, k),
    updatePartition: (t, p, a) => (calls.updatePartition.push(`${t}/${p}`), inner.updatePartition(t, p, a)),
    updateRows: (t, p, k, a) => inner.updateRows(t, p, k, a),
    listPartitions: (t) => inner.listPartitions(t),
    close: () => inner.close(),
    ...(inner.batch ? { batch: <T>(fn: () => Promise<T>) => inner.batch!(fn) } : {}),
  };
  return { store, calls };
}

let geo: Geolocator;
let azurite: CountingAzurite;
beforeAll(async () => {
  geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  azurite = await startCountingAzurite();
});
afterAll(async () => azurite.stop());

const openTables = (prefix: string) =>
  TableStorageStore.open({
    endpoint: azurite.endpoint,
    credential: azurite.credential,
    tablePrefix: prefix,
    allowInsecureConnection: true,
  });

describe('BaselineStore.batch', () => {
  it('SQLite: one transaction — everything or nothing, nested batches inside the outer one', async () => {
    const store = SqliteStore.open(':memory:');
    await store.batch(async () => {
      await store.updatePartition('tenant', 'a', () => new Map([['r', { n: 1 }]]));
      await store.batch(() => store.updatePartition('tenant', 'b', () => new Map([['r', { n: 2 }]])));
    });
    expect((await store.readPartition('tenant', 'b')).get('r')).toEqual({ n: 2 });
    const failed = await store
      .batch(async () => {
        await store.updatePartition('tenant', 'a', () => new Map([['r', { n: 10 }]]));
        await store.updatePartition('tenant', 'c', () => new Map([['r', { n: 3 }]]));
        throw new Error('crash in the middle of a run');
      })
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    expect((await store.readPartition('tenant', 'a')).get('r')).toEqual({ n: 1 });
    expect((await store.readPartition('tenant', 'c')).size).toBe(0);
    // The store is usable afterwards (no transaction left open).
    await store.updatePartition('tenant', 'c', () => new Map([['r', { n: 4 }]]));
    expect((await store.readPartition('tenant', 'c')).get('r')).toEqual({ n: 4 });
    await store.close();
  });

  it('Table Storage: a partition read in the batch is not read again by its update', async () => {
    const store = await openTables('batchreads');
    await store.updatePartition('baselines', 'op', () => new Map([['x', { n: 1 }]]));
    azurite.reset();
    await store.batch(async () => {
      const rows = await store.readPartition('baselines', 'op');
      await store.updatePartition(
        'baselines',
        'op',
        () => new Map([['x', { n: Number(rows.get('x')?.n) + 1 }]]),
      );
    });
    expect(azurite.counts.queries).toBe(1);
    expect(azurite.counts.transactions).toBe(1);
    expect((await store.readPartition('baselines', 'op')).get('x')).toEqual({ n: 2 });
    // Without a batch, an update reads for itself.
    azurite.reset();
    await store.readPartition('baselines', 'op');
    await store.updatePartition('baselines', 'op', () => new Map([['x', { n: 3 }]]));
    expect(azurite.counts.queries).toBe(2);
  });

  it('Table Storage: a remembered read gone stale fails the conditional write and is re-read, nothing is lost', async () => {
    const store = await openTables('batchstale');
    const other = await openTables('batchstale');
    await store.updatePartition('tenant', 'shared', () => new Map([['city', { hours: 1 }]]));
    await store.batch(async () => {
      await store.readPartition('tenant', 'shared');
      // A concurrent writer (another shard) moves the row after our read.
      await other.updatePartition(
        'tenant',
        'shared',
        (cur) => new Map([['city', { hours: Number(cur.get('city')?.hours) + 1 }]]),
      );
      await store.updatePartition(
        'tenant',
        'shared',
        (cur) => new Map([['city', { hours: Number(cur.get('city')?.hours) + 10 }]]),
      );
    });
    expect((await store.readPartition('tenant', 'shared')).get('city')).toEqual({ hours: 12 });
    expect(store.conflictRetries).toBe(1);
  });
});

describe('callers in bucket partitions', () => {
  const settings = loadSettings({});
  const pipeline = (store: BaselineStore) => ({
    store,
    geo,
    settings,
    sink: new MemoryAlertSink(),
    defaults: alertDefaults(settings),
  });

  it('a run with 300 callers reads and writes at most 64 caller partitions, one each', async () => {
    const inner = SqliteStore.open(':memory:');
    const { store, calls } = counting(inner);
    const groups = Array.from({ length: 300 }, (_, i) =>
      group(
        'Microsoft.Compute/virtualMachines/write',
        `user${i}@contoso.com`,
        i % 2 ? IP.london : IP.amsterdam,
        T - HOUR,
      ),
    );
    await runTick(pipeline(store), T, groups);
    const callerReads = calls.readPartition.filter((p) => p.startsWith('tenant/callers:'));
    const callerWrites = calls.updatePartition.filter((p) => p.startsWith('tenant/callers:'));
    expect(new Set(callerReads).size).toBe(callerReads.length);
    expect(callerReads.length).toBeLessThanOrEqual(CALLER_BUCKETS);
    expect(callerWrites.length).toBeLessThanOrEqual(CALLER_BUCKETS);
    expect(calls.readPartition.some((p) => p.startsWith('tenant/caller:'))).toBe(false);
    expect(
      (await inner.readRows('tenant', TENANT_PARTITION, [TENANT_SUMMARY_ROW])).get(TENANT_SUMMARY_ROW),
    ).toMatchObject({
      callerLayout: 'buckets',
    });
    const cities = await readCallerCities(inner, 'user7@contoso.com');
    expect([...cities.keys()]).toEqual(['g:2643743']);
    expect(cities.get('g:2643743')?.rawHours).toBe(1);
    await inner.close();
  });

  it('a store of the old layout (one partition per caller) is read, then migrated by the next update', async () => {
    const store = SqliteStore.open(':memory:');
    const caller = 'admin@contoso.com';
    // Written by the previous version: tenant summary without the layout marker, caller rows in caller:<caller>.
    await store.updatePartition(
      'tenant',
      TENANT_PARTITION,
      () => new Map([[TENANT_SUMMARY_ROW, { firstSeenMs: T - 30 * 24 * HOUR }]]),
    );
    const old: Entity = callerCityToEntity({
      cityKey: 'g:2332459',
      rawHours: 40,
      days: 12,
      lastDay: Math.floor((T - 48 * HOUR) / 86_400_000),
      firstSeenMs: T - 20 * 24 * HOUR,
      quarantinedUntilMs: 0,
      lastSeenMs: T - 48 * HOUR,
      recentHours: [],
    });
    await store.updatePartition('tenant', callerPartition(caller), () => new Map([['g:2332459', old]]));
    expect((await readCallerCities(store, caller)).get('g:2332459')?.rawHours).toBe(40);

    await runTick(pipeline(store), T, [group('Microsoft.Web/sites/write', caller, IP.lagos, T - HOUR)]);
    // Lagos was found in the old partition (40 hours + this one) and now lives in the caller's bucket.
    const bucket = await store.readPartition('tenant', callerBucket(caller));
    expect(bucket.get(callerRowKey(caller, 'g:2332459'))?.rawHours).toBe(41);
    expect((await store.readPartition('tenant', callerPartition(caller))).size).toBe(0);
    expect((await readCallerCities(store, caller)).get('g:2332459')?.rawHours).toBe(41);
    // The old store keeps looking in old partitions for callers it has not met yet (no marker is written).
    expect(
      (await store.readRows('tenant', TENANT_PARTITION, [TENANT_SUMMARY_ROW])).get(TENANT_SUMMARY_ROW)
        ?.callerLayout,
    ).toBeUndefined();

    expect(await forgetCallerCity(store, caller, 'g:2332459')).toBe(true);
    expect((await readCallerCities(store, caller)).size).toBe(0);
    expect(await forgetCallerCity(store, caller, 'g:2332459')).toBe(false);
    await store.close();
  });
});
