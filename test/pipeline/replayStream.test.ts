/**
 * The streaming replay (issue 16): runs follow the reading and forget the slots no later run reads. On input in
 * time order, or out of order by less than the reorder allowance, it gives exactly what reading the whole input
 * first gives (reorderMs: Infinity, the replay before streaming); the groups it holds stay bounded by its window
 * whatever the input's length; events later than the allowance are counted and reported.
 */
import { describe, expect, it } from 'vitest';

import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { type BaselineStore, type Entity, TABLE_NAMES } from '../../shared/baseline/store.js';
import { reorderOption } from '../../shared/cli/reorder.js';
import { loadSettings } from '../../shared/config/settings.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { DEFAULT_REORDER_MS, replay, type ReplaySummary } from '../../shared/pipeline/replay.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import { replayInto } from '../support/londonTeam.js';

const settings = loadSettings({});
const HOUR = 3_600_000;
const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });

async function dump(store: BaselineStore): Promise<Record<string, Record<string, Entity>>> {
  const out: Record<string, Record<string, Entity>> = {};
  for (const t of TABLE_NAMES)
    for (const p of (await store.listPartitions(t)).sort())
      out[`${t}/${p}`] = Object.fromEntries(
        [...(await store.readPartition(t, p)).entries()].map(([k, e]) => [k, { ...e, updatedAt: 0 }]).sort(),
      );
  return out;
}

interface Outcome {
  summary: ReplaySummary;
  alerts: string[];
  state: Awaited<ReturnType<typeof dump>>;
}

async function run(events: readonly ActivityEvent[], reorderMs = DEFAULT_REORDER_MS): Promise<Outcome> {
  const store = SqliteStore.open(':memory:');
  try {
    const sink = new MemoryAlertSink();
    const summary = await replayInto(store, events, {
      settings,
      sink,
      geo,
      reorderMs,
    });
    return { summary, alerts: sink.alerts.map((a) => JSON.stringify(a)), state: await dump(store) };
  } finally {
    await store.close();
  }
}

/**
 * An alert with its ResourceIds and CorrelationIds sorted: they list a group's first distinct values in the order
 * the events were read (files in ingestion order, see AggregatedEvents.add), so input in another order lists the
 * same values in another order. Everything else must not depend on the order.
 */
function orderFree(alert: string): string {
  const a = JSON.parse(alert) as { ResourceIds: string[]; CorrelationIds: string[] };
  return JSON.stringify({ ...a, ResourceIds: a.ResourceIds.sort(), CorrelationIds: a.CorrelationIds.sort() });
}

/** What must not depend on streaming: everything but timings and the streaming's own figures. */
function comparable(s: ReplaySummary): Partial<ReplaySummary> {
  const { readMs: _r, detectMs: _d, maxGroupsHeld: _m, read: _read, ...rest } = s;
  return rest;
}

/** A deterministic shuffle (xorshift), so a failure can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// Vitest prints a failing comparison of these long strings whole; keep reports short.
describe('streaming replay', () => {
  const days = 21;
  const events = generateTenant(days).events;
  let whole: Outcome;

  it('reading everything first (the replay before streaming) raises the demo alerts', async () => {
    whole = await run(events, Number.POSITIVE_INFINITY);
    expect(whole.alerts.length).toBeGreaterThan(0);
    expect(whole.summary.lateEvents).toBe(0);
  }, 120_000);

  it('in time order: the same alerts, baselines and summary, holding a window of groups, not the file', async () => {
    const streamed = await run(events);
    expect(streamed.alerts).toEqual(whole.alerts);
    expect(streamed.state).toEqual(whole.state);
    expect(comparable(streamed.summary)).toEqual(comparable(whole.summary));
    expect(whole.summary.maxGroupsHeld).toBeGreaterThan(0);
    // The whole input is held at the end of a whole read; streaming holds a few hours of 21 days.
    expect(streamed.summary.maxGroupsHeld).toBeLessThan(whole.summary.maxGroupsHeld / 20);
  }, 120_000);

  it('out of order within the allowance (each event up to 50 minutes early or late): identical', async () => {
    const keyed = events.map((e, i) => ({ e, key: e.timeMs + (((i * 7919) % 101) - 50) * 60_000 }));
    const jittered = keyed.sort((a, b) => a.key - b.key).map((k) => k.e);
    expect(jittered).not.toEqual(events);
    const streamed = await run(jittered);
    expect(streamed.summary.lateEvents).toBe(0);
    expect(streamed.alerts.map(orderFree)).toEqual(whole.alerts.map(orderFree));
    expect(streamed.state).toEqual(whole.state);
    expect(streamed.summary.maxGroupsHeld).toBeLessThan(whole.summary.maxGroupsHeld / 10);
  }, 120_000);

  it('shuffled, with --reorder all: identical; with the default: its late events counted, never dropped', async () => {
    const mixed = shuffled(events, 20261208);
    const all = await run(mixed, Number.POSITIVE_INFINITY);
    expect(all.alerts.map(orderFree)).toEqual(whole.alerts.map(orderFree));
    expect(all.state).toEqual(whole.state);
    const bounded = await run(mixed, DEFAULT_REORDER_MS);
    // The first runs go as soon as 64 events in a row are past them (about the first two days here); events of
    // those days read later are late.
    expect(bounded.summary.lateEvents).toBeGreaterThan(0);
    expect(bounded.summary.lateByMs).toBeGreaterThan(DEFAULT_REORDER_MS);
    expect(bounded.summary.events).toBe(events.length);
    expect(bounded.summary.locatedEvents).toBe(whole.summary.locatedEvents);
  }, 240_000);

  it('memory flat in the input length: 7 and 21 days of the same tenant hold about as many groups', async () => {
    const week = events.filter((e) => e.timeMs < events[0]!.timeMs + 7 * 24 * HOUR);
    const short = await run(week);
    const long = await run(events);
    expect(long.summary.events).toBeGreaterThan(2.5 * short.summary.events);
    expect(long.summary.maxGroupsHeld).toBeLessThan(1.5 * short.summary.maxGroupsHeld);
  }, 120_000);
});

describe('a history (the backtest replays one several times)', () => {
  it('is read whole and left whole: two replays of it equal each other and the replay of its events', async () => {
    const events = generateTenant(7).events;
    const history = new AggregatedEvents(settings.UC_TICK_INTERVAL, settings.UC_LOOKBACK);
    for (const e of events) history.add(e);
    const fromHistory = async (): Promise<Outcome> => {
      const store = SqliteStore.open(':memory:');
      try {
        const sink = new MemoryAlertSink();
        const summary = await replay({
          history,
          readStats: newReadStats(),
          store,
          geo,
          sink,
          settings,
          defaults: alertDefaults(settings),
        });
        return { summary, alerts: sink.alerts.map((a) => JSON.stringify(a)), state: await dump(store) };
      } finally {
        await store.close();
      }
    };
    const first = await fromHistory();
    const second = await fromHistory();
    const streamed = await run(events);
    expect(first.summary.observations).toBeGreaterThan(0);
    expect(history.groupsHeld).toBe(history.groups);
    expect(comparable(second.summary)).toEqual(comparable(first.summary));
    expect(second.state).toEqual(first.state);
    expect(first.alerts).toEqual(streamed.alerts);
    expect(comparable(first.summary)).toEqual(comparable(streamed.summary));
  }, 120_000);
});

describe('--reorder', () => {
  it('reads durations and all, and rejects anything else naming the option', () => {
    expect(reorderOption(undefined)).toBeUndefined();
    expect(reorderOption('90m')).toBe(1.5 * HOUR);
    expect(reorderOption('all')).toBe(Number.POSITIVE_INFINITY);
    expect(() => reorderOption('soon')).toThrow(/--reorder expects a duration/);
  });
});
