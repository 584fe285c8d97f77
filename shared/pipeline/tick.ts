import type { Alert, RareFinding } from '../alerts/alert.js';
import {
  decideAlerts,
  type EpisodeDecision,
  type EpisodePolicy,
  type LedgerEntry,
  ledgerKey,
} from '../alerts/episodes.js';
import type { BaselineStore, Entity } from '../baseline/store.js';
import type { LogFn } from '../run/log.js';
import type { Observation, OperationBaseline, ScoringParams, TenantBaseline } from '../scoring/model.js';
import { scoringParams } from '../scoring/params.js';
import { arrivalPolicy, settleArrivals } from './arrivals.js';
import { readCallerHistories, updateCallerHistories } from './callers.js';
import { countHour, scoreHour } from './hours.js';
import { type RejectHandler, updateIsolated } from './isolate.js';
import { buildObservations, byHour } from './observations.js';
import { Quarantine } from './quarantine.js';
import { rememberAlerts, rememberOperations, rememberQuarantines, rememberTenant } from './remember.js';
import {
  dayPartition,
  ledgerFromEntity,
  ledgerToEntity,
  operationFromRows,
  sameEntity,
  TENANT_PARTITION,
  tenantFromRows,
} from './state.js';
import { mapLimit, type Pipeline, type TickRun, type TickStats } from './tickRun.js';
import type { EventGroup } from './types.js';

// LogFn lives in the leaf module shared/run/log.ts (low floors use it too); re-exported for the code that imports it
// from here. The run's types live in shared/pipeline/tickRun.ts, re-exported for the code that imports them from here.
export type { LogFn, Pipeline, TickStats };

export function newTickStats(tickMs: number, windowStartMs: number): TickStats {
  return {
    tickMs,
    windowStartMs,
    groups: 0,
    events: 0,
    internalEvents: 0,
    noCityEvents: 0,
    notFoundEvents: 0,
    invalidIpEvents: 0,
    observations: 0,
    scored: 0,
    alreadyCounted: 0,
    rareFindings: 0,
    allowlisted: 0,
    alerts: 0,
    suppressedByCooldown: 0,
    suppressedByCap: 0,
    operationsWritten: 0,
    rowsRejected: 0,
    absorbedByMove: 0,
    eventAlerts: 0,
  };
}

/**
 * One detection run for the window [tick − lookback, tick): observations are scored hour by hour against
 * the baselines as they were before that hour, alerts are decided and written, then baselines and the
 * ledger are updated. Crash-safe by order and idempotence: alerts reach the sink before anything that
 * would stop a re-run from raising them again, and every update counts an (operation, city, hour) once.
 * The checkpoint is the caller's job (see `commitCheckpoint`), after this resolves.
 *
 * With `countOnly` (bootstrap from history, shared/ops/bootstrap.ts) the window is scored and counted exactly
 * as above, but no finding reaches the alert decision: nothing is written to the sink, the ledger or the daily
 * count. `stats.rareFindings` still tells how many findings history held.
 */
export function runTick(
  p: Pipeline,
  tickMs: number,
  groups: readonly EventGroup[],
  options: { countOnly?: boolean } = {},
): Promise<TickStats> {
  // One batch per run (BaselineStore.batch): SQLite commits the run once; Table Storage reads each partition
  // once. Correct without it, so stores without batch simply run it as is. The groups are handed over, not
  // captured: the run lets go of them once they are folded into observations (a long run would hold them).
  const handOver: { groups?: readonly EventGroup[] } = { groups };
  const run = () => runTickBatched(p, tickMs, handOver, options);
  return p.store.batch ? p.store.batch(run) : run();
}

async function runTickBatched(
  p: Pipeline,
  tickMs: number,
  handOver: { groups?: readonly EventGroup[] },
  options: { countOnly?: boolean },
): Promise<TickStats> {
  const groups = handOver.groups;
  if (groups === undefined) throw new Error('runTick: a run of the same groups was started twice');
  delete handOver.groups;
  const params: ScoringParams = scoringParams(p.settings);
  const stats = newTickStats(tickMs, tickMs - p.settings.UC_LOOKBACK);
  stats.groups = groups.length;
  const observations = buildObservations(groups, p.geo, stats, p.networks);
  stats.observations = observations.length;
  if (observations.length === 0) return stats;
  const run = await readBaselines(p, tickMs, observations, params, stats, options.countOnly === true);
  for (const hourObs of byHour(observations)) {
    const pending = scoreHour(run, hourObs);
    countHour(run, hourObs, pending);
  }
  const eventAlerts = await screenFindings(run);
  const { decision, policy, day, ledger } = await decideRun(run);
  const alerts = await deliverAlerts(run, ledger, decision, policy, eventAlerts);
  await rememberAlerts(run, alerts, day);
  await rememberQuarantines(run);
  await rememberOperations(run);
  await rememberTenant(run);
  await updateCallerHistories(p.store, run.callerUpdates, run.histories.legacy, run.rejected);
  return stats;
}

/**
 * Reads the baselines the window's observations are scored against: the tenant's cities (one partition), each
 * operation's cities (one partition per operation) and the callers' cities (one read per bucket of callers,
 * shared/pipeline/callers.ts, not one per caller).
 */
async function readBaselines(
  p: Pipeline,
  tickMs: number,
  observations: readonly Observation[],
  params: ScoringParams,
  stats: TickStats,
  countOnly: boolean,
): Promise<TickRun> {
  const s = p.settings;
  const tenantRows = await p.store.readPartition('tenant', TENANT_PARTITION);
  const tenant: TenantBaseline = tenantFromRows(tenantRows);
  const opKeys = [...new Set(observations.map((o) => o.operationKey))];
  const display = new Map(observations.map((o) => [o.operationKey, o.operation]));
  const loaded = await mapLimit(opKeys, 8, async (k) =>
    operationFromRows(k, display.get(k) ?? k, await p.store.readPartition('baselines', k)),
  );
  const ops = new Map<string, OperationBaseline>(loaded.map((op) => [op.operationKey, op]));
  const callerKeys = [...new Set(observations.flatMap((o) => o.callers.map((c) => c.caller)))].filter(
    (c) => c !== '',
  );
  const histories = await readCallerHistories(p.store, callerKeys, tenantRows);
  const quarantine = new Quarantine(s.UC_QUARANTINE_DAYS, s.UC_QUARANTINE_SCORE, histories.cities);
  return {
    ...{ p, s, params, tickMs, stats, countOnly, tenant, ops, display, histories, quarantine },
    rejected: { log: p.log, count: () => (stats.rowsRejected += 1) },
    quarantineNow: new Map(),
    findings: [],
    arrivals: [],
    updates: new Map(),
    tenantUpdates: [],
    callerUpdates: new Map(),
  };
}

/**
 * The findings that reach the alert decision: none when counting history; the observer sees them before the
 * allowlists; moves and waves (several callers arriving in one city together are one event,
 * shared/pipeline/arrivals.ts) absorb theirs. Returns the move and wave alerts.
 */
async function screenFindings(run: TickRun): Promise<Alert[]> {
  const { p, stats, findings } = run;
  stats.rareFindings = findings.length;
  if (run.countOnly) findings.length = 0; // history is counted, never alerted on
  p.onFindings?.(run.tickMs, findings);
  if (p.suppress) {
    const kept = findings.filter((f) => p.suppress!(f) === undefined);
    stats.allowlisted = findings.length - kept.length;
    findings.splice(0, findings.length, ...kept);
  }
  if (run.countOnly || run.arrivals.length === 0) return [];
  const settled = await settleArrivals(
    p.store,
    run.tickMs,
    run.arrivals,
    findings,
    arrivalPolicy(run.s),
    p.defaults,
  );
  findings.splice(0, findings.length, ...settled.findings);
  stats.absorbedByMove = settled.absorbed;
  return settled.alerts;
}

/** The ledger rows of the findings' (caller, city) episodes: one read per caller. */
async function readLedger(
  store: BaselineStore,
  findings: readonly RareFinding[],
): Promise<Map<string, LedgerEntry>> {
  const ledger = new Map<string, LedgerEntry>();
  const byCaller = new Map<string, Set<string>>();
  for (const f of findings) {
    const set = byCaller.get(f.activity.caller) ?? new Set<string>();
    set.add(f.observation.city.key);
    byCaller.set(f.activity.caller, set);
  }
  await mapLimit([...byCaller.entries()], 8, async ([caller, cities]) => {
    const rows = await store.readRows('alerts', caller, [...cities]);
    for (const e of rows.values()) {
      const l = ledgerFromEntity(e);
      ledger.set(ledgerKey(l.caller, l.cityKey), l);
    }
  });
  return ledger;
}

/** Decides the alerts against the ledger and today's count (warning when the daily cap bites). */
async function decideRun(run: TickRun): Promise<{
  decision: EpisodeDecision;
  policy: EpisodePolicy;
  day: string;
  ledger: Map<string, LedgerEntry>;
}> {
  const { p, s, stats, findings, tickMs } = run;
  const ledger = await readLedger(p.store, findings);
  const day = new Date(tickMs).toISOString().slice(0, 10);
  const dayRows =
    findings.length > 0 ? await p.store.readPartition('state', dayPartition(day)) : new Map<string, Entity>();
  const policy: EpisodePolicy = {
    cooldownMs: s.UC_ALERT_COOLDOWN,
    rescoreMargin: s.UC_RESCORE_MARGIN,
    dailyCap: s.UC_DAILY_ALERT_CAP,
  };
  const today = new Map([[day, new Set(dayRows.keys())]]);
  const decision = decideAlerts(findings, ledger, today, tickMs, policy, p.defaults);
  stats.alerts = decision.alerts.length;
  stats.suppressedByCooldown = decision.suppressedByCooldown;
  stats.suppressedByCap = decision.suppressedByCap;
  if (decision.suppressedByCap > 0) {
    p.log?.(
      'warn',
      `Daily alert cap UC_DAILY_ALERT_CAP=${s.UC_DAILY_ALERT_CAP} reached: ${decision.suppressedByCap} alert(s) suppressed`,
    );
  }
  return { decision, policy, day, ledger };
}

/**
 * Claims the decided alerts in the ledger, then writes those that hold to the sink with the move and wave alerts;
 * returns the episode alerts written.
 */
async function deliverAlerts(
  run: TickRun,
  ledger: ReadonlyMap<string, LedgerEntry>,
  decision: EpisodeDecision,
  policy: EpisodePolicy,
  eventAlerts: readonly Alert[],
): Promise<Alert[]> {
  const { p, stats } = run;
  // 1. The ledger, as a claim: each (caller, city) episode is decided again against its ledger row as stored at
  //    the moment of writing (updateRows re-reads and re-applies on an ETag conflict). Alone, this gives exactly
  //    the decision above. When another writer got there first — a queue-mode shard raising an alert for the
  //    same caller and city from other operations (shared/runtime/shards.ts) — this run's finding joins that
  //    episode instead of raising a second alert: at most one alert per episode.
  //    Crash-safe before the sink: a re-run finds its own AlertId in the ledger and raises the alert again
  //    (decideAlerts' same-AlertId rule), so an alert claimed but not yet written is not lost.
  const alerts = await claimAlerts(p, run.tickMs, run.findings, ledger, decision, policy, run.rejected);
  stats.alerts = alerts.length;
  const kept = new Set(alerts.map((a) => a.AlertId));
  stats.suppressedByCooldown += decision.alerts.filter((a) => !kept.has(a.AlertId)).length;

  // 2. Alerts: once they are safe, nothing below can lose them (a re-run recomputes the same ids). Move and wave
  //    alerts have ids of their own, recomputed by a re-run of the same run.
  await p.sink.write([...alerts, ...eventAlerts]);
  stats.eventAlerts = eventAlerts.length;
  stats.alerts += eventAlerts.length;
  return alerts;
}

/**
 * Writes the ledger rows of a decision as claims (see runTick, step 1) and returns the alerts that hold: those
 * of `decision`, less any whose episode another writer claimed first, in the decision's order, followed by any
 * a concurrent writer's lower-scoring alert turned into a rescore.
 */
async function claimAlerts(
  p: Pipeline,
  tickMs: number,
  findings: readonly RareFinding[],
  ledger: ReadonlyMap<string, LedgerEntry>,
  decision: EpisodeDecision,
  policy: EpisodePolicy,
  rejected: RejectHandler,
): Promise<Alert[]> {
  const byKey = new Map<string, RareFinding[]>();
  for (const f of findings) {
    const key = ledgerKey(f.activity.caller, f.observation.city.key);
    const list = byKey.get(key);
    if (list) list.push(f);
    else byKey.set(key, [f]);
  }
  // The daily cap was applied above, across all episodes; the re-decision of one episode must not apply it
  // again (it sees no other episode), but an episode the cap suppressed stays suppressed.
  const uncapped: EpisodePolicy = { ...policy, dailyCap: Number.MAX_SAFE_INTEGER };
  const decided = new Set(decision.alerts.map((a) => a.AlertId));
  const byCaller = new Map<string, { cityKey: string; findings: RareFinding[] }[]>();
  for (const [key, fs] of byKey) {
    const first = fs[0]!;
    const caller = first.activity.caller;
    const cityKey = first.observation.city.key;
    const prev = ledger.get(key);
    const alone = decideAlerts(
      fs,
      prev ? new Map([[key, prev]]) : new Map(),
      new Map(),
      tickMs,
      uncapped,
      p.defaults,
    );
    if (alone.alerts.some((a) => !decided.has(a.AlertId))) continue; // over the daily cap
    const list = byCaller.get(caller);
    if (list) list.push({ cityKey, findings: fs });
    else byCaller.set(caller, [{ cityKey, findings: fs }]);
  }
  const outcome = new Map<string, Alert[]>();
  await mapLimit([...byCaller.entries()], 8, async ([caller, episodes]) => {
    const skipped = await updateIsolated(
      p.store,
      'alerts',
      caller,
      (cur) => {
        const out = new Map<string, Entity | null>();
        for (const { cityKey, findings: fs } of episodes) {
          const key = ledgerKey(caller, cityKey);
          const row = cur.get(cityKey);
          const prev = row ? new Map([[key, ledgerFromEntity(row)]]) : new Map<string, LedgerEntry>();
          const d = decideAlerts(fs, prev, new Map(), tickMs, uncapped, p.defaults);
          // Pure in `cur`: a retry after a conflict overwrites the outcome of the attempt that lost.
          outcome.set(key, d.alerts);
          for (const l of d.ledger) {
            const ent = ledgerToEntity(l);
            if (!sameEntity(row, ent)) out.set(cityKey, ent);
          }
        }
        return out;
      },
      rejected,
      episodes.map((e) => e.cityKey),
    );
    // A ledger row the store refused: the episode's alert is raised all the same (an attacker's value must not
    // silence its own alert); without its row, a later run may raise it again.
    for (const { cityKey, findings: fs } of episodes) {
      const key = ledgerKey(caller, cityKey);
      if (!skipped.has(cityKey) && outcome.has(key)) continue;
      const prev = ledger.get(key);
      outcome.set(
        key,
        decideAlerts(fs, prev ? new Map([[key, prev]]) : new Map(), new Map(), tickMs, uncapped, p.defaults)
          .alerts,
      );
    }
  });
  const held = new Set([...outcome.values()].flat().map((a) => a.AlertId));
  const alerts = decision.alerts.filter((a) => held.has(a.AlertId));
  const listed = new Set(alerts.map((a) => a.AlertId));
  for (const list of outcome.values()) for (const a of list) if (!listed.has(a.AlertId)) alerts.push(a);
  return alerts;
}
