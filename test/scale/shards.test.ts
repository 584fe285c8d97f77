/**
 * Queue mode end to end: the real timer handler (UC_SHARDING=queue) enqueues a tick's shards on Azurite's Queue
 * service with the real QueueClient; worker loops that behave like the Functions host (test/support/azuriteQueue.ts)
 * run the real processShard handler, each with its own clients, in parallel, against the local managed-identity,
 * Log Analytics, Azurite Table and ingestion services. Nothing leaves 127.0.0.1.
 *
 * What it proves: the shards of a tick cover the window's operations exactly once; concurrent shards leave the
 * shared tenant and caller partitions as one process would; two shards finding the same caller in the same city
 * raise one alert; a shard that keeps failing reaches the poison queue, the checkpoint waits for it, and the
 * timer enqueues it again — no gap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { makeShardHandler } from '../../functions/processShard.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import type { BaselineStore, Entity, TableName } from '../../shared/baseline/store.js';
import type { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { commitCheckpoint, readCheckpoint } from '../../shared/pipeline/runState.js';
import { shardsPartition } from '../../shared/pipeline/runState.js';
import { shardOf } from '../../shared/runtime/shards.js';
import { type AzuriteQueues, runQueueWorker } from '../support/azuriteQueue.js';
import { type Harness, startHarness } from '../support/e2eHarness.js';
import { ev, IP } from '../support/events.js';
import type { FakeIngestion } from '../support/fakeIngestion.js';
import type { FakeLogAnalytics } from '../support/fakeLogAnalytics.js';
import { invocationContext, timer } from '../support/invocation.js';
import { LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5); // a Monday
const SHARDS = 4;
/** A second operation of the admin, owned by another shard than LISTKEYS. */
const OTHER = [
  'MICROSOFT.KEYVAULT/VAULTS/WRITE',
  'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE',
  'MICROSOFT.WEB/SITES/WRITE',
  'MICROSOFT.SQL/SERVERS/WRITE',
].find((op) => shardOf(op.toLowerCase(), SHARDS) !== shardOf(LISTKEYS.toLowerCase(), SHARDS))!;
const ATTACK = T0 + 8 * DAY + 3 * HOUR + 10 * MIN;
const TICK = Math.floor((ATTACK + 10 * MIN) / (15 * MIN)) * 15 * MIN + 15 * MIN;

/** Every row of the detector's state tables, for comparing two stores. */
async function dump(
  store: BaselineStore,
  tables: TableName[],
): Promise<Record<string, Record<string, Entity>>> {
  const out: Record<string, Record<string, Entity>> = {};
  for (const t of tables) {
    for (const p of (await store.listPartitions(t)).sort()) {
      out[`${t}/${p}`] = Object.fromEntries([...(await store.readPartition(t, p)).entries()].sort());
    }
  }
  return out;
}

/** Scores remembered with counted hours depend on what the scorer saw, not on what was counted: drop them. */
function withoutScores(rows: Record<string, Record<string, Entity>>) {
  const out: Record<string, Record<string, Record<string, unknown>>> = {};
  for (const [p, r] of Object.entries(rows)) {
    out[p] = {};
    for (const [k, e] of Object.entries(r)) {
      const copy: Record<string, unknown> = { ...e };
      if (typeof copy.recent === 'string')
        copy.recent = (JSON.parse(copy.recent) as [number][]).map(([h]) => h);
      out[p][k] = copy;
    }
  }
  return out;
}

describe('queue mode (UC_SHARDING=queue): timer, Storage queue, processShard workers', () => {
  let harness: Harness & { queues: AzuriteQueues };
  let queues: AzuriteQueues;
  let logs: FakeLogAnalytics;
  let ingestion: FakeIngestion;
  let ca: string;
  const now = { ms: TICK + 5 * MIN };
  const logLines: string[] = [];
  // Eight days of a London team, the admin also working on OTHER every hour.
  const events = londonTeam(8, { also: (t) => [ev(t + 35 * MIN, OTHER, 'admin@contoso.com', IP.london)] });
  let sharded: TableStorageStore;
  let single: TableStorageStore;

  const envFor = (prefix: string, sharding: 'off' | 'queue') =>
    harness.env({
      UC_TABLE_PREFIX: prefix,
      UC_SHARDING: sharding,
      UC_SHARD_COUNT: String(SHARDS),
      UC_SHARD_QUEUE: 'ucshards',
    });
  const context = (name: string) => invocationContext(name, `${name}-${now.ms}`, logLines);

  const tickDone = async (store: BaselineStore, tick: number) => {
    const rows = await store.readPartition('state', shardsPartition(tick));
    return [...Array(SHARDS).keys()].every((i) => rows.has(`s${i}`));
  };

  /** `n` workers, each an "instance" with its own handler and clients, until the ticks are complete. */
  const workers = async (
    n: number,
    prefix: string,
    until: () => Promise<boolean>,
    maxDequeueCount = 5,
    // Long enough that a shard still running is not handed to a second worker (it would be harmless, but the
    // first test counts reads); the poison test uses 1 s so failed shards come back quickly.
    visibilityTimeoutSeconds = 60,
  ) => {
    const env = envFor(prefix, 'queue');
    return Promise.all(
      Array.from({ length: n }, () =>
        runQueueWorker({
          queue: queues.queue('ucshards'),
          poison: queues.queue('ucshards-poison'),
          handler: makeShardHandler({ env, tlsCa: ca, clock: () => now.ms }),
          visibilityTimeoutSeconds,
          maxDequeueCount,
          until,
          timeoutMs: 60_000,
          idleMs: 50,
          log: (l) => logLines.push(l),
        }),
      ),
    );
  };

  beforeAll(async () => {
    harness = await startHarness({
      rows: [
        ...events,
        ev(ATTACK, LISTKEYS, 'admin@contoso.com', IP.lagos),
        ev(ATTACK + 3 * MIN, OTHER, 'admin@contoso.com', IP.lagos),
      ].map(toActivityRow),
      queues: true,
    });
    ({ queues, logs, ingestion, ca } = harness);
    // Eight days of history in two stores (hourly runs keep the set-up quick): one for queue mode, one for a
    // single process, to compare.
    const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
    const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
    sharded = await harness.tableStore('ucqueue');
    single = await harness.tableStore('ucsingle');
    for (const store of [sharded, single]) {
      await replayInto(store, events, { settings: hourly, geo, toMs: T0 + 8 * DAY });
      // The timer has kept up until the tick before the attack's.
      await commitCheckpoint(store, TICK - 15 * MIN);
    }
  }, 120_000);

  afterAll(async () => {
    await harness.stop();
  });

  it('the timer enqueues one message per shard; parallel shards raise one alert for the caller and city', async () => {
    expect(shardOf(OTHER.toLowerCase(), SHARDS)).not.toBe(shardOf(LISTKEYS.toLowerCase(), SHARDS));
    const detect = makeDetectHandler({ env: envFor('ucqueue', 'queue'), tlsCa: ca, clock: () => now.ms });
    const answered = () => logs.requests.filter((r) => r.status === 200).length;
    const queriesBefore = answered();
    const report = await detect(timer(), context('detectUnusualCity'));
    expect(report.ticks).toEqual([TICK]);
    expect(report.alerts).toBe(0); // the timer only enqueues
    expect(answered()).toBe(queriesBefore); // and reads nothing from Log Analytics
    const props = await queues.queue('ucshards').getProperties();
    expect(props.approximateMessagesCount).toBe(SHARDS);
    expect(await readCheckpoint(sharded)).toBe(TICK - 15 * MIN);

    const results = await workers(SHARDS, 'ucqueue', () => tickDone(sharded, TICK));
    expect(results.reduce((n, r) => n + r.processed, 0)).toBe(SHARDS);
    expect(results.reduce((n, r) => n + r.poisoned, 0)).toBe(0);
    // Each shard read the window once — plus once per attempt that failed and was retried (on a loaded machine a
    // shard can lose an ETag race to a sibling often enough to throw; the platform then retries its message).
    const failed = results.reduce((n, r) => n + r.failed, 0);
    expect(answered() - queriesBefore).toBeGreaterThanOrEqual(SHARDS);
    expect(answered() - queriesBefore).toBeLessThanOrEqual(SHARDS + failed);
    // Each asked for its share only (assignment 2: the query filters by the operation's hash).
    const asked = logs.requests
      .filter((r) => r.status === 200)
      .slice(queriesBefore)
      .map((r) => /let shardCount = 4;\nlet shardIndex = (\d);/.exec(r.query)?.[1]);
    expect(new Set(asked)).toEqual(new Set(['0', '1', '2', '3']));
    expect((await sharded.readPartition('state', shardsPartition(TICK))).get('tick')?.assignment).toBe(2);

    // One alert for admin in Lagos, although two shards each found it, delivered once by the shard that
    // completed the tick; the ledger row holds both operations.
    expect(ingestion.received.filter((r) => r.Caller === 'admin@contoso.com')).toHaveLength(1);
    const alert = ingestion.received.find((r) => r.Caller === 'admin@contoso.com')!;
    expect(alert.SrcGeoCity).toBe('Lagos');
    const ledger = await sharded.readPartition('alerts', 'admin@contoso.com');
    expect(ledger.size).toBe(1);
    const row = [...ledger.values()][0]!;
    expect(JSON.parse(String(row.operations))).toEqual(expect.arrayContaining([LISTKEYS, OTHER]));
    // The finalizing shard moved the checkpoint; a timer run finds nothing left to wait for.
    expect(await readCheckpoint(sharded)).toBe(TICK);
    const tickRows = await sharded.readPartition('state', shardsPartition(TICK));
    expect(tickRows.get('tick')?.finalizedAtMs).toBeGreaterThan(0);
  }, 90_000);

  it('shared partitions converge: tenant, callers and baselines as one process leaves them', async () => {
    const detect = makeDetectHandler({ env: envFor('ucsingle', 'off'), tlsCa: ca, clock: () => now.ms });
    const report = await detect(timer(), context('detectUnusualCity'));
    expect(report.ticks).toEqual([TICK]);
    expect(report.alerts).toBe(1);
    const tables: TableName[] = ['baselines', 'tenant'];
    const a = withoutScores(await dump(sharded, tables));
    const b = withoutScores(await dump(single, tables));
    expect(Object.keys(a).length).toBeGreaterThan(4);
    expect(a).toEqual(b);
    // Same ledger episode, the same operations.
    const la = [...(await sharded.readPartition('alerts', 'admin@contoso.com')).values()][0]!;
    const lb = [...(await single.readPartition('alerts', 'admin@contoso.com')).values()][0]!;
    expect(la.cityKey).toBe(lb.cityKey);
    expect((JSON.parse(String(la.operations)) as string[]).sort()).toEqual(
      (JSON.parse(String(lb.operations)) as string[]).sort(),
    );
  }, 60_000);

  it('a shard that keeps failing goes to the poison queue; the checkpoint waits; the timer enqueues it again', async () => {
    const detect = makeDetectHandler({ env: envFor('ucqueue', 'queue'), tlsCa: ca, clock: () => now.ms });
    const next = TICK + 15 * MIN;
    now.ms = next + 5 * MIN;
    expect((await detect(timer(), context('detectUnusualCity'))).ticks).toEqual([next]);
    // Five incomplete answers in a row: every shard's first attempt fails, and one shard's second attempt too.
    logs.failNext('partial', SHARDS + 1);
    const first = await workers(
      1,
      'ucqueue',
      async () => {
        const rows = await sharded.readPartition('state', shardsPartition(next));
        const done = [...rows.keys()].filter((k) => /^s\d+$/.test(k)).length;
        const poison = queues.queue('ucshards-poison');
        const poisoned = (await poison.exists())
          ? (await poison.getProperties()).approximateMessagesCount
          : 0;
        return done === SHARDS - 1 && poisoned === 1; // all but the poisoned one
      },
      2,
      3,
    );
    expect(first[0]!.poisoned).toBe(1);
    expect(first[0]!.failed).toBe(SHARDS + 1);
    expect(await tickDone(sharded, next)).toBe(false);
    const poison = await queues.queue('ucshards-poison').getProperties();
    expect(poison.approximateMessagesCount).toBe(1);
    expect(await readCheckpoint(sharded)).toBe(TICK);

    // A timer run soon after: the checkpoint still waits, the shard is not enqueued again yet.
    now.ms = next + 20 * MIN;
    const waiting = await detect(timer(), context('detectUnusualCity'));
    expect(waiting.stoppedBecause).toMatch(/waits for shards of 1 tick/);
    expect(await readCheckpoint(sharded)).toBe(TICK);
    await workers(1, 'ucqueue', () => tickDone(sharded, next + 15 * MIN));

    // Thirty minutes after its last enqueue, the timer enqueues the missing shard again: the tick completes
    // and the checkpoint moves over it and every complete tick after it.
    now.ms = next + 36 * MIN;
    const again = await detect(timer(), context('detectUnusualCity'));
    expect(again.ticks).toEqual([next + 30 * MIN]);
    await workers(
      2,
      'ucqueue',
      async () => (await tickDone(sharded, next)) && tickDone(sharded, next + 30 * MIN),
    );
    now.ms = next + 40 * MIN;
    const last = await detect(timer(), context('detectUnusualCity'));
    expect(last.stoppedBecause).toBeUndefined();
    expect(await readCheckpoint(sharded)).toBe(next + 30 * MIN);
    expect(logLines.some((l) => l.includes('enqueued again'))).toBe(true);
  }, 120_000);
});
