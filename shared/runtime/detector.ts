import type { Alert } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { Allowlist } from '../ops/allowlist.js';
import { baselineGate } from '../ops/bootstrap.js';
import { type RunState, runStateOf } from '../pipeline/runState.js';
import { runTick, type TickStats } from '../pipeline/tick.js';
import type { EventGroup } from '../pipeline/types.js';
import { BudgetExceededError, RunBudget } from './budget.js';
import type { DetectorDeps } from './deps.js';
import { bootstrapDeps, deliverAndMaintain, newRunReport, runPipeline } from './report.js';
import { runShardedTimer } from './shards.js';
import type { RunReport } from './telemetry.js';
import { applyRunVerdicts } from './verdicts.js';

// DetectorDeps lives in shared/runtime/deps.ts (no circle with report.ts and shards.ts); re-exported for the code
// that imports it from here.
export type { DetectorDeps };

/** Time kept back from catching up so the run can still deliver the alerts it raised. */
const DELIVERY_RESERVE_MS = 60_000;

/** Errors that mean "this window's data is not complete yet": stop, keep the checkpoint, retry next run. */
function isIncompleteWindow(error: unknown): boolean {
  return error instanceof Error && error.name === 'IncompleteWindowError';
}

/** This run's GeoIP (and network) databases, as `DetectorDeps.geo` hands them over. */
type RunGeo = Awaited<ReturnType<DetectorDeps['geo']['current']>>;

/** What the stages of one timer run (one process) share. */
interface TimerRun {
  deps: DetectorDeps;
  state: RunState;
  clock: () => number;
  budget: RunBudget;
  startedMs: number;
  scheduledMs: number;
  report: RunReport;
  /** The alerts this run wrote to the outbox. */
  raised: Alert[];
}

/** The ticks a run is to detect, and this run's allowlists (absent while a bootstrap runs). */
interface CatchUp {
  ticks: number[];
  allow: Allowlist | undefined;
}

/**
 * One timer invocation. The tick is the schedule slot the invocation belongs to (the wall clock rounded down
 * to the UC_TICK_INTERVAL grid the timer fires on), and every slot missed since the checkpoint is run first,
 * in order — an outage leaves no gap. A tick whose data is incomplete, or a spent budget, stops the run with
 * the checkpoint on the last complete tick, so the next run redoes the rest. Alerts go to the outbox as each
 * tick is decided and are delivered at the end (and retried by later runs if delivery fails).
 */
export async function runScheduled(
  deps: DetectorDeps,
  invocation: { invocationId: string; isPastDue: boolean },
): Promise<RunReport> {
  const s = deps.settings;
  // The analysts' verdicts first: this run's allowlist and quarantines follow them (a failure only warns).
  await applyRunVerdicts(deps, (deps.clock ?? Date.now)());
  // Queue mode: this timer only enqueues shards; processShard detects (shared/runtime/shards.ts).
  if (s.UC_SHARDING === 'queue' && deps.shardQueue) {
    return runShardedTimer({ ...deps, shardQueue: deps.shardQueue }, invocation);
  }
  const run = startTimerRun(deps, invocation);
  try {
    const geo = await loadGeoIp(run);
    const plan = await planCatchUp(run, invocation, geo);
    await detectTicks(run, plan, geo);
    return await closeRun(run, plan.allow);
  } catch (error) {
    deps.telemetry.exception(error instanceof Error ? error : new Error(String(error)), {
      stage: 'run',
      scheduled: new Date(run.scheduledMs).toISOString(),
    });
    throw error;
  } finally {
    await deps.telemetry.flush().catch(() => undefined);
  }
}

/** The run's clock, budget, schedule slot and empty report. */
function startTimerRun(
  deps: DetectorDeps,
  invocation: { invocationId: string; isPastDue: boolean },
): TimerRun {
  const clock = deps.clock ?? Date.now;
  const budget = new RunBudget(deps.settings.UC_RUN_BUDGET, clock);
  const interval = deps.settings.UC_TICK_INTERVAL;
  const startedMs = clock();
  const scheduledMs = Math.floor(startedMs / interval) * interval;
  const raised: Alert[] = [];
  const report: RunReport = {
    ...newRunReport(invocation, scheduledMs, raised),
    baseline: 'ready',
    allowlisted: 0,
  };
  return { deps, state: runStateOf(deps.store), clock, budget, startedMs, scheduledMs, report, raised };
}

/** Opens this run's GeoIP database, reports its age and warns when it is stale. */
async function loadGeoIp({ deps, clock, report }: TimerRun): Promise<RunGeo> {
  const t = clock();
  const geo = await deps.geo.current();
  report.durationsMs.geo = clock() - t;
  report.geoIpSource = geo.source;
  report.geoIpBuildDate = geo.buildDate.toISOString().slice(0, 10);
  report.geoIpAgeDays = geo.ageDays;
  if (geo.stale) {
    deps.log(
      'warn',
      `GeoIP database ${geo.source} was built ${report.geoIpBuildDate} (${geo.ageDays} days ago, more than UC_GEOIP_MAX_AGE_DAYS=${deps.settings.UC_GEOIP_MAX_AGE_DAYS}): cities may be wrong. Check refreshGeoIpDatabase.`,
    );
  }
  return geo;
}

/**
 * The baseline gate, then the ticks due since the checkpoint: none while a bootstrap runs, the current slot on a
 * first run, else every slot after the checkpoint up to the current one.
 */
async function planCatchUp(
  run: TimerRun,
  invocation: { invocationId: string; isPastDue: boolean },
  geo: RunGeo,
): Promise<CatchUp> {
  const { deps, clock, report, scheduledMs } = run;
  const interval = deps.settings.UC_TICK_INTERVAL;
  // History comes before the present: an unfinished bootstrap is continued (within the budget) and detection
  // waits for it; a first run with nothing learned says so (shared/ops/bootstrap.ts).
  const gate = await baselineGate(bootstrapDeps(deps, geo, clock), {
    owner: `timer:${invocation.invocationId}`,
    budget: run.budget,
    reserveMs: DELIVERY_RESERVE_MS,
  });
  report.baseline = gate.baseline;
  const allow = gate.baseline !== 'bootstrapping' && deps.allowlist ? await deps.allowlist() : undefined;
  const checkpoint = await run.state.checkpoint();
  const ticks: number[] = [];
  if (gate.baseline === 'bootstrapping') report.stoppedBecause = 'bootstrap in progress';
  else if (checkpoint === 0)
    ticks.push(scheduledMs); // first run ever, no bootstrap: start now
  else for (let x = checkpoint + interval; x <= scheduledMs; x += interval) ticks.push(x);
  if (invocation.isPastDue || ticks.length > 1) {
    deps.log(
      'info',
      `Catching up ${ticks.length} tick(s) since the checkpoint ${new Date(checkpoint).toISOString()}`,
    );
  }
  if (ticks.length === 0 && gate.baseline !== 'bootstrapping')
    deps.log('info', `Tick ${new Date(scheduledMs).toISOString()} is already done (checkpoint)`);
  return { ticks, allow };
}

/**
 * Detects the ticks in order, moving the checkpoint after each; stops early (the next run continues) when the
 * budget is spent, a bootstrap started meanwhile, or a window's data is not complete yet.
 */
async function detectTicks(run: TimerRun, plan: CatchUp, geo: RunGeo): Promise<void> {
  const { deps, clock, report } = run;
  const ticks = plan.ticks;
  const sink: AlertSink = {
    write: async (alerts) => {
      await deps.outbox.write(alerts);
      run.raised.push(...alerts);
    },
  };
  for (let i = 0; i < ticks.length; i++) {
    const tick = ticks[i]!;
    const read = (await reasonToStop(run, i)) ?? (await readTickWindow(run, tick));
    if (typeof read === 'string') {
      report.stoppedBecause = read;
      report.ticksLeft = ticks.length - i;
      break;
    }
    const t = clock();
    const stats = await runTick(runPipeline(deps, geo, sink, plan.allow), tick, read);
    await run.state.commitCheckpoint(tick);
    report.durationsMs.detect += clock() - t;
    report.ticks.push(tick);
    addTickStats(report, stats);
  }
}

/** Why the run must stop before its `i`-th tick (budget kept for delivery, a bootstrap started); else undefined. */
async function reasonToStop(run: TimerRun, i: number): Promise<string | undefined> {
  if (run.budget.remainingMs() < DELIVERY_RESERVE_MS) return 'run budget spent (UC_RUN_BUDGET)';
  if (i > 0 && (await run.state.bootstrapPending())) return 'a bootstrap started';
  return undefined;
}

/** A tick's window from the source, counted in the report; or why the run stops (data not complete, budget). */
async function readTickWindow(
  { deps, clock, report }: TimerRun,
  tick: number,
): Promise<EventGroup[] | string> {
  const t = clock();
  let groups;
  try {
    groups = await deps.source.read(tick - deps.settings.UC_LOOKBACK, tick);
  } catch (error) {
    if (isIncompleteWindow(error) || error instanceof BudgetExceededError) {
      deps.log('warn', `Stopping before tick ${new Date(tick).toISOString()}: ${(error as Error).message}`);
      return (error as Error).message;
    }
    throw error;
  }
  report.durationsMs.query += clock() - t;
  report.queries += deps.source.lastRead?.queries ?? 1;
  report.rowsFetched += deps.source.lastRead?.rows ?? groups.length;
  return groups;
}

/** Adds a tick's counts to the run report. */
function addTickStats(report: RunReport, stats: TickStats): void {
  report.groups += stats.groups;
  report.events += stats.events;
  report.internalEvents += stats.internalEvents;
  report.noCityEvents += stats.noCityEvents;
  report.notFoundEvents += stats.notFoundEvents;
  report.observations += stats.scored;
  report.alerts += stats.alerts;
  report.suppressedByCooldown += stats.suppressedByCooldown;
  report.suppressedByCap += stats.suppressedByCap;
  report.allowlisted = (report.allowlisted ?? 0) + stats.allowlisted;
  report.rowsRejected = (report.rowsRejected ?? 0) + stats.rowsRejected;
}

/** Ends the run: the allowlist's count, delivery and daily maintenance, the run's telemetry and its last log line. */
async function closeRun(run: TimerRun, allow: Allowlist | undefined): Promise<RunReport> {
  const { deps, report, clock } = run;
  if (allow && allow.suppressed > 0)
    deps.log('info', `Allowlisted ${allow.suppressed} rare finding(s): ${allow.describeCounts()}`);
  await deliverAndMaintain(deps, report, run.budget, clock);
  report.durationsMs.total = clock() - run.startedMs;
  deps.telemetry.run(report);
  deps.log(
    'info',
    `Ran ${report.ticks.length} tick(s): ${report.events} events, ${report.observations} observations, ${report.alerts} alert(s), ` +
      `${report.delivered} delivered, ${report.pendingOutbox} pending${report.stoppedBecause ? `; stopped: ${report.stoppedBecause}` : ''}`,
  );
  return report;
}
