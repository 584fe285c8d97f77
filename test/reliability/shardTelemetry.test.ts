/**
 * Queue mode's telemetry (issue 14, isolation): a shard whose rows the store refuses goes on, and its own
 * `UnusualCityRun` (with `shard`) counts them in `rowsRejected`, as the timer's run does in one process; the
 * workbook's health section sums the shards' counts with the timer's.
 */
import { describe, expect, it } from 'vitest';

import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { InvalidEntityError, type TableName } from '../../shared/baseline/store.js';
import { loadSettings } from '../../shared/config/settings.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { shardsPartition } from '../../shared/pipeline/runState.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import type { DetectorDeps } from '../../shared/runtime/deps.js';
import { runShard, type ShardMessage } from '../../shared/runtime/shards.js';
import { makeTelemetry } from '../../shared/runtime/telemetry.js';
import { allItems, loadWorkbook } from '../infra/workbook.js';
import { embeddedGeo, memoryOutbox } from '../support/detectorDeps.js';

const MIN = 60_000;
const SHARDS = 2;
const settings = loadSettings({ UC_SHARDING: 'queue', UC_SHARD_COUNT: String(SHARDS) });
const data = generateTenant(28);
const events = new AggregatedEvents(settings.UC_TICK_INTERVAL, settings.UC_LOOKBACK);
for (const e of data.events) events.add(e);
const TICK = data.labels.startMs + 20 * 86_400_000 + 14 * 60 * MIN; // day 20, 14:00: a busy hour

interface Tracked {
  name: string;
  props: Record<string, unknown>;
  measurements: Record<string, number>;
}

/** In-process deps whose store refuses every write to `refused` (as Table Storage answers 400 for a row). */
async function shardDeps(refused: TableName) {
  const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  const sink = new MemoryAlertSink();
  const store = SqliteStore.open(':memory:');
  const refusing = Object.create(store) as SqliteStore;
  let refusals = 0;
  const refuse = (table: TableName, partition: string) => {
    refusals += 1;
    return Promise.reject(new InvalidEntityError(table, partition, undefined, 'property too large'));
  };
  refusing.updatePartition = (table, partition, apply) =>
    table === refused ? refuse(table, partition) : store.updatePartition(table, partition, apply);
  refusing.updateRows = (table, partition, keys, apply) =>
    table === refused ? refuse(table, partition) : store.updateRows(table, partition, keys, apply);
  const tracked: Tracked[] = [];
  const deps: Omit<DetectorDeps, 'log'> & { log: DetectorDeps['log'] } = {
    settings,
    store: refusing,
    source: { read: (start, end) => events.read(start, end) },
    geo: embeddedGeo(geo, { ageDays: 2000, stale: true }),
    outbox: memoryOutbox(sink),
    deliver: () => Promise.resolve({ delivered: sink.alerts.length, failed: 0, pending: 0 }),
    telemetry: makeTelemetry(
      {
        trackEvent: (t) =>
          tracked.push({ name: t.name, props: t.properties ?? {}, measurements: t.measurements ?? {} }),
        trackMetric: () => undefined,
        trackException: () => undefined,
        flush: () => undefined,
      },
      false,
    ),
    log: () => undefined,
    clock: () => TICK + 5 * MIN,
  };
  return { deps, store, tracked, refusals: () => refusals };
}

const message = (shard: number): ShardMessage => ({
  v: 2,
  tickMs: TICK,
  windowStartMs: TICK - settings.UC_LOOKBACK,
  windowEndMs: TICK,
  shard,
  shards: SHARDS,
});

describe('queue-mode shards report rowsRejected', () => {
  it('each shard sends its UnusualCityRun with the rows the store refused; the tick completes', async () => {
    const { deps, store, tracked, refusals } = await shardDeps('baselines');
    // The tick as the timer recorded it when it enqueued the shards.
    const tick = { shards: SHARDS, windowStartMs: TICK - settings.UC_LOOKBACK, windowEndMs: TICK };
    await store.updateRows(
      'state',
      shardsPartition(TICK),
      ['tick'],
      () =>
        new Map([['tick', { ...tick, enqueuedAtMs: TICK, enqueues: 1, finalizedAtMs: 0, assignment: 2 }]]),
    );
    const outcomes = [];
    for (let shard = 0; shard < SHARDS; shard++)
      outcomes.push(await runShard(deps, message(shard), { invocationId: `shard-${shard}` }));

    expect(outcomes.some((o) => o.shardGroups > 0)).toBe(true);
    expect(refusals()).toBeGreaterThan(0);
    const runs = tracked.filter((t) => t.name === 'UnusualCityRun');
    expect(runs.map((r) => r.props.shard).sort()).toEqual(['0/2', '1/2']);
    for (const o of outcomes) {
      const run = runs.find((r) => r.props.invocationId === o.report?.invocationId)!;
      expect(run.measurements.rowsRejected).toBe(o.stats!.rowsRejected);
      expect(run.measurements.observations).toBe(o.stats!.scored);
      if (o.shardGroups > 0) expect(o.stats!.rowsRejected).toBeGreaterThan(0);
    }
    const rejected = runs.reduce((n, r) => n + r.measurements.rowsRejected!, 0);
    expect(rejected).toBeGreaterThan(0);
    // Refusals are retried row by row before a row is counted: at least one refusal per counted row.
    expect(rejected).toBeLessThanOrEqual(refusals());
    // Detection went on: both shards are done and the last one finalized the tick.
    expect(outcomes.filter((o) => o.finalized)).toHaveLength(1);
    const done = await store.readPartition('state', shardsPartition(TICK));
    expect([...done.keys()].sort()).toEqual(['s0', 's1', 'tick']);
  }, 60_000);

  it("the workbook's health section sums rowsRejected over every UnusualCityRun, shards included", () => {
    const health = allItems(loadWorkbook().items).filter((i) =>
      (typeof i.content.query === 'string' ? i.content.query : '').includes(
        'customMeasurements.rowsRejected',
      ),
    );
    expect(health.map((i) => i.name).sort()).toEqual(['health-latest', 'health-outbox-geoip']);
    for (const item of health) {
      const query = String(item.content.query);
      // A sum of the measurement over the runs, not the value of one (possibly a shard's, possibly the timer's).
      expect(query, item.name).toMatch(/sum\(todouble\(customMeasurements\.rowsRejected\)\)/);
      // The sum is not restricted to timer runs: the shard events carry the shards' refusals.
      const sumStage = query.split('\n').find((l) => l.includes('customMeasurements.rowsRejected'))!;
      expect(sumStage, item.name).not.toMatch(/isempty\(tostring\(customDimensions\.shard\)\)/);
    }
    // Runs are counted apart from shards.
    const runs = allItems(loadWorkbook().items).find((i) => i.name === 'health-runs')!;
    expect(String(runs.content.query)).toMatch(/customDimensions\.shard/);
  });
});
