import { describe, expect, it } from 'vitest';

import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { loadSettings } from '../../shared/config/settings.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { commitCheckpoint, readCheckpoint } from '../../shared/pipeline/runState.js';
import type { EventGroup } from '../../shared/pipeline/types.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import { type DetectorDeps, runScheduled } from '../../shared/runtime/detector.js';
import { makeTelemetry, type RunReport, type TelemetryClientLike } from '../../shared/runtime/telemetry.js';
import { embeddedGeo, memoryOutbox } from '../support/detectorDeps.js';

const MIN = 60_000;
const settings = loadSettings({});
const data = generateTenant(28);
const events = new AggregatedEvents(settings.UC_TICK_INTERVAL, settings.UC_LOOKBACK);
for (const e of data.events) events.add(e);

class IncompleteWindowError extends Error {
  override name = 'IncompleteWindowError';
}

async function deps(overrides: Partial<DetectorDeps> & { now: { ms: number } }) {
  const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  const sink = new MemoryAlertSink();
  const reads: [number, number][] = [];
  const tracked: { name: string; props?: Record<string, unknown> }[] = [];
  const client: TelemetryClientLike = {
    trackEvent: (t) => tracked.push({ name: t.name, ...(t.properties ? { props: t.properties } : {}) }),
    trackMetric: () => undefined,
    trackException: (t) => tracked.push({ name: `exception:${t.exception.message}` }),
    flush: () => undefined,
  };
  const d: DetectorDeps = {
    settings,
    store: SqliteStore.open(':memory:'),
    source: {
      read: (start: number, end: number): Promise<EventGroup[]> => {
        reads.push([start, end]);
        return events.read(start, end);
      },
    },
    geo: embeddedGeo(geo, { ageDays: 2000, stale: true }),
    outbox: memoryOutbox(sink),
    deliver: () => Promise.resolve({ delivered: sink.alerts.length, failed: 0, pending: 0 }),
    telemetry: makeTelemetry(client, false),
    log: () => undefined,
    clock: () => overrides.now.ms,
    ...overrides,
  };
  return { d, sink, reads, tracked };
}

describe('scheduled runs', () => {
  const start = data.labels.startMs + 20 * 86_400_000 + 2 * 60 * MIN; // day 20, 02:00 — after A1 (day 19 03:10)

  it('processes the tick of its schedule slot, not the wall clock, and checkpoints it', async () => {
    const now = { ms: start + 7 * MIN + 13_000 }; // fired 7 minutes late
    const { d, reads } = await deps({ now });
    const r = await runScheduled(d, { invocationId: 'i1', isPastDue: false });
    expect(r.ticks).toEqual([start]);
    expect(reads).toEqual([[start - 2 * 60 * MIN, start]]);
    expect(await readCheckpoint(d.store)).toBe(start);
  });

  it('after an outage, runs every missed tick in order: no gap', async () => {
    const now = { ms: start };
    const { d, reads } = await deps({ now });
    await runScheduled(d, { invocationId: 'i1', isPastDue: false });
    now.ms = start + 2 * 60 * MIN + 3 * MIN; // the host was down for two hours
    const r = await runScheduled(d, { invocationId: 'i2', isPastDue: true });
    expect(r.ticks).toHaveLength(8);
    expect(r.ticks[0]).toBe(start + 15 * MIN);
    expect(r.ticks.at(-1)).toBe(start + 2 * 60 * MIN);
    expect(reads.slice(1).map(([s, e]) => e - s)).toEqual(Array(8).fill(2 * 60 * MIN));
    expect(await readCheckpoint(d.store)).toBe(start + 2 * 60 * MIN);
  });

  it('stops at a window with incomplete data, keeping the checkpoint on the last complete tick', async () => {
    const now = { ms: start };
    let calls = 0;
    const { d } = await deps({ now });
    const inner = d.source;
    d.source = {
      read: (s, e) => {
        calls += 1;
        if (calls === 3) return Promise.reject(new IncompleteWindowError('partial result from workspace'));
        return inner.read(s, e);
      },
    };
    await commitCheckpoint(d.store, start - 60 * MIN);
    const r = await runScheduled(d, { invocationId: 'i1', isPastDue: true });
    expect(r.ticks).toHaveLength(2);
    expect(r.ticksLeft).toBe(2);
    expect(r.stoppedBecause).toContain('partial result');
    expect(await readCheckpoint(d.store)).toBe(start - 30 * MIN);
    // The next run redoes the rest.
    const again = await runScheduled(d, { invocationId: 'i2', isPastDue: false });
    expect(again.ticks).toEqual([start - 15 * MIN, start]);
  });

  it('stops when the run budget is spent, leaving the rest to the next run', async () => {
    const now = { ms: start };
    const { d } = await deps({ now });
    const inner = d.source;
    d.source = { read: (s, e) => ((now.ms += (3 * 60 * MIN) / 10), inner.read(s, e)) }; // each query "takes" 18 minutes
    d.settings = loadSettings({ UC_RUN_BUDGET: '1h' });
    await commitCheckpoint(d.store, start - 4 * 60 * MIN);
    const r = await runScheduled(d, { invocationId: 'i1', isPastDue: true });
    expect(r.stoppedBecause).toContain('UC_RUN_BUDGET');
    expect(r.ticks.length).toBeGreaterThan(0);
    expect(r.ticks.length + r.ticksLeft).toBe(16);
    expect(await readCheckpoint(d.store)).toBe(r.ticks.at(-1));
  });

  it('a failing store fails the run, leaves the checkpoint, and reports the exception', async () => {
    const now = { ms: start };
    const { d, tracked } = await deps({ now });
    await commitCheckpoint(d.store, start - 15 * MIN);
    const failing = Object.create(d.store) as typeof d.store;
    failing.updatePartition = () => Promise.reject(new Error('503 from Table Storage'));
    d.store = Object.assign(failing, { readCheckpoint: undefined });
    await expect(runScheduled(d, { invocationId: 'i1', isPastDue: false })).rejects.toThrow('503');
    expect(tracked.some((t) => t.name === 'exception:503 from Table Storage')).toBe(true);
  });

  it('telemetry: one run event with counts, alert events without identities unless allowed', async () => {
    const now = { ms: start };
    const { d, tracked } = await deps({ now });
    // Catch up over the whole history, through the A1 attack (day 19, 03:10).
    await commitCheckpoint(d.store, data.labels.startMs);
    d.settings = loadSettings({ UC_RUN_BUDGET: '1h' });
    const r: RunReport = await runScheduled(d, { invocationId: 'i1', isPastDue: true });
    expect(r.alerts).toBeGreaterThan(0);
    const run = tracked.find((t) => t.name === 'UnusualCityRun');
    expect(run?.props?.invocationId).toBe('i1');
    const alerts = tracked.filter((t) => t.name === 'UnusualCityAlert');
    expect(alerts).toHaveLength(r.alerts);
    const text = JSON.stringify(alerts);
    for (const a of r.raised) {
      expect(text).not.toContain(a.Caller);
      expect(text).not.toContain(a.SrcIpAddr);
    }
    const withIds: { name: string; props?: Record<string, unknown> }[] = [];
    makeTelemetry(
      {
        trackEvent: (t) => withIds.push({ name: t.name, props: t.properties ?? {} }),
        trackMetric: () => undefined,
        trackException: () => undefined,
        flush: () => undefined,
      },
      true,
    ).run(r);
    expect(JSON.stringify(withIds)).toContain(r.raised[0]!.Caller);
  });
});
