import type { ReadStats } from '../activity/types.js';
import { HOUR_MS } from '../scoring/model.js';
import { countLocated, ReplayRuns } from './replayRuns.js';
import type { ReplayOptions, ReplaySummary } from './replayTypes.js';
import { runStateOf } from './runState.js';
import { AggregatedEvents, slotOf } from './window.js';

export type { ReplayOptions, ReplayProgress, ReplaySummary } from './replayTypes.js';

/**
 * How far behind the latest events (ms) an event of one export may arrive and still be counted by every run that
 * reads it: an export is in time order or close to it (ingestion order). The CLI's default for one input file.
 */
export const DEFAULT_REORDER_MS = HOUR_MS;

/** Events are taken in blocks this long; the earliest time of the latest block is the replay's progress. */
const BLOCK = 64;

/**
 * Runs the production pipeline over files as the timer would have: one run per tick across their time range.
 * The runs follow the reading: a run is simulated once the events have moved `reorderMs` past its tick, and the
 * slots no later run reads are forgotten, so memory holds the lookback window and the reorder allowance, not
 * the file. An event that arrives after a run that reads it was simulated is late: it counts in the later runs
 * whose windows hold it (as an event ingested that late would for the timer) and in `lateEvents`.
 */
export async function replay(o: ReplayOptions): Promise<ReplaySummary> {
  const agg = aggregation(o);
  const summary = emptySummary(o.readStats);
  const state = runStateOf(o.store);
  const runs = new ReplayRuns(o, agg, state, summary, await state.checkpoint());
  const t0 = performance.now();
  summary.filteredOut = await feed(o, agg, runs, summary);
  await runs.finish();
  runs.drop(Infinity);
  if (o.history !== undefined) for (const g of o.history.allGroups()) countLocated(summary, g, o.geo);
  summary.detectMs = runs.detectMs;
  summary.readMs = performance.now() - t0 - runs.detectMs;
  summary.events = agg.events;
  if (agg.events > 0) {
    summary.firstEventMs = agg.minMs;
    summary.lastEventMs = agg.maxMs;
  }
  return summary;
}

/** Where the events are aggregated per slot: empty for files, or the history given. */
function aggregation(o: ReplayOptions): AggregatedEvents {
  const { UC_TICK_INTERVAL: tick, UC_LOOKBACK: lookback } = o.settings;
  if ((o.events === undefined) === (o.history === undefined))
    throw new Error('replay needs either events or history');
  if (o.history !== undefined && slotOf(tick, lookback) % o.history.slotMs !== 0)
    throw new RangeError(
      `history in slots of ${o.history.slotMs / 60_000} min cannot replay runs every ` +
        `${tick / 60_000} min over ${lookback / 60_000} min`,
    );
  return o.history ?? new AggregatedEvents(tick, lookback);
}

/**
 * Reads the events (files, filtered by UC_CATEGORIES/UC_STATUSES) into `agg`, simulating the runs whose windows
 * the reading has completed; returns how many were filtered out.
 */
async function feed(
  o: ReplayOptions,
  agg: AggregatedEvents,
  runs: ReplayRuns,
  summary: ReplaySummary,
): Promise<number> {
  const s = o.settings;
  const categories = new Set(s.UC_CATEGORIES.map((c) => c.toLowerCase()));
  const statuses = new Set(s.UC_STATUSES.map((c) => c.toLowerCase()));
  const reorderMs = o.reorderMs ?? Number.POSITIVE_INFINITY;
  const block = new Float64Array(BLOCK);
  let progress = -Infinity;
  let filteredOut = 0;
  let n = 0;
  let accepted = 0;
  for await (const ev of o.events ?? []) {
    n += 1;
    if (n % 100_000 === 0) o.onProgress?.({ phase: 'reading', done: n, total: 0, alerts: 0 });
    if (
      (categories.size > 0 && !categories.has(ev.category.toLowerCase())) ||
      (statuses.size > 0 && !statuses.has(ev.status.toLowerCase()))
    ) {
      filteredOut += 1;
      continue;
    }
    agg.add(ev);
    if (runs.arrived(ev.timeMs)) noteLate(summary, ev.timeMs, progress);
    block[accepted++ % BLOCK] = ev.timeMs;
    if (accepted % BLOCK !== 0 || !Number.isFinite(reorderMs)) continue;
    const earliest = Math.min(...block);
    if (earliest <= progress) continue;
    progress = earliest;
    const limit = Math.floor((progress - reorderMs) / s.UC_TICK_INTERVAL) * s.UC_TICK_INTERVAL;
    if (limit > runs.lastRun) await runs.advance(limit);
  }
  return filteredOut;
}

/** A late event: counted, with how far behind the replay's progress it arrived. */
function noteLate(summary: ReplaySummary, timeMs: number, progress: number): void {
  summary.lateEvents += 1;
  summary.lateByMs = Math.max(summary.lateByMs, progress - timeMs);
}

/** The summary before anything was read. */
function emptySummary(read: ReadStats): ReplaySummary {
  return {
    read,
    events: 0,
    filteredOut: 0,
    firstEventMs: 0,
    lastEventMs: 0,
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
    lateEvents: 0,
    lateByMs: 0,
    maxGroupsHeld: 0,
    readMs: 0,
    detectMs: 0,
  };
}
