/**
 * Queue mode (UC_SHARDING=queue): scale-out beyond one instance.
 *
 * The timer no longer detects. For each tick it records the tick in Table Storage and enqueues UC_SHARD_COUNT
 * messages on the Storage queue UC_SHARD_QUEUE, one per shard. A shard is a residue of a stable hash of the
 * operation key (shardOf: XXH64, which Log Analytics computes too, so each shard downloads only its share), so
 * shards own disjoint operation partitions of the baselines; the queue-triggered
 * function processShard (functions/processShard.ts) runs the same pipeline (runTick) over its shard's part of
 * the window, on as many instances as the platform scales to.
 *
 * Completion, and why the checkpoint cannot gap or double count:
 * - a shard writes its completion row (state/`shards:<tick>`/`s<index>`) only after runTick resolved, i.e.
 *   after its alerts are in the outbox and its baselines written; a shard that fails throws, and the platform
 *   retries it (visibility timeout) up to maxDequeueCount times, then moves it to `<queue>-poison`;
 * - the checkpoint (the existing one) moves to a tick only when every shard of that tick and of every earlier
 *   tick has its completion row. Ticks are enqueued ahead of it (the `enqueued` pointer), so a slow or failing
 *   shard holds the checkpoint back but not later ticks;
 * - every timer run looks at the ticks between the checkpoint and the pointer and enqueues again each shard
 *   without a completion row whose last enqueue is older than REENQUEUE_AFTER_MS — a shard lost to the poison
 *   queue or a deleted message is retried, however long it takes: no gap;
 * - a shard processed twice (re-enqueued while a slow first copy still ran, or retried after a crash past its
 *   writes) changes nothing: runTick counts each (operation, city, hour) once, alert ids are deterministic, the
 *   ledger claim keeps one alert per episode, the outbox dedupes by AlertId: no double count. The other choice —
 *   checkpoint as soon as the shards are enqueued and leave completion to the platform's retries — loses a
 *   shard for good once it reaches the poison queue (its late events are seen by no later window).
 *
 * Shared partitions. The tenant partition and the callers' bucket partitions are written by every shard: their
 * updates are read-modify-write with optimistic concurrency (ETag; a lost race re-reads and re-applies, and
 * counting is idempotent), so concurrent shards converge to what one run would have written
 * (test/scale/shards.test.ts). Two limits, documented in docs/performance.md: a shard may score against tenant
 * and caller counts that already include another shard's hours of the same tick (as an unsharded run does for
 * hours an earlier overlapping run counted), and the daily alert cap is applied per shard.
 *
 * Alerts of one (caller, city) from operations in different shards: each shard decides its own findings, then
 * claims the episode in the ledger row with a conditional write (runTick, claimAlerts): the first claim raises
 * the alert, the other shard's findings join that episode (or raise a rescore alert when they score
 * UC_RESCORE_MARGIN higher, as in one process). The alert lists only the claiming shard's operations; the
 * ledger row lists all of them.
 */
import type { TokenCredential } from '@azure/identity';
import { QueueClient, StorageSharedKeyCredential } from '@azure/storage-queue';

import type { Alert } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { Entity } from '../baseline/store.js';
import { type Settings, SettingsError } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import { baselineGate } from '../ops/bootstrap.js';
import { fnv1a } from '../pipeline/callers.js';
import { type RunState, runStateOf, shardTickComplete } from '../pipeline/runState.js';
import { shardOf } from '../pipeline/shard.js';
import { type LogFn, runTick, type TickStats } from '../pipeline/tick.js';
import { BudgetExceededError, RunBudget } from './budget.js';
import { parseLocalConnectionString } from './clients.js';
import type { DetectorDeps, ShardMessage, ShardQueue } from './deps.js';
import { bootstrapDeps, deliverAndMaintain, newRunReport, runPipeline } from './report.js';
import type { RunReport } from './telemetry.js';

// The shard queue port lives with DetectorDeps (shared/runtime/deps.ts); re-exported for the code that imports it
// from here.
export type { ShardMessage, ShardQueue };

/** A shard without a completion row is enqueued again this long after its last enqueue. */
export const REENQUEUE_AFTER_MS = 30 * 60_000;
/** Most new ticks one timer run enqueues (a catch-up after a long outage continues on the next run). */
export const MAX_TICKS_PER_RUN = 96;

export { shardOf };

/** The assignment of new ticks (ShardMessage.v). */
const ASSIGNMENT = 2;

/** Assignment 1, of ticks recorded before assignment 2: a range of FNV-1a's 32-bit space. */
export function legacyShardOf(operationKey: string, shards: number): number {
  return Math.floor((fnv1a(operationKey) * shards) / 2 ** 32);
}

export function encodeShardMessage(m: ShardMessage): string {
  return Buffer.from(JSON.stringify(m), 'utf8').toString('base64');
}

/** Validates a message as the queue trigger hands it over (already decoded and parsed by the host). */
export function parseShardMessage(raw: unknown): ShardMessage {
  let value = raw;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      throw new Error('shard message is not JSON');
    }
  }
  const m = value as Partial<ShardMessage> | null;
  const int = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x);
  if (
    m === null ||
    typeof m !== 'object' ||
    (m.v !== 1 && m.v !== 2) ||
    !int(m.tickMs) ||
    !int(m.windowStartMs) ||
    !int(m.windowEndMs) ||
    !int(m.shard) ||
    !int(m.shards) ||
    m.shards! < 1 ||
    m.shards! > 64 ||
    m.shard! < 0 ||
    m.shard! >= m.shards! ||
    m.windowEndMs! <= m.windowStartMs!
  ) {
    throw new Error(`not a shard message: ${JSON.stringify(raw).slice(0, 200)}`);
  }
  return m as ShardMessage;
}

const isLoopbackUrl = (u: string): boolean => {
  try {
    const h = new URL(u).hostname.replace(/^\[|\]$/g, '');
    return h === 'localhost' || h === '::1' || /^127\./.test(h);
  } catch {
    return false;
  }
};

/**
 * The shard queue from settings: UC_QUEUE_ENDPOINT with the managed identity in Azure, or the QueueEndpoint of
 * the local-development connection string (Azurite; loopback only). The queue is created when missing (the
 * deployment creates it in Azure).
 */
export function shardQueueFromSettings(s: Settings, credential: TokenCredential): ShardQueue {
  let client: QueueClient;
  if (s.UC_QUEUE_ENDPOINT !== '') {
    client = new QueueClient(`${s.UC_QUEUE_ENDPOINT.replace(/\/+$/, '')}/${s.UC_SHARD_QUEUE}`, credential);
  } else {
    const endpoint = /QueueEndpoint=([^;]+)/i.exec(s.UC_STORAGE_CONNECTION_STRING)?.[1];
    if (endpoint === undefined || !isLoopbackUrl(endpoint)) {
      throw new SettingsError([
        {
          name: 'UC_QUEUE_ENDPOINT',
          value: '',
          allowed:
            'the Queue service URL of the storage account (UC_SHARDING=queue), or a local UC_STORAGE_CONNECTION_STRING with a 127.0.0.1 QueueEndpoint',
        },
      ]);
    }
    const local = parseLocalConnectionString(s.UC_STORAGE_CONNECTION_STRING);
    client = new QueueClient(
      `${endpoint.replace(/\/+$/, '')}/${s.UC_SHARD_QUEUE}`,
      new StorageSharedKeyCredential(local.credential.name, local.credential.key),
    );
  }
  let ready: Promise<unknown> | undefined;
  return {
    name: s.UC_SHARD_QUEUE,
    async send(message) {
      ready ??= client.createIfNotExists().catch((e: unknown) => {
        ready = undefined;
        throw e;
      });
      await ready;
      await client.sendMessage(encodeShardMessage(message));
    },
  };
}

/** Enqueues the given shards of a tick, recording the enqueue first (so a crash in between re-enqueues). */
async function enqueue(
  state: RunState,
  queue: ShardQueue,
  tickMs: number,
  windowMs: number,
  shards: number,
  which: readonly number[],
  nowMs: number,
): Promise<void> {
  const first = { shards, windowStartMs: tickMs - windowMs, windowEndMs: tickMs, assignment: ASSIGNMENT };
  const record = await state.recordEnqueue(tickMs, first, nowMs);
  for (const shard of which) {
    if (shard >= record.shards) continue;
    await queue.send({
      v: record.assignment === 1 ? 1 : 2,
      tickMs,
      windowStartMs: record.windowStartMs,
      windowEndMs: record.windowEndMs,
      shard,
      shards: record.shards,
    });
  }
}

export interface Progress {
  /** Ticks found complete and checkpointed, in order. */
  checkpointed: number[];
  /** Ticks still waiting for shards (after the checkpoint). */
  waiting: number[];
  /** Shards enqueued again. */
  reenqueued: number;
}

/**
 * Moves the checkpoint over every complete tick after it (in order, stopping at the first incomplete one) and,
 * when a queue is given, enqueues again the shards of incomplete ticks that have waited REENQUEUE_AFTER_MS.
 */
export async function advanceShardCheckpoint(
  state: RunState,
  s: Settings,
  nowMs: number,
  queue?: ShardQueue,
): Promise<Progress> {
  const out: Progress = { checkpointed: [], waiting: [], reenqueued: 0 };
  out.checkpointed = await state.advanceShardCheckpoint(s.UC_TICK_INTERVAL, async (t, record) => {
    out.waiting.push(t);
    if (queue === undefined) return;
    const shards = record?.shards ?? s.UC_SHARD_COUNT;
    if (record === undefined || nowMs - record.enqueuedAtMs >= REENQUEUE_AFTER_MS) {
      const missing = [...Array(shards).keys()].filter((i) => !record?.done.has(i));
      await enqueue(state, queue, t, s.UC_LOOKBACK, shards, missing, nowMs);
      out.reenqueued += missing.length;
    }
  });
  return out;
}

/** The timer in queue mode: enqueue new ticks, advance the checkpoint, deliver. Returns the run report. */
export async function runShardedTimer(
  deps: DetectorDeps & { shardQueue: ShardQueue },
  invocation: { invocationId: string; isPastDue: boolean },
): Promise<RunReport> {
  const s = deps.settings;
  const clock = deps.clock ?? Date.now;
  const budget = new RunBudget(s.UC_RUN_BUDGET, clock);
  const interval = s.UC_TICK_INTERVAL;
  const started = clock();
  const scheduledMs = Math.floor(started / interval) * interval;
  const report: RunReport = newRunReport(invocation, scheduledMs);
  try {
    // As in one process: an unfinished bootstrap runs first and detection waits for it (shared/ops/bootstrap.ts).
    const geo = await deps.geo.current();
    report.geoIpSource = geo.source;
    report.geoIpBuildDate = geo.buildDate.toISOString().slice(0, 10);
    report.geoIpAgeDays = geo.ageDays;
    const gate = await baselineGate(bootstrapDeps(deps, geo, clock), {
      owner: `timer:${invocation.invocationId}`,
      budget,
      reserveMs: 60_000,
    });
    report.baseline = gate.baseline;
    if (gate.baseline === 'bootstrapping') {
      report.stoppedBecause = 'bootstrap in progress';
      report.durationsMs.total = clock() - started;
      deps.telemetry.run(report);
      return report;
    }
    const state = runStateOf(deps.store);
    const progress = await advanceShardCheckpoint(state, s, started, deps.shardQueue);
    const checkpoint = await state.checkpoint();
    const pointer = await state.enqueued();
    const from = Math.max(checkpoint, pointer.lastTickMs);
    const ticks: number[] = [];
    if (from === 0) ticks.push(scheduledMs);
    else
      for (let t = from + interval; t <= scheduledMs && ticks.length < MAX_TICKS_PER_RUN; t += interval)
        ticks.push(t);
    for (const tick of ticks) {
      if (budget.remainingMs() <= 0) break;
      await enqueue(
        state,
        deps.shardQueue,
        tick,
        s.UC_LOOKBACK,
        s.UC_SHARD_COUNT,
        [...Array(s.UC_SHARD_COUNT).keys()],
        clock(),
      );
      await state.markEnqueued(tick);
      report.ticks.push(tick);
    }
    report.ticksLeft = progress.waiting.length;
    if (progress.waiting.length > 0) {
      report.stoppedBecause = `checkpoint waits for shards of ${progress.waiting.length} tick(s) (first ${new Date(progress.waiting[0]!).toISOString()})`;
    }
    deps.log(
      'info',
      `Queue mode: enqueued ${report.ticks.length} tick(s) × ${s.UC_SHARD_COUNT} shard(s) on ${deps.shardQueue.name}; ` +
        `checkpointed ${progress.checkpointed.length} complete tick(s); ${progress.waiting.length} waiting` +
        (progress.reenqueued > 0 ? `; ${progress.reenqueued} shard(s) enqueued again` : ''),
    );
    await deliverAndMaintain(deps, report, budget, clock);
    report.durationsMs.total = clock() - started;
    deps.telemetry.run(report);
    return report;
  } catch (error) {
    deps.telemetry.exception(error instanceof Error ? error : new Error(String(error)), { stage: 'enqueue' });
    throw error;
  } finally {
    await deps.telemetry.flush().catch(() => undefined);
  }
}

export interface ShardOutcome {
  message: ShardMessage;
  /** True when the shard's completion row already existed: nothing was done again. */
  alreadyDone: boolean;
  stats?: TickStats;
  /** Rows Log Analytics returned for the window, and the groups of this shard. */
  groups: number;
  shardGroups: number;
  /** This shard completed its tick and delivered the tick's alerts. */
  finalized: boolean;
  raised: Alert[];
  /** What the shard sent to telemetry as its `UnusualCityRun` (with `shard`); absent when already done. */
  report?: RunReport;
}

/** A shard's counts as a run report: the workbook sums them with the timer's (which detects nothing here). */
function shardReport(
  m: ShardMessage,
  invocationId: string,
  outcome: ShardOutcome,
  geo: { source: string; buildDate: Date; ageDays: number },
): RunReport {
  const report = newRunReport({ invocationId, isPastDue: false }, m.tickMs, outcome.raised);
  const stats = outcome.stats;
  report.shard = `${m.shard}/${m.shards}`;
  report.ticks = [m.tickMs];
  report.rowsFetched = outcome.groups;
  report.queries = 1;
  report.geoIpSource = geo.source;
  report.geoIpBuildDate = geo.buildDate.toISOString().slice(0, 10);
  report.geoIpAgeDays = geo.ageDays;
  if (stats === undefined) return report;
  report.groups = stats.groups;
  report.events = stats.events;
  report.internalEvents = stats.internalEvents;
  report.noCityEvents = stats.noCityEvents;
  report.notFoundEvents = stats.notFoundEvents;
  report.observations = stats.scored;
  report.alerts = stats.alerts;
  report.suppressedByCooldown = stats.suppressedByCooldown;
  report.suppressedByCap = stats.suppressedByCap;
  report.allowlisted = stats.allowlisted;
  report.rowsRejected = stats.rowsRejected;
  return report;
}

/**
 * One shard: read the window, keep the shard's operations, run the pipeline, record completion, and send its
 * `UnusualCityRun` (counts, `rowsRejected`, `shard`). Throws when the window cannot be read completely (the
 * platform retries the message; the exception goes to telemetry, scrubbed). The shard that completes a tick
 * last (elected by a conditional write) delivers the outbox and moves the checkpoint.
 */
export async function runShard(
  deps: Omit<DetectorDeps, 'log'> & { log: LogFn },
  raw: unknown,
  invocation: { invocationId: string; dequeueCount?: number },
): Promise<ShardOutcome> {
  const m = parseShardMessage(raw);
  try {
    return await processShardMessage(deps, m, invocation);
  } catch (error) {
    deps.telemetry.exception(error instanceof Error ? error : new Error(String(error)), {
      stage: 'shard',
      shard: `${m.shard}/${m.shards}`,
      tick: new Date(m.tickMs).toISOString(),
    });
    throw error;
  } finally {
    await deps.telemetry.flush().catch(() => undefined);
  }
}

type ShardDeps = Omit<DetectorDeps, 'log'> & { log: LogFn };

async function processShardMessage(
  deps: ShardDeps,
  m: ShardMessage,
  invocation: { invocationId: string; dequeueCount?: number },
): Promise<ShardOutcome> {
  const clock = deps.clock ?? Date.now;
  const started = clock();
  const outcome: ShardOutcome = {
    message: m,
    alreadyDone: false,
    groups: 0,
    shardGroups: 0,
    finalized: false,
    raised: [],
  };
  const state = runStateOf(deps.store);
  const before = await state.shardProgress(m.tickMs);
  if (before?.done.has(m.shard)) {
    outcome.alreadyDone = true;
    deps.log('info', `Shard ${m.shard}/${m.shards} of ${new Date(m.tickMs).toISOString()} is already done`);
    return outcome;
  }
  const budget = new RunBudget(deps.settings.UC_RUN_BUDGET, clock);
  const geo = await deps.geo.current();
  const stats = await detectShard(deps, m, outcome, budget, geo);
  await markShardDone(state, m, invocation, stats, outcome.shardGroups, clock);
  const report = shardReport(m, invocation.invocationId, outcome, geo);
  report.durationsMs.detect = clock() - started;
  await finalizeIfLast(deps, state, m, outcome, report, budget, clock);
  report.durationsMs.total = clock() - started;
  outcome.report = report;
  deps.telemetry.run(report);
  deps.log(
    'info',
    `Shard ${m.shard}/${m.shards} of ${new Date(m.tickMs).toISOString()}: ${outcome.shardGroups} groups (of ${outcome.groups} rows read), ` +
      `${stats.scored} observations, ${stats.alerts} alert(s)` +
      (stats.rowsRejected > 0 ? `, ${stats.rowsRejected} row(s) rejected` : '') +
      (outcome.finalized ? '; tick complete' : ''),
  );
  return outcome;
}

/** Reads the window, keeps the shard's operations and runs the pipeline over them (outcome collects). */
async function detectShard(
  deps: ShardDeps,
  m: ShardMessage,
  outcome: ShardOutcome,
  budget: RunBudget,
  geo: { geo: Geolocator; networks?: NetworkLocator },
): Promise<TickStats> {
  const share = { index: m.shard, count: m.shards };
  const mineOnly = (operationKey: string) =>
    (m.v === 1 ? legacyShardOf : shardOf)(operationKey, m.shards) === m.shard;
  const groups = await deps.source.read(m.windowStartMs, m.windowEndMs, m.v === 1 ? undefined : share);
  if (budget.expired())
    throw new BudgetExceededError(`reading shard ${m.shard} of ${new Date(m.tickMs).toISOString()}`);
  const mine = groups.filter((g) => mineOnly(g.operationKey));
  outcome.groups = deps.source.lastRead?.rows ?? groups.length;
  outcome.shardGroups = mine.length;
  const allow = deps.allowlist ? await deps.allowlist() : undefined;
  const sink: AlertSink = {
    write: async (alerts) => {
      await deps.outbox.write(alerts);
      outcome.raised.push(...alerts);
    },
  };
  outcome.stats = await runTick(runPipeline(deps, geo, sink, allow), m.tickMs, mine);
  return outcome.stats;
}

/** The shard's completion row: only now can the checkpoint count on this shard. */
async function markShardDone(
  state: RunState,
  m: ShardMessage,
  invocation: { invocationId: string; dequeueCount?: number },
  stats: TickStats,
  groups: number,
  clock: () => number,
): Promise<void> {
  const row: Entity = {
    doneAtMs: clock(),
    invocationId: invocation.invocationId,
    dequeueCount: invocation.dequeueCount ?? 0,
    groups,
    observations: stats.scored,
    alerts: stats.alerts,
  };
  await state.markShardDone(m.tickMs, m.shard, row);
}

/**
 * The last shard to finish finalizes the tick — one winner, by a conditional write of the tick row: it moves
 * the checkpoint and delivers the outbox (its report carries the delivery counts).
 */
async function finalizeIfLast(
  deps: ShardDeps,
  state: RunState,
  m: ShardMessage,
  outcome: ShardOutcome,
  report: RunReport,
  budget: RunBudget,
  clock: () => number,
): Promise<void> {
  const after = await state.shardProgress(m.tickMs);
  if (!shardTickComplete(after) || after!.finalizedAtMs !== 0) return;
  const now = clock();
  if (!(await state.claimFinalize(m.tickMs, now))) return;
  outcome.finalized = true;
  await advanceShardCheckpoint(state, deps.settings, now);
  try {
    const d = await deps.deliver(budget);
    report.delivered = d.delivered;
    report.deliveryFailed = d.failed;
    report.pendingOutbox = d.pending;
  } catch (error) {
    deps.log(
      'warn',
      `Alert delivery after shard ${m.shard} failed (the next timer run retries): ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  report.durationsMs.deliver = clock() - now;
}
