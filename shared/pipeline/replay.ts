import type { ActivityEvent, ReadStats } from '../activity/types.js';
import type { AlertDefaults } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import { type RunState, runStateOf } from './runState.js';
import { type LogFn, type Pipeline, runTick, type TickStats } from './tick.js';
import type { EventGroup } from './types.js';
import { AggregatedEvents, slotOf } from './window.js';

export interface ReplayOptions {
  /** The events to replay (files); or `history`. */
  events?: AsyncIterable<ActivityEvent>;
  /**
   * Instead of `events`: a period already aggregated per slot (the backtest's download from Log Analytics, which
   * applied UC_CATEGORIES/UC_STATUSES in the query). Its slots must fit the settings' runs (see slotOf).
   */
  history?: AggregatedEvents;
  readStats: ReadStats;
  store: BaselineStore;
  geo: Geolocator;
  /** The networks (ASN) of caller IPs; absent: the model uses cities only. */
  networks?: NetworkLocator;
  sink: AlertSink;
  settings: Settings;
  defaults: AlertDefaults;
  /** Simulate only runs scheduled at or after this time. */
  fromMs?: number;
  /** Simulate only runs scheduled at or before this time. */
  toMs?: number;
  log?: LogFn;
  onProgress?: (p: ReplayProgress) => void;
  /** Passed to every run (see `Pipeline.onFindings`): the backtest records rare findings with it. */
  onFindings?: Pipeline['onFindings'];
  /** Allowlists (shared/ops/allowlist.ts), passed to every run: see `Pipeline.suppress`. Absent: none. */
  suppress?: Pipeline['suppress'];
  /**
   * Called before each run that has events (the analysts' verdicts due by then are applied here, see VerdictFeed);
   * a result replaces `suppress` from this run on (the allow table changed). Absent: nothing.
   */
  beforeRun?: (tickMs: number) => Promise<{ suppress: Pipeline['suppress'] } | undefined>;
}

export interface ReplayProgress {
  phase: 'reading' | 'detecting';
  done: number;
  total: number;
  alerts: number;
}

export interface ReplaySummary {
  read: ReadStats;
  /** Events after category/status filters. */
  events: number;
  filteredOut: number;
  firstEventMs: number;
  lastEventMs: number;
  ticks: number;
  resumedFromMs: number;
  /** Distinct events by what geolocation made of their caller IP. */
  internalEvents: number;
  noCityEvents: number;
  notFoundEvents: number;
  invalidIpEvents: number;
  locatedEvents: number;
  observations: number;
  alreadyCounted: number;
  alerts: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  /** Rare findings an allowlist kept from alerting (`suppress`). */
  allowlisted: number;
  readMs: number;
  detectMs: number;
}

/** Runs the production pipeline over files as the timer would have: one run per tick across their time range. */
export async function replay(o: ReplayOptions): Promise<ReplaySummary> {
  const { agg, filteredOut, readMs } = await aggregateEvents(o);
  const summary = emptySummary(o.readStats, agg, filteredOut, readMs);
  countGeolocation(summary, agg, o.geo);
  if (agg.events === 0) return summary;
  const state = runStateOf(o.store);
  const span = await replaySpan(o, agg, state, summary);
  const t1 = performance.now();
  await detectSpan(o, agg, state, span, summary);
  summary.detectMs = performance.now() - t1;
  return summary;
}

/** The runs to simulate: from the first (or after the checkpoint) to the last, and how many they are. */
interface ReplaySpan {
  first: number;
  end: number;
  total: number;
}

/** The events (files, filtered by UC_CATEGORIES/UC_STATUSES) or the history, aggregated per slot. */
async function aggregateEvents(
  o: ReplayOptions,
): Promise<{ agg: AggregatedEvents; filteredOut: number; readMs: number }> {
  const s = o.settings;
  const tick = s.UC_TICK_INTERVAL;
  const lookback = s.UC_LOOKBACK;
  const categories = new Set(s.UC_CATEGORIES.map((c) => c.toLowerCase()));
  const statuses = new Set(s.UC_STATUSES.map((c) => c.toLowerCase()));
  if ((o.events === undefined) === (o.history === undefined))
    throw new Error('replay needs either events or history');
  if (o.history !== undefined && slotOf(tick, lookback) % o.history.slotMs !== 0)
    throw new RangeError(
      `history in slots of ${o.history.slotMs / 60_000} min cannot replay runs every ` +
        `${tick / 60_000} min over ${lookback / 60_000} min`,
    );
  const agg = o.history ?? new AggregatedEvents(tick, lookback);
  const t0 = performance.now();
  let filteredOut = 0;
  let n = 0;
  for await (const ev of o.events ?? []) {
    n += 1;
    if (
      (categories.size > 0 && !categories.has(ev.category.toLowerCase())) ||
      (statuses.size > 0 && !statuses.has(ev.status.toLowerCase()))
    ) {
      filteredOut += 1;
      continue;
    }
    agg.add(ev);
    if (n % 100_000 === 0) o.onProgress?.({ phase: 'reading', done: n, total: 0, alerts: 0 });
  }
  return { agg, filteredOut, readMs: performance.now() - t0 };
}

/** The summary before any run: what was read, nothing detected yet. */
function emptySummary(
  read: ReadStats,
  agg: AggregatedEvents,
  filteredOut: number,
  readMs: number,
): ReplaySummary {
  return {
    read,
    events: agg.events,
    filteredOut,
    firstEventMs: agg.events > 0 ? agg.minMs : 0,
    lastEventMs: agg.events > 0 ? agg.maxMs : 0,
    ticks: 0,
    resumedFromMs: 0,
    internalEvents: 0,
    noCityEvents: 0,
    notFoundEvents: 0,
    invalidIpEvents: 0,
    locatedEvents: 0,
    observations: 0,
    alreadyCounted: 0,
    alerts: 0,
    suppressedByCooldown: 0,
    suppressedByCap: 0,
    allowlisted: 0,
    readMs,
    detectMs: 0,
  };
}

/** Counts the distinct events by what geolocation makes of their caller IP. */
function countGeolocation(summary: ReplaySummary, agg: AggregatedEvents, geo: Geolocator): void {
  for (const g of agg.allGroups()) {
    const r = geo.locate(g.callerIp);
    if (r.kind === 'city') summary.locatedEvents += g.count;
    else if (r.kind === 'internal') summary.internalEvents += g.count;
    else if (r.kind === 'no-city') summary.noCityEvents += g.count;
    else if (r.kind === 'not-found') summary.notFoundEvents += g.count;
    else summary.invalidIpEvents += g.count;
  }
}

/**
 * The first run that sees the first event, through the first run that has seen the last one (within fromMs and
 * toMs); a replay already past its first run resumes after the checkpoint.
 */
async function replaySpan(
  o: ReplayOptions,
  agg: AggregatedEvents,
  state: RunState,
  summary: ReplaySummary,
): Promise<ReplaySpan> {
  const tick = o.settings.UC_TICK_INTERVAL;
  let first = Math.floor(agg.minMs / tick) * tick + tick;
  const last = Math.floor(agg.maxMs / tick) * tick + tick;
  if (o.fromMs !== undefined) first = Math.max(first, Math.ceil(o.fromMs / tick) * tick);
  const end = o.toMs !== undefined ? Math.min(last, Math.floor(o.toMs / tick) * tick) : last;
  const checkpoint = await state.checkpoint();
  if (checkpoint >= first) {
    summary.resumedFromMs = checkpoint;
    first = checkpoint + tick;
  }
  return { first, end, total: Math.max(0, Math.floor((end - first) / tick) + 1) };
}

/**
 * Simulates every run of the span in order, moving the checkpoint after each; a stretch of runs with empty
 * windows is skipped to its last run.
 */
async function detectSpan(
  o: ReplayOptions,
  agg: AggregatedEvents,
  state: RunState,
  { first, end, total }: ReplaySpan,
  summary: ReplaySummary,
): Promise<void> {
  const tick = o.settings.UC_TICK_INTERVAL;
  const lookback = o.settings.UC_LOOKBACK;
  let done = 0;
  let sinceYield = 0;
  let suppress = o.suppress;
  for (let t = first; t <= end; t += tick) {
    // Let the event loop in now and then (signals such as Ctrl-C, timers): SQLite runs are synchronous.
    if (++sinceYield >= 32) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const start = t - lookback;
    if (agg.hasEvents(start, t)) {
      const changed = await o.beforeRun?.(t);
      if (changed) suppress = changed.suppress;
      addRunStats(summary, await runOnce(o, suppress, t, await agg.read(start, t)));
    } else {
      // An empty window: so is every run's up to the next event, which would only move the checkpoint. Skip to
      // the last of them (a file with a stray record years away must not mean years of simulated runs).
      const steps = Math.floor((Math.min(end, agg.nextEventSlot(t) ?? end) - t) / tick);
      if (steps > 0) {
        t += steps * tick;
        summary.ticks += steps;
        done += steps;
      }
    }
    await state.commitCheckpoint(t);
    summary.ticks += 1;
    done += 1;
    if (done % 96 === 0 || t + tick > end)
      o.onProgress?.({ phase: 'detecting', done, total, alerts: summary.alerts });
  }
}

/** One simulated run: the production pipeline over a tick's window. */
function runOnce(
  o: ReplayOptions,
  suppress: Pipeline['suppress'],
  t: number,
  groups: EventGroup[],
): Promise<TickStats> {
  return runTick(
    {
      store: o.store,
      geo: o.geo,
      ...(o.networks ? { networks: o.networks } : {}),
      settings: o.settings,
      sink: o.sink,
      defaults: o.defaults,
      ...(o.log ? { log: o.log } : {}),
      ...(o.onFindings ? { onFindings: o.onFindings } : {}),
      ...(suppress ? { suppress } : {}),
    },
    t,
    groups,
  );
}

/** Adds a run's counts to the summary. */
function addRunStats(summary: ReplaySummary, stats: TickStats): void {
  summary.observations += stats.scored;
  summary.alreadyCounted += stats.alreadyCounted;
  summary.alerts += stats.alerts;
  summary.suppressedByCooldown += stats.suppressedByCooldown;
  summary.suppressedByCap += stats.suppressedByCap;
  summary.allowlisted += stats.allowlisted;
}
