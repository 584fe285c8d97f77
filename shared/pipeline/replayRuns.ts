import type { Geolocator } from '../geo/types.js';
import type { ReplayOptions, ReplaySummary } from './replayTypes.js';
import type { RunState } from './runState.js';
import { type Pipeline, runTick, type TickStats } from './tick.js';
import type { EventGroup } from './types.js';
import type { AggregatedEvents } from './window.js';

/**
 * The simulated runs of a replay, driven by the events as they are read: `advance(limit)` runs every tick up to
 * `limit` whose window the reader has completed, then forgets the slots no later run reads, so memory holds the
 * runs' window (plus the reorder allowance), not the file. `finish()` runs the rest once the input has ended.
 * The runs, their order and their inputs are those of a replay that read the whole input first, as long as no
 * event arrives after a run whose window holds it (`late`, see {@link ReplayRuns.arrived}).
 */
export class ReplayRuns {
  private readonly tick: number;
  private readonly lookback: number;
  /** Earliest tick any run may have: after --from and after the checkpoint a --state replay resumes from. */
  private readonly floorTick: number;
  /** The next tick to simulate; undefined before the first. */
  private next: number | undefined;
  private done = 0;
  private sinceYield = 0;
  private suppress: Pipeline['suppress'];
  detectMs = 0;

  constructor(
    private readonly o: ReplayOptions,
    private readonly agg: AggregatedEvents,
    private readonly state: RunState,
    private readonly summary: ReplaySummary,
    private readonly checkpoint: number,
  ) {
    this.tick = o.settings.UC_TICK_INTERVAL;
    this.lookback = o.settings.UC_LOOKBACK;
    this.suppress = o.suppress;
    const from = o.fromMs !== undefined ? Math.ceil(o.fromMs / this.tick) * this.tick : -Infinity;
    this.floorTick = Math.max(from, checkpoint > 0 ? checkpoint + this.tick : -Infinity);
  }

  /** The last tick this replay simulated (-Infinity before the first). */
  get lastRun(): number {
    return this.next === undefined ? -Infinity : this.next - this.tick;
  }

  /** The last tick the span may reach: --to. */
  private get toTick(): number {
    return this.o.toMs !== undefined ? Math.floor(this.o.toMs / this.tick) * this.tick : Infinity;
  }

  /**
   * An event at `timeMs` has been added: true when it is late — a run that reads it (one whose window holds it,
   * and that a replay of the whole input would simulate) has already been simulated without it.
   */
  arrived(timeMs: number): boolean {
    if (this.next === undefined || timeMs >= this.lastRun) return false;
    const lo = Math.max(Math.floor(timeMs / this.tick) * this.tick + this.tick, this.floorTick);
    return lo <= Math.min(timeMs + this.lookback, this.lastRun);
  }

  /** The first run of the span as a replay of the events read so far would start it (see replaySpan). */
  private firstTick(): { first: number; resumed: boolean } {
    let first = Math.floor(this.agg.minMs / this.tick) * this.tick + this.tick;
    if (this.o.fromMs !== undefined)
      first = Math.max(first, Math.ceil(this.o.fromMs / this.tick) * this.tick);
    if (this.checkpoint < first) return { first, resumed: false };
    return { first: this.checkpoint + this.tick, resumed: true };
  }

  /**
   * Simulates the runs up to `limit` (a tick whose window is complete in `agg`), then forgets what they read;
   * `final`: the input has ended and `limit` is the span's last run.
   */
  async advance(limit: number, final = false): Promise<void> {
    if (this.agg.events === 0) return;
    if (this.next === undefined) {
      const { first, resumed } = this.firstTick();
      if (first > limit && !final) {
        // Nothing runs yet; slots before the earliest possible run's window are read by none.
        if (Number.isFinite(this.floorTick)) this.drop(this.floorTick - this.lookback);
        return;
      }
      if (resumed) this.summary.resumedFromMs = this.checkpoint;
      this.next = first;
    }
    const t0 = performance.now();
    await this.runUpTo(Math.min(limit, this.toTick), final);
    this.detectMs += performance.now() - t0;
    this.drop(this.next - this.lookback);
  }

  /** Every run left, through the first that has seen the last event (the input has ended). */
  finish(): Promise<void> {
    return this.advance(Math.floor(this.agg.maxMs / this.tick) * this.tick + this.tick, true);
  }

  /**
   * The runs from `next` to `end` in order, moving the checkpoint after each; a stretch of runs with empty
   * windows is skipped to its last run. `final`: `end` ends the span (progress reports its last run).
   */
  private async runUpTo(end: number, final: boolean): Promise<void> {
    const { tick, lookback, summary } = this;
    let t = this.next!;
    const total = Math.max(0, Math.floor((end - (t - this.done * tick)) / tick) + 1);
    for (; t <= end; t += tick) {
      // Let the event loop in now and then (signals such as Ctrl-C, timers): SQLite runs are synchronous.
      if (++this.sinceYield >= 32) {
        this.sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (this.agg.hasEvents(t - lookback, t)) await this.runWindow(t);
      else t += this.skipEmpty(t, end);
      await this.state.commitCheckpoint(t);
      summary.ticks += 1;
      this.done += 1;
      if (this.done % 96 === 0 || (final && t + tick > end))
        this.o.onProgress?.({ phase: 'detecting', done: this.done, total, alerts: summary.alerts });
    }
    this.next = t;
  }

  /** One run with events (after the verdicts due by then). */
  private async runWindow(t: number): Promise<void> {
    const changed = await this.o.beforeRun?.(t);
    if (changed) this.suppress = changed.suppress;
    addRunStats(
      this.summary,
      await runOnce(this.o, this.suppress, t, await this.agg.read(t - this.lookback, t)),
    );
  }

  /**
   * An empty window: so is every run's up to the next event, which would only move the checkpoint. Skips to the
   * last of them (a file with a stray record years away must not mean years of simulated runs); returns how far.
   */
  private skipEmpty(t: number, end: number): number {
    const steps = Math.floor((Math.min(end, this.agg.nextEventSlot(t) ?? end) - t) / this.tick);
    if (steps <= 0) return 0;
    this.summary.ticks += steps;
    this.done += steps;
    return steps * this.tick;
  }

  /**
   * Forgets the slots before `ms` (of the events read, not of a history), counting their events by what
   * geolocation makes of their caller IP.
   */
  drop(ms: number): void {
    this.summary.maxGroupsHeld = Math.max(this.summary.maxGroupsHeld, this.agg.groupsHeld);
    // A history is the caller's (the backtest replays one several times): it is read whole, never forgotten.
    if (this.o.history !== undefined) return;
    this.agg.dropBefore(ms, (g) => countLocated(this.summary, g, this.o.geo));
  }
}

/** Counts a group's events by what geolocation makes of its caller IP. */
export function countLocated(summary: ReplaySummary, g: EventGroup, geo: Geolocator): void {
  const r = geo.locate(g.callerIp);
  if (r.kind === 'city') summary.locatedEvents += g.count;
  else if (r.kind === 'internal') summary.internalEvents += g.count;
  else if (r.kind === 'no-city') summary.noCityEvents += g.count;
  else if (r.kind === 'not-found') summary.notFoundEvents += g.count;
  else summary.invalidIpEvents += g.count;
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
