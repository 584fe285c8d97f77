/**
 * `backtest --days N`: the period is read from Log Analytics ONCE, in windows (one day by default; the source
 * splits further on the query limits), with the query grouping by the timer's slots instead of whole hours.
 * Every simulated run then reads its window from memory, exactly as if it had queried the workspace at that
 * moment, and every variant of the backtest re-uses the same download.
 */
import type { Settings } from '../config/settings.js';
import type { EventSource } from '../pipeline/types.js';
import { AggregatedEvents, slotOf } from '../pipeline/window.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The slot to download in: the largest that every variant's runs can replay from (the gcd of their
 * tick/lookback slots). 15 minutes with the default settings.
 */
export function historySlotMs(settings: readonly Settings[]): number {
  return settings.reduce((g, s) => gcd(g, slotOf(s.UC_TICK_INTERVAL, s.UC_LOOKBACK)), HOUR_MS);
}

/** The period [startMs, endMs) of the last `days` days, ending at the last whole timer slot before `nowMs`. */
export function historyPeriod(
  days: number,
  nowMs: number,
  tickMs: number,
): { startMs: number; endMs: number } {
  const endMs = Math.floor(nowMs / tickMs) * tickMs;
  return { startMs: endMs - days * DAY_MS, endMs };
}

export interface HistoryProgress {
  windowsDone: number;
  windowsTotal: number;
  /** Read up to here. */
  doneUntilMs: number;
  groups: number;
  events: number;
}

export interface HistoryDownload {
  events: AggregatedEvents;
  startMs: number;
  endMs: number;
  windows: number;
  seconds: number;
}

/**
 * Reads [startMs, endMs) from a source that groups by `slotMs` (a LogAnalyticsSource built with that slotMs),
 * oldest window first, into memory. Any window the source cannot read in full throws (IncompleteWindowError,
 * BudgetExceededError, …): a backtest over a period with a hole in it would understate the alerts.
 */
export async function downloadHistory(
  source: EventSource,
  o: {
    startMs: number;
    endMs: number;
    slotMs: number;
    windowMs?: number;
    onProgress?: (p: HistoryProgress) => void;
  },
): Promise<HistoryDownload> {
  const t0 = performance.now();
  const windowMs = o.windowMs ?? DAY_MS;
  if (!(windowMs > 0) || windowMs % o.slotMs !== 0)
    throw new RangeError(`the download window must be whole slots of ${o.slotMs / 60_000} min`);
  const events = AggregatedEvents.ofSlot(o.slotMs);
  if (o.startMs % o.slotMs !== 0 || o.endMs % o.slotMs !== 0)
    throw new RangeError('the period must start and end on slot boundaries');
  const windowsTotal = Math.ceil((o.endMs - o.startMs) / windowMs);
  let windowsDone = 0;
  for (let s = o.startMs; s < o.endMs; s += windowMs) {
    const e = Math.min(o.endMs, s + windowMs);
    // Windows are whole slots, so no slot straddles two reads (the source merges the halves of its own splits).
    for (const g of await source.read(s, e)) events.addGroup(g);
    windowsDone += 1;
    o.onProgress?.({
      windowsDone,
      windowsTotal,
      doneUntilMs: e,
      groups: events.groups,
      events: events.events,
    });
  }
  return {
    events,
    startMs: o.startMs,
    endMs: o.endMs,
    windows: windowsTotal,
    seconds: (performance.now() - t0) / 1000,
  };
}

const mb = (bytes: number): string => Math.round(bytes / 1_048_576).toLocaleString('en-US');

/**
 * After a window of the download: when the heap the whole period will take at this rate passes 80% of what the
 * process may use, what to tell the analyst (else undefined). Said early, before the process runs out.
 */
export function memoryWarning(o: {
  windowsDone: number;
  windowsTotal: number;
  heapAtStart: number;
  heapNow: number;
  heapLimit: number;
}): string | undefined {
  if (o.windowsDone < 1 || o.windowsDone >= o.windowsTotal) return undefined;
  const projected = o.heapAtStart + (Math.max(0, o.heapNow - o.heapAtStart) / o.windowsDone) * o.windowsTotal;
  if (projected <= 0.8 * o.heapLimit) return undefined;
  return (
    `${o.windowsTotal} day(s) at this rate need about ${mb(projected)} MB of heap, and this process may use ` +
    `${mb(o.heapLimit)} MB: backtest fewer days, or give Node more (NODE_OPTIONS=--max-old-space-size=<MB>)`
  );
}
