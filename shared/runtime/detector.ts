import type { Alert } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import { baselineGate } from '../ops/bootstrap.js';
import { runStateOf } from '../pipeline/runState.js';
import { runTick } from '../pipeline/tick.js';
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
  const clock = deps.clock ?? Date.now;
  const budget = new RunBudget(s.UC_RUN_BUDGET, clock);
  const interval = s.UC_TICK_INTERVAL;
  const started = clock();
  const scheduledMs = Math.floor(started / interval) * interval;
  const state = runStateOf(deps.store);
  const raised: Alert[] = [];
  const report: RunReport = {
    ...newRunReport(invocation, scheduledMs, raised),
    baseline: 'ready',
    allowlisted: 0,
  };
  try {
    let t = clock();
    const geo = await deps.geo.current();
    report.durationsMs.geo = clock() - t;
    report.geoIpSource = geo.source;
    report.geoIpBuildDate = geo.buildDate.toISOString().slice(0, 10);
    report.geoIpAgeDays = geo.ageDays;
    if (geo.stale) {
      deps.log(
        'warn',
        `GeoIP database ${geo.source} was built ${report.geoIpBuildDate} (${geo.ageDays} days ago, more than UC_GEOIP_MAX_AGE_DAYS=${s.UC_GEOIP_MAX_AGE_DAYS}): cities may be wrong. Check refreshGeoIpDatabase.`,
      );
    }

    // History comes before the present: an unfinished bootstrap is continued (within the budget) and detection
    // waits for it; a first run with nothing learned says so (shared/ops/bootstrap.ts).
    const gate = await baselineGate(bootstrapDeps(deps, geo, clock), {
      owner: `timer:${invocation.invocationId}`,
      budget,
      reserveMs: DELIVERY_RESERVE_MS,
    });
    report.baseline = gate.baseline;
    const allow = gate.baseline !== 'bootstrapping' && deps.allowlist ? await deps.allowlist() : undefined;
    const checkpoint = await state.checkpoint();
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

    const sink: AlertSink = {
      write: async (alerts) => {
        await deps.outbox.write(alerts);
        raised.push(...alerts);
      },
    };
    for (let i = 0; i < ticks.length; i++) {
      const tick = ticks[i]!;
      if (budget.remainingMs() < DELIVERY_RESERVE_MS) {
        report.stoppedBecause = 'run budget spent (UC_RUN_BUDGET)';
        report.ticksLeft = ticks.length - i;
        break;
      }
      if (i > 0 && (await state.bootstrapPending())) {
        report.stoppedBecause = 'a bootstrap started';
        report.ticksLeft = ticks.length - i;
        break;
      }
      t = clock();
      let groups;
      try {
        groups = await deps.source.read(tick - s.UC_LOOKBACK, tick);
      } catch (error) {
        if (isIncompleteWindow(error) || error instanceof BudgetExceededError) {
          report.stoppedBecause = (error as Error).message;
          report.ticksLeft = ticks.length - i;
          deps.log(
            'warn',
            `Stopping before tick ${new Date(tick).toISOString()}: ${(error as Error).message}`,
          );
          break;
        }
        throw error;
      }
      report.durationsMs.query += clock() - t;
      report.queries += deps.source.lastRead?.queries ?? 1;
      report.rowsFetched += deps.source.lastRead?.rows ?? groups.length;
      t = clock();
      const stats = await runTick(runPipeline(deps, geo, sink, allow), tick, groups);
      await state.commitCheckpoint(tick);
      report.durationsMs.detect += clock() - t;
      report.ticks.push(tick);
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
    if (allow && allow.suppressed > 0)
      deps.log('info', `Allowlisted ${allow.suppressed} rare finding(s): ${allow.describeCounts()}`);

    await deliverAndMaintain(deps, report, budget, clock);
    report.durationsMs.total = clock() - started;
    deps.telemetry.run(report);
    deps.log(
      'info',
      `Ran ${report.ticks.length} tick(s): ${report.events} events, ${report.observations} observations, ${report.alerts} alert(s), ` +
        `${report.delivered} delivered, ${report.pendingOutbox} pending${report.stoppedBecause ? `; stopped: ${report.stoppedBecause}` : ''}`,
    );
    return report;
  } catch (error) {
    deps.telemetry.exception(error instanceof Error ? error : new Error(String(error)), {
      stage: 'run',
      scheduled: new Date(scheduledMs).toISOString(),
    });
    throw error;
  } finally {
    await deps.telemetry.flush().catch(() => undefined);
  }
}
