/**
 * Bootstrap: builds the baselines from the last N days of AzureActivity before the detector's first run, so
 * that it starts as if it had been running for those days (the tenant's learning period counts from the first
 * history hour), without raising a single alert for history.
 *
 * How: history is read in windows (one day by default; the source splits further on the query limits) strictly
 * oldest first, and each window goes through `runTick` in count-only mode — the same observations, the same
 * scores (kept in each row's recent hours), the same idempotent counting and the same persistence as a regular
 * run, but no alert decision. The idempotent counting is what makes it safe: an (operation, city, hour) never
 * counts twice, whether a window is redone after a crash or the timer re-reads the last hours afterwards. It
 * relies on hours arriving in order (each row remembers its last 24 counted hours), which is why history must
 * be counted before the present: while a bootstrap is unfinished the timer does not detect, it continues the
 * bootstrap ({@link baselineGate}), and at the end the checkpoint is set to the bootstrap's end so that the
 * timer continues from there.
 *
 * State: one row in table 'state', partition 'bootstrap' ({@link BootstrapStatus}): the period, progress,
 * counts, and a lease (owner, expiry) so that only one worker — the CLI, the HTTP function's background work or
 * a timer run — counts at a time. A crash leaves the lease to expire; whoever comes next redoes the window
 * that was in flight (idempotent) and goes on. The row, its parsing and the checkpoint are kept by
 * {@link runStateOf} (shared/pipeline/runState.ts); this module holds the policy: lease, windows, refusal.
 *
 * Existing state: if the detector already learned something (a few timer runs before the bootstrap), the
 * baselines are cleared and rebuilt from history, which covers those hours too. If it learned from before the
 * bootstrap period, that history would be lost: the bootstrap refuses unless `replace` is given.
 */
import { randomUUID } from 'node:crypto';

import { alertDefaults } from '../alerts/defaults.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore, TableName } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import { type BaselineCondition, type BootstrapStatus, runStateOf } from '../pipeline/runState.js';
import { type LogFn, runTick } from '../pipeline/tick.js';
import type { EventSource } from '../pipeline/types.js';
import type { RunBudget } from '../run/budget.js';
import { appendAudit, checkWhoAndWhy } from './audit.js';

/** How long a worker owns the bootstrap without renewing (renewed before and after every window). */
export const BOOTSTRAP_LEASE_MS = 5 * 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Default window: one day of history per query (the source splits it when a result hits the limits). */
export const DEFAULT_BOOTSTRAP_WINDOW_MS = DAY_MS;
/** Default wait before clearing existing state, so a detection run in flight can finish its tick. */
export const DEFAULT_CLEAR_GRACE_MS = 30_000;

/** What the bootstrap needs: the same pieces as a detection run. */
export interface BootstrapDeps {
  settings: Settings;
  store: BaselineStore;
  source: EventSource;
  geo: Geolocator;
  /** Networks of caller IPs (as a detection run has them), so that callers' networks are learned too. */
  networks?: NetworkLocator;
  log: LogFn;
  clock?: () => number;
}

/** The bootstrap cannot start as asked; the message says why and what to do. */
export class BootstrapRefusedError extends Error {
  override name = 'BootstrapRefusedError';
}

const iso = (ms: number): string => new Date(ms).toISOString();

export interface StartOptions {
  days: number;
  /** End of the history period (exclusive); becomes the checkpoint. Azure: the current timer slot. */
  endMs: number;
  /** Files: the first event; the period starts no earlier than its hour. */
  earliestMs?: number;
  windowMs?: number;
  /** Rebuild even when the detector has learned from before the bootstrap period (that history is lost). */
  replace?: boolean;
  source: 'log-analytics' | 'files';
  requestedBy: string;
  reason?: string;
  /** Wait before clearing existing state (default 30 s when the timer has run; files: none). */
  graceMs?: number;
  clock?: () => number;
}

/**
 * Creates the bootstrap, or returns the unfinished one (`created: false`) — which is then resumed as it was
 * started, whatever the options say. Throws {@link BootstrapRefusedError} when it must not run.
 */
export async function startBootstrap(
  store: BaselineStore,
  o: StartOptions,
): Promise<{ status: BootstrapStatus; created: boolean }> {
  const clock = o.clock ?? Date.now;
  const state = runStateOf(store);
  const existing = await state.bootstrap();
  if (existing?.state === 'running') return { status: existing, created: false };
  if (!Number.isInteger(o.days) || o.days < 1) throw new BootstrapRefusedError(`days must be at least 1`);
  const windowMs = o.windowMs ?? DEFAULT_BOOTSTRAP_WINDOW_MS;
  if (!(windowMs >= HOUR_MS) || windowMs % HOUR_MS !== 0)
    throw new BootstrapRefusedError('the window must be a whole number of hours');
  const endMs = o.endMs;
  let startMs = Math.floor((endMs - o.days * DAY_MS) / HOUR_MS) * HOUR_MS;
  if (o.earliestMs !== undefined) startMs = Math.max(startMs, Math.floor(o.earliestMs / HOUR_MS) * HOUR_MS);
  if (startMs >= endMs) {
    throw new BootstrapRefusedError(
      `nothing to bootstrap: the history period ${iso(startMs)} to ${iso(endMs)} is empty`,
    );
  }
  const { checkpointMs, firstSeenMs } = await state.learned();
  if (checkpointMs > endMs) {
    throw new BootstrapRefusedError(
      `the detector's checkpoint (${iso(checkpointMs)}) is after the end of the bootstrap period (${iso(endMs)}): ` +
        'history can only be counted before the present',
    );
  }
  if (o.replace === true) {
    const problem = checkWhoAndWhy(o.requestedBy, o.reason);
    if (problem !== undefined) throw new BootstrapRefusedError(`replacing learned baselines ${problem}`);
  }
  if (firstSeenMs > 0 && firstSeenMs < startMs && o.replace !== true) {
    throw new BootstrapRefusedError(
      `the detector has learned since ${iso(firstSeenMs)}, before the bootstrap period (${iso(startMs)} to ${iso(endMs)}): ` +
        'a bootstrap would replace that history. Rebuild anyway with --replace (HTTP: replace=true)',
    );
  }
  const now = clock();
  const rebuild = firstSeenMs > 0 || checkpointMs > 0;
  const grace =
    rebuild && checkpointMs > 0 && o.source === 'log-analytics' ? (o.graceMs ?? DEFAULT_CLEAR_GRACE_MS) : 0;
  const mine: BootstrapStatus = {
    id: randomUUID(),
    state: 'running',
    phase: rebuild ? 'clearing' : 'counting',
    source: o.source,
    days: o.days,
    startMs,
    endMs,
    windowMs,
    doneUntilMs: startMs,
    windowsDone: 0,
    windowsTotal: Math.ceil((endMs - startMs) / windowMs),
    groups: 0,
    events: 0,
    observations: 0,
    rareFindings: 0,
    rebuild,
    requestedBy: o.requestedBy,
    reason: o.reason ?? '',
    createdMs: now,
    updatedMs: now,
    finishedMs: 0,
    graceUntilMs: now + grace,
    owner: '',
    leaseUntilMs: 0,
    lastError: '',
  };
  const written = await state.updateBootstrap((cur) => (cur?.state === 'running' ? undefined : mine));
  if (!written || written.id !== mine.id) return { status: written ?? mine, created: false };
  await appendAudit(store, {
    action: 'bootstrap',
    by: o.requestedBy,
    reason: o.reason ?? '',
    atMs: now,
    subject: `${historyDays({ startMs, endMs })} of ${o.source === 'files' ? 'files' : 'AzureActivity'}, ${iso(startMs)} to ${iso(endMs)}`,
    detail: JSON.stringify({ id: mine.id, rebuild, replace: o.replace === true, checkpointMs, firstSeenMs }),
  });
  return { status: written, created: true };
}

/** Cancels an unfinished bootstrap: the baselines stay as far as it got, detection resumes. Audited. */
export async function cancelBootstrap(
  store: BaselineStore,
  change: { by: string; reason: string; atMs: number },
): Promise<BootstrapStatus | undefined> {
  let cancelled = false;
  const st = await runStateOf(store).updateBootstrap((cur) => {
    cancelled = cur?.state === 'running';
    return cur?.state === 'running'
      ? {
          ...cur,
          state: 'cancelled',
          finishedMs: change.atMs,
          updatedMs: change.atMs,
          owner: '',
          leaseUntilMs: 0,
        }
      : undefined;
  });
  if (cancelled && st) {
    await appendAudit(store, {
      action: 'bootstrap-cancel',
      by: change.by,
      reason: change.reason,
      atMs: change.atMs,
      subject: `bootstrap ${st.id}`,
      detail: JSON.stringify({ doneUntilMs: st.doneUntilMs, windowsDone: st.windowsDone }),
    });
  }
  return cancelled ? st : undefined;
}

export type RunOutcome = 'done' | 'paused' | 'busy' | 'cancelled' | 'none';

export interface RunOptions {
  /** Who works on it (`cli:<host>:<pid>`, `http:<invocation>`, `timer:<invocation>`); holds the lease. */
  owner: string;
  /** Stop cleanly (outcome 'paused') before the budget runs out; absent: run to the end. */
  budget?: RunBudget;
  /** Budget kept back (default 60 s). */
  reserveMs?: number;
  /** Take the lease even when another owner holds it (local state, where no timer runs). */
  takeOver?: boolean;
  onProgress?: (s: BootstrapStatus) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** Deletes every row of a table (listing partitions scans it: for tools, never on the hot path). */
async function clearTable(store: BaselineStore, table: TableName): Promise<number> {
  const partitions = await store.listPartitions(table);
  let next = 0;
  const worker = async () => {
    while (next < partitions.length) {
      const p = partitions[next++]!;
      await store.updatePartition(table, p, (cur) => new Map([...cur.keys()].map((k) => [k, null])));
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, partitions.length) }, worker));
  return partitions.length;
}

/** A sink for history: count-only runs never hand it an alert; if one ever did, that is a bug. */
const NO_ALERTS: AlertSink = {
  write: (alerts) =>
    alerts.length === 0
      ? Promise.resolve()
      : Promise.reject(new Error('bootstrap produced alerts for history: count-only runs must not alert')),
};

/** What a call of {@link runBootstrap} ends with. */
type RunResult = { outcome: RunOutcome; status?: BootstrapStatus };

/** One call of {@link runBootstrap}: what its stages share. */
interface BootstrapRun {
  d: BootstrapDeps;
  o: RunOptions;
  clock: () => number;
  /** Budget kept back. */
  reserve: number;
  sleep: (ms: number) => Promise<void>;
}

/**
 * Works on the unfinished bootstrap until it is done, the budget is spent, or it is cancelled. Safe to call
 * from several places at once: only the lease holder works, the others get 'busy'.
 */
export async function runBootstrap(d: BootstrapDeps, o: RunOptions): Promise<RunResult> {
  const run: BootstrapRun = {
    d,
    o,
    clock: d.clock ?? Date.now,
    reserve: o.reserveMs ?? 60_000,
    sleep: o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
  };
  let st = await takeLease(run);
  if (!st) return { outcome: 'none' };
  if (st.state !== 'running') return { outcome: st.state === 'done' ? 'done' : 'cancelled', status: st };
  if (st.owner !== o.owner) return { outcome: 'busy', status: st };
  try {
    if (st.phase === 'clearing') {
      const cleared = await clearLearnedState(run, st);
      if ('outcome' in cleared) return cleared;
      st = cleared;
    }
    const counted = await countHistory(run, st);
    if ('outcome' in counted) return counted;
    return await finishBootstrap(run, counted);
  } catch (error) {
    await recordFailure(run, error);
    throw error;
  }
}

/** Takes the lease of a running bootstrap unless another owner holds it; the status as it then is. */
function takeLease({ d, o, clock }: BootstrapRun): Promise<BootstrapStatus | undefined> {
  return runStateOf(d.store).updateBootstrap((cur) => {
    if (cur?.state !== 'running') return undefined;
    if (cur.owner !== o.owner && cur.owner !== '' && cur.leaseUntilMs > clock() && o.takeOver !== true)
      return undefined;
    return { ...cur, owner: o.owner, leaseUntilMs: clock() + BOOTSTRAP_LEASE_MS, updatedMs: clock() };
  });
}

/** Renews the lease and applies `patch`; undefined when the bootstrap is no longer ours (cancelled, taken). */
async function renewLease(
  { d, o, clock }: BootstrapRun,
  patch: (cur: BootstrapStatus) => Partial<BootstrapStatus> = () => ({}),
): Promise<BootstrapStatus | undefined> {
  let applied = false;
  const next = await runStateOf(d.store).updateBootstrap((cur) => {
    applied = cur?.state === 'running' && cur.owner === o.owner;
    return applied && cur
      ? { ...cur, leaseUntilMs: clock() + BOOTSTRAP_LEASE_MS, updatedMs: clock(), ...patch(cur) }
      : undefined;
  });
  return applied ? next : undefined;
}

/** The lease was lost: how the bootstrap stands now (done, cancelled, or another worker's). */
async function lostLease({ d }: BootstrapRun): Promise<RunResult> {
  const now = await runStateOf(d.store).bootstrap();
  return {
    outcome: now?.state === 'done' ? 'done' : now?.state === 'cancelled' ? 'cancelled' : 'busy',
    ...(now ? { status: now } : {}),
  };
}

/** Releases the lease so the next run continues at once. */
async function pauseBootstrap(run: BootstrapRun, why: string): Promise<RunResult> {
  const released = await renewLease(run, () => ({ owner: '', leaseUntilMs: 0 }));
  run.d.log('info', `Bootstrap paused (${why}); the next run continues it`);
  return { outcome: 'paused', ...(released ? { status: released } : {}) };
}

/** A rebuild's first phase: waits out the grace for a detection run in flight, then wipes what was learned. */
async function clearLearnedState(
  run: BootstrapRun,
  st: BootstrapStatus,
): Promise<BootstrapStatus | RunResult> {
  const { d, o, clock, reserve, sleep } = run;
  const wait = st.graceUntilMs - clock();
  if (wait > 0) {
    if (o.budget && o.budget.remainingMs() - reserve < wait) return await pauseBootstrap(run, 'budget');
    d.log(
      'info',
      `Bootstrap: waiting ${Math.ceil(wait / 1000)} s before clearing, for a detection run in flight`,
    );
    await sleep(wait);
  }
  const baselines = await clearTable(d.store, 'baselines');
  const tenant = await clearTable(d.store, 'tenant');
  d.log(
    'info',
    `Bootstrap: cleared the learned state (${baselines} operation partition(s), ${tenant} tenant partition(s)); ` +
      'it is rebuilt from history',
  );
  const next = await renewLease(run, () => ({ phase: 'counting' }));
  if (!next) return await lostLease(run);
  return next;
}

/** Counts the history window by window, count-only, while the budget lasts; the status at its end. */
async function countHistory(run: BootstrapRun, from: BootstrapStatus): Promise<BootstrapStatus | RunResult> {
  const { d, o, reserve } = run;
  const pipeline = {
    store: d.store,
    geo: d.geo,
    ...(d.networks ? { networks: d.networks } : {}),
    settings: d.settings,
    sink: NO_ALERTS,
    defaults: alertDefaults(d.settings),
    log: d.log,
  };
  let st = from;
  let longest = 0;
  while (st.doneUntilMs < st.endMs) {
    if (o.budget && o.budget.remainingMs() < reserve + 2 * longest)
      return await pauseBootstrap(run, 'run budget');
    const fresh = await renewLease(run);
    if (!fresh) return await lostLease(run);
    const counted = await countWindow(run, pipeline, fresh);
    if (!counted) return await lostLease(run);
    st = counted.st;
    longest = Math.max(longest, counted.tookMs);
    o.onProgress?.(st);
  }
  return st;
}

/** Counts the next window into the baselines and records it; undefined when the lease was lost meanwhile. */
async function countWindow(
  run: BootstrapRun,
  pipeline: Parameters<typeof runTick>[0],
  st: BootstrapStatus,
): Promise<{ st: BootstrapStatus; tookMs: number } | undefined> {
  const { d, clock } = run;
  const startedAt = clock();
  const from = st.doneUntilMs;
  const to = Math.min(from + st.windowMs - ((from - st.startMs) % st.windowMs), st.endMs);
  const groups = await d.source.read(from, to);
  const stats = await runTick(pipeline, to, groups, { countOnly: true });
  const next = await renewLease(run, (cur) => ({
    doneUntilMs: to,
    windowsDone: cur.windowsDone + 1,
    groups: cur.groups + stats.groups,
    events: cur.events + stats.events,
    observations: cur.observations + stats.scored,
    rareFindings: cur.rareFindings + stats.rareFindings,
    lastError: '',
  }));
  if (!next) return undefined;
  const tookMs = clock() - startedAt;
  d.log(
    'info',
    `Bootstrap: counted ${iso(from)} to ${iso(to)} (${next.windowsDone}/${next.windowsTotal}): ` +
      `${stats.events} events, ${stats.scored} observations`,
  );
  return { st: next, tookMs };
}

/** Moves the checkpoint to the end of history and marks the bootstrap done. */
async function finishBootstrap(run: BootstrapRun, st: BootstrapStatus): Promise<RunResult> {
  const { d, o, clock } = run;
  // The timer continues from the end of history; commitCheckpoint never moves it backwards.
  await runStateOf(d.store).commitCheckpoint(st.endMs);
  const done = await renewLease(run, () => ({
    state: 'done',
    phase: 'done',
    finishedMs: clock(),
    owner: '',
    leaseUntilMs: 0,
  }));
  if (!done) return await lostLease(run);
  d.log(
    'info',
    `Bootstrap done: ${historyDays(done)} of history, ${iso(done.startMs)} to ${iso(done.endMs)}, ${done.events} events, ` +
      `${done.observations} observations counted, no alerts; detection continues from ${iso(done.endMs)}`,
  );
  o.onProgress?.(done);
  return { outcome: 'done', status: done };
}

/** Records the failure and frees the lease, so the next attempt (a timer run, the CLI again) starts at once. */
async function recordFailure({ d, o, clock }: BootstrapRun, error: unknown): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  await runStateOf(d.store)
    .updateBootstrap((cur) =>
      cur?.state === 'running' && cur.owner === o.owner
        ? { ...cur, lastError: message, owner: '', leaseUntilMs: 0, updatedMs: clock() }
        : undefined,
    )
    .catch(() => undefined);
}

/**
 * Called by every timer run before it detects. An unfinished bootstrap is continued (within the run's budget)
 * and detection waits until it is done; with no checkpoint and nothing learned, the baselines are empty and the
 * run says so, pointing at the bootstrap.
 */
export async function baselineGate(
  d: BootstrapDeps,
  o: { owner: string; budget: RunBudget; reserveMs: number },
): Promise<{ baseline: BaselineCondition; status?: BootstrapStatus }> {
  const gate = await runStateOf(d.store).gate();
  const st = gate.status;
  if (gate.baseline === 'bootstrapping' && st) {
    const r = await runBootstrap(d, { owner: o.owner, budget: o.budget, reserveMs: o.reserveMs });
    if (r.outcome === 'done' || r.outcome === 'cancelled' || r.outcome === 'none')
      return { baseline: 'ready', ...(r.status ? { status: r.status } : {}) };
    const s = r.status ?? st;
    d.log(
      'info',
      `Bootstrap in progress (${s.windowsDone}/${s.windowsTotal} windows, history counted up to ${iso(s.doneUntilMs)}` +
        `${r.outcome === 'busy' ? `, by ${s.owner}` : ''}): detection waits for it and then continues from ${iso(s.endMs)}`,
    );
    return { baseline: 'bootstrapping', status: s };
  }
  if (gate.baseline === 'ready') return gate;
  const s = d.settings;
  d.log(
    'warn',
    'Empty baselines: this is the first run (no checkpoint, nothing learned), so every city is new to every ' +
      `operation and scores stay damped until the tenant has UC_LEARNING_TENANT_DAYS=${s.UC_LEARNING_TENANT_DAYS} ` +
      `days of history. To learn from the last UC_BOOTSTRAP_DAYS=${s.UC_BOOTSTRAP_DAYS} days of AzureActivity ` +
      'now, run `unusual-city bootstrap` or POST /api/bootstrapBaselines with the admin key (README, "Bootstrap").',
  );
  return { baseline: 'empty' };
}

/** The length of the history period, e.g. `12 day(s)` or `9.9 day(s)` (files start at their first event). */
export function historyDays(s: Pick<BootstrapStatus, 'startMs' | 'endMs'>): string {
  return `${Math.round(((s.endMs - s.startMs) / DAY_MS) * 10) / 10} day(s)`;
}

/** The status as JSON for people and scripts (the HTTP function's body, `bootstrap --status --json`). */
export function bootstrapJson(s: BootstrapStatus): Record<string, unknown> {
  const t = (ms: number) => (ms > 0 ? iso(ms) : null);
  const span = s.endMs - s.startMs;
  return {
    id: s.id,
    state: s.state,
    phase: s.phase,
    source: s.source,
    days: s.days,
    start: t(s.startMs),
    end: t(s.endMs),
    countedUntil: t(s.doneUntilMs),
    windowHours: s.windowMs / HOUR_MS,
    windowsDone: s.windowsDone,
    windowsTotal: s.windowsTotal,
    percent: span > 0 ? Math.round((1000 * (s.doneUntilMs - s.startMs)) / span) / 10 : 100,
    groups: s.groups,
    events: s.events,
    observations: s.observations,
    rareFindings: s.rareFindings,
    rebuild: s.rebuild,
    requestedBy: s.requestedBy,
    reason: s.reason,
    created: t(s.createdMs),
    updated: t(s.updatedMs),
    finished: t(s.finishedMs),
    owner: s.owner,
    leaseUntil: t(s.leaseUntilMs),
    lastError: s.lastError,
  };
}

/** One line for a terminal or a log. */
export function formatBootstrap(s: BootstrapStatus): string {
  const j = bootstrapJson(s);
  const what =
    s.state === 'running'
      ? `running (${s.phase}), ${String(j.percent)}%: ${s.windowsDone}/${s.windowsTotal} window(s), counted up to ${iso(s.doneUntilMs)}`
      : s.state;
  return (
    `bootstrap ${what}; period ${iso(s.startMs)} to ${iso(s.endMs)} (${historyDays(s)}, ${s.source}); ` +
    `${s.events} events, ${s.observations} observations` +
    (s.owner !== '' && s.leaseUntilMs > 0 ? `; worked on by ${s.owner} until ${iso(s.leaseUntilMs)}` : '') +
    (s.lastError !== '' ? `; last error: ${s.lastError}` : '')
  );
}
