import { type Alert, type AlertDefaults, alertIdFor, type RareFinding } from '../alerts/alert.js';
import {
  decideAlerts,
  type EpisodeDecision,
  type EpisodePolicy,
  type LedgerEntry,
  ledgerKey,
} from '../alerts/episodes.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore, Entity, PartitionUpdate } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { City, Geolocator, Network, NetworkLocator } from '../geo/types.js';
import type { LogFn } from '../run/log.js';
import type {
  CallerActivity,
  CityBaseline,
  Observation,
  OperationBaseline,
  ScoringParams,
  TenantBaseline,
} from '../scoring/model.js';
import { emptyOperation, networkKey } from '../scoring/model.js';
import { scoringParams } from '../scoring/params.js';
import { forCaller, type RarityScore, scoreObservation } from '../scoring/score.js';
import {
  alreadyCounted,
  callerContext,
  type CallerHourUpdate,
  countCallerHour,
  countOperationHour,
  countTenantHour,
  type HourUpdate,
  quarantinedAt,
} from '../scoring/update.js';
import { type Arrival, arrivalPolicy, settleArrivals } from './arrivals.js';
import {
  bucketsOnly,
  CALLER_LAYOUT_BUCKETS,
  CALLER_LAYOUT_PROPERTY,
  type CallerHistories,
  readCallerHistories,
  updateCallerHistories,
} from './callers.js';
import { type RejectHandler, updateIsolated } from './isolate.js';
import { Quarantine } from './quarantine.js';
import {
  CHECKPOINT_PARTITION,
  CHECKPOINT_ROW,
  cityToEntity,
  dayPartition,
  ledgerFromEntity,
  ledgerToEntity,
  OPERATION_SUMMARY_ROW,
  operationFromRows,
  operationSummaryEntity,
  sameEntity,
  TENANT_PARTITION,
  TENANT_SUMMARY_ROW,
  tenantCityToEntity,
  tenantFromRows,
  tenantSummaryEntity,
} from './state.js';
import { type EventGroup, MAX_GROUP_LIST } from './types.js';
import { ALERT_INDEX_PARTITION, alertIndexEntity } from './verdicts.js';

// LogFn lives in the leaf module shared/run/log.ts (low floors use it too); re-exported for the code that imports it
// from here.
export type { LogFn };

/** Everything a detection run needs; built once per process and reused across runs. */
export interface Pipeline {
  store: BaselineStore;
  geo: Geolocator;
  /** The network (ASN) of each caller IP; absent: networks unknown, the model uses cities only. */
  networks?: NetworkLocator;
  settings: Settings;
  sink: AlertSink;
  defaults: AlertDefaults;
  log?: LogFn;
  /**
   * Allowlists (settings and the allow table): returns why a rare finding must not alert, or undefined.
   * Suppressed findings are still counted in baselines like any other observation; they only never alert.
   */
  suppress?: (finding: RareFinding) => string | undefined;
  /**
   * Observer (backtests): the rare findings of run `tickMs` — at or above UC_ALERT_THRESHOLD, before allowlists
   * (`suppress`) and the alert decision — called once per run that has observations. Must not keep or modify the
   * array (allowlists filter it in place afterwards); the findings themselves are not modified. Absent: no effect.
   */
  onFindings?: (tickMs: number, findings: readonly RareFinding[]) => void;
}

export interface TickStats {
  tickMs: number;
  windowStartMs: number;
  groups: number;
  events: number;
  internalEvents: number;
  noCityEvents: number;
  notFoundEvents: number;
  invalidIpEvents: number;
  observations: number;
  scored: number;
  alreadyCounted: number;
  rareFindings: number;
  /** Rare findings an allowlist kept from alerting. */
  allowlisted: number;
  alerts: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  operationsWritten: number;
  /** Rows the store refused (size, content): logged and skipped, the run went on (shared/pipeline/isolate.ts). */
  rowsRejected: number;
  /** Findings an infrastructure move explained (shared/pipeline/arrivals.ts): counted, not alerted. */
  absorbedByMove: number;
  /** Move and wave alerts raised (besides `alerts`). */
  eventAlerts: number;
}

const bounded = (into: string[], values: readonly string[]) => {
  for (const v of values) if (v !== '' && into.length < MAX_GROUP_LIST && !into.includes(v)) into.push(v);
};

/** Geolocates event groups and folds them into (operation, city, hour) observations. */
export function buildObservations(
  groups: readonly EventGroup[],
  geo: Geolocator,
  stats: TickStats,
  networks?: NetworkLocator,
): Observation[] {
  const byKey = new Map<string, Observation>();
  const networkOf = networkCache(networks);
  // (observation, caller) → its activity: a hot observation has thousands of callers (no linear search).
  const activities = new Map<string, CallerActivity>();
  for (const g of groups) {
    stats.events += g.count;
    const where = geo.locate(g.callerIp);
    if (where.kind !== 'city') {
      if (where.kind === 'internal') stats.internalEvents += g.count;
      else if (where.kind === 'no-city') stats.noCityEvents += g.count;
      else if (where.kind === 'not-found') stats.notFoundEvents += g.count;
      else stats.invalidIpEvents += g.count;
      continue;
    }
    const city: City = where.city;
    const key = `${g.operationKey}\u0000${city.key}\u0000${g.hourMs}`;
    let obs = byKey.get(key);
    if (!obs) {
      obs = {
        operationKey: g.operationKey,
        operation: g.operation,
        city,
        hourMs: g.hourMs,
        events: 0,
        callers: [],
      };
      byKey.set(key, obs);
    }
    obs.events += g.count;
    const actKey = `${key}\u0000${g.caller}`;
    let act: CallerActivity | undefined = activities.get(actKey);
    if (!act) {
      act = {
        caller: g.caller,
        callerType: g.callerType,
        ips: [],
        events: 0,
        firstMs: g.firstMs,
        lastMs: g.lastMs,
        resourceIds: [],
        correlationIds: [],
        subscriptionId: g.subscriptionId,
        resourceGroup: g.resourceGroup,
      };
      obs.callers.push(act);
      activities.set(actKey, act);
    }
    act.events += g.count;
    act.firstMs = Math.min(act.firstMs, g.firstMs);
    act.lastMs = Math.max(act.lastMs, g.lastMs);
    bounded(act.ips, [g.callerIp]);
    const net = networkOf(g.callerIp);
    if (net !== undefined) {
      act.networks ??= [];
      if (act.networks.length < MAX_NETWORKS && !act.networks.some((n) => n.asn === net.asn))
        act.networks.push(net);
    }
    bounded(act.resourceIds, g.resourceIds);
    bounded(act.correlationIds, g.correlationIds);
  }
  // Deterministic order: the same window always scores and alerts the same way.
  const list = [...byKey.values()];
  for (const o of list) o.callers.sort((a, b) => a.caller.localeCompare(b.caller));
  return list.sort(
    (a, b) =>
      a.hourMs - b.hourMs ||
      a.operationKey.localeCompare(b.operationKey) ||
      a.city.key.localeCompare(b.city.key),
  );
}

/** Distinct networks kept per caller activity (an attacker may rotate addresses across many). */
const MAX_NETWORKS = 8;

/** One lookup per distinct IP of a run (groups repeat IPs across operations and hours). */
function networkCache(networks: NetworkLocator | undefined): (ip: string) => Network | undefined {
  if (networks === undefined) return () => undefined;
  const seen = new Map<string, Network | undefined>();
  return (ip) => {
    if (seen.has(ip)) return seen.get(ip);
    const n = networks.network(ip);
    seen.set(ip, n);
    return n;
  };
}

/**
 * Runs `fn` over items, at most `limit` at a time. When one fails, the others still finish before the error is
 * thrown: a run that fails leaves no write in flight behind it.
 */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return out;
}

/** Rows that differ between the stored partition and the new state. */
function changedRows(
  current: ReadonlyMap<string, Entity>,
  next: Map<string, Entity>,
): Map<string, Entity | null> {
  const out = new Map<string, Entity | null>();
  for (const [k, e] of next) if (!sameEntity(current.get(k), e)) out.set(k, e);
  return out;
}

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
  // once. Correct without it, so stores without batch simply run it as is.
  const run = () => runTickBatched(p, tickMs, groups, options);
  return p.store.batch ? p.store.batch(run) : run();
}

async function runTickBatched(
  p: Pipeline,
  tickMs: number,
  groups: readonly EventGroup[],
  options: { countOnly?: boolean },
): Promise<TickStats> {
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

/** One run between its stages: the baselines as read and as counted so far, and what scoring found. */
interface TickRun {
  p: Pipeline;
  s: Settings;
  params: ScoringParams;
  tickMs: number;
  stats: TickStats;
  /** Bootstrap from history: counted, never alerted on. */
  countOnly: boolean;
  /** How a row the store refuses is logged and counted (shared/pipeline/isolate.ts). */
  rejected: RejectHandler;
  /** The tenant's cities: as stored, then with every hour this run counted. */
  tenant: TenantBaseline;
  /** Each operation's cities: as stored, then with every hour this run counted. */
  ops: Map<string, OperationBaseline>;
  /** Display name of each operation of the window. */
  display: Map<string, string>;
  /** The callers' cities (`histories.cities`, counted as the hours pass) and their old per-caller rows. */
  histories: CallerHistories;
  quarantine: Quarantine;
  /** Quarantines started or extended by this hour's scores, applied before the hour is counted. */
  quarantineNow: Map<string, number>;
  /** Per-caller findings at or above UC_ALERT_THRESHOLD. */
  findings: RareFinding[];
  /** Activities from a city new to their caller, with networks: moves and waves (shared/pipeline/arrivals.ts). */
  arrivals: Arrival[];
  /** Hours to write: per operation, for the tenant, per caller. */
  updates: Map<string, HourUpdate[]>;
  tenantUpdates: { city: City; hourMs: number; quarantined: boolean }[];
  callerUpdates: Map<string, CallerHourUpdate[]>;
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

/** The window's observations (sorted by hour) cut into hours. */
function byHour(observations: readonly Observation[]): Observation[][] {
  const hours: Observation[][] = [];
  let i = 0;
  while (i < observations.length) {
    const hourMs = observations[i]!.hourMs;
    let j = i;
    while (j < observations.length && observations[j]!.hourMs === hourMs) j++;
    hours.push(observations.slice(i, j));
    i = j;
  }
  return hours;
}

/** An observation the hour will count, with the best score of its callers (the operation's own when none). */
interface PendingHour {
  obs: Observation;
  score: number;
}

/** Scores one hour's observations, every one against the baselines as they were before that hour. */
function scoreHour(run: TickRun, hourObs: readonly Observation[]): PendingHour[] {
  const pending: PendingHour[] = [];
  for (const obs of hourObs) {
    const op = run.ops.get(obs.operationKey) ?? emptyOperation(obs.operationKey, obs.operation);
    const row = op.cities.get(obs.city.key);
    if (
      row &&
      alreadyCounted(
        row.recent.map(([h]) => h),
        obs.hourMs,
      )
    ) {
      scoreUncountedCallers(run, op, row, obs);
      continue;
    }
    const base = scoreObservation(op, run.tenant, obs.city, obs.hourMs, run.params);
    run.stats.scored += 1;
    pending.push({ obs, score: scoreCallers(run, op, obs, base, obs.callers) });
  }
  return pending;
}

/**
 * An hour an earlier overlapping run scored and counted: only callers it did not see can still raise an alert;
 * they are scored against today's state (conservative: it includes this hour).
 */
function scoreUncountedCallers(
  run: TickRun,
  op: OperationBaseline,
  row: CityBaseline,
  obs: Observation,
): void {
  run.stats.alreadyCounted += 1;
  const callers =
    row.callers.length >= run.params.maxCallersPerCity
      ? []
      : obs.callers.filter((c) => c.caller !== '' && !row.callers.includes(c.caller));
  if (callers.length === 0) return;
  const base = scoreObservation(op, run.tenant, obs.city, obs.hourMs, run.params);
  scoreCallers(run, op, obs, base, callers);
}

/** Scores callers' parts of an observation, noting quarantines, arrivals and findings; returns the best score. */
function scoreCallers(
  run: TickRun,
  op: OperationBaseline,
  obs: Observation,
  base: RarityScore,
  callers: readonly CallerActivity[],
): number {
  let best = base.score;
  for (const activity of callers) {
    const rarity = scoreFor(run, base, op, obs, activity);
    noteScore(run, obs, activity, rarity);
    noteArrival(run, obs, activity, rarity);
    best = Math.max(best, rarity.score);
    if (rarity.score >= run.s.UC_ALERT_THRESHOLD) run.findings.push({ observation: obs, activity, rarity });
  }
  return best;
}

/** Scores one caller's part of an observation: the operation's rarity plus the caller's own history. */
function scoreFor(
  run: TickRun,
  base: RarityScore,
  op: OperationBaseline,
  obs: Observation,
  activity: CallerActivity,
): RarityScore {
  if (activity.caller === '') return base;
  const context = callerContext(
    activity.caller,
    run.histories.cities.get(activity.caller) ?? new Map(),
    obs.city.key,
    obs.hourMs,
    activity.networks,
    run.params.networkKnownDays,
  );
  return forCaller(base, op, obs.city, context, run.params);
}

/** Starts or extends the quarantine a score calls for (applied before the hour is counted). */
function noteScore(run: TickRun, obs: Observation, activity: CallerActivity, rarity: RarityScore): void {
  const end = run.quarantine.record(activity.caller, obs.city.key, obs.hourMs, rarity);
  if (end !== undefined) run.quarantineNow.set(`${activity.caller}\u0000${obs.city.key}`, end);
}

/** Keeps an activity from a city new to its caller, through known networks: a possible move or wave. */
function noteArrival(run: TickRun, obs: Observation, activity: CallerActivity, rarity: RarityScore): void {
  const net = rarity.network;
  if (!rarity.newCityForCaller || net === undefined || activity.networks === undefined) return;
  const finding = { observation: obs, activity, rarity };
  run.arrivals.push({
    finding,
    asns: activity.networks.map((n) => n.asn),
    known: net.known,
    isNew: net.isNew,
  });
}

/**
 * Only now does the hour become part of the baselines: every observation of the hour was scored against the
 * state before it. Counts the operations' cities, the tenant's and the callers'.
 */
function countHour(run: TickRun, hourObs: readonly Observation[], pending: readonly PendingHour[]): void {
  const hourMs = hourObs[0]!.hourMs;
  countOperationHours(run, pending, hourMs);
  countTenantHours(run, hourObs, hourMs);
  countCallerHours(run, hourObs, hourMs);
  run.quarantineNow.clear();
}

/** Counts the hour's scored observations in their operations' baselines (and notes them to write). */
function countOperationHours(run: TickRun, pending: readonly PendingHour[], hourMs: number): void {
  for (const { obs, score } of pending) {
    const who = obs.callers.map((c) => c.caller);
    const u: HourUpdate = {
      city: obs.city,
      hourMs,
      callers: who,
      score,
      quarantined: run.quarantine.allOn(who, obs.city.key, hourMs),
    };
    const op = run.ops.get(obs.operationKey) ?? emptyOperation(obs.operationKey, obs.operation);
    run.ops.set(obs.operationKey, countOperationHour(op, u, run.params).op);
    const list = run.updates.get(obs.operationKey);
    if (list) list.push(u);
    else run.updates.set(obs.operationKey, [u]);
  }
}

/**
 * Tenant counts are per (city, hour): each once, however many operations saw it (counting is idempotent, but
 * every call copies the tenant's cities). A city-hour seen only from callers in quarantine is remembered, not
 * counted, for the tenant.
 */
function countTenantHours(run: TickRun, hourObs: readonly Observation[], hourMs: number): void {
  const cityHours = new Map<string, { city: City; quarantined: boolean }>();
  for (const obs of hourObs) {
    const all = run.quarantine.allOn(
      obs.callers.map((c) => c.caller),
      obs.city.key,
      hourMs,
    );
    const prev = cityHours.get(obs.city.key);
    cityHours.set(obs.city.key, { city: obs.city, quarantined: (prev?.quarantined ?? true) && all });
  }
  for (const { city, quarantined } of cityHours.values()) {
    run.tenant = countTenantHour(run.tenant, city, hourMs, run.params, quarantined).tenant;
    run.tenantUpdates.push({ city, hourMs, quarantined });
  }
}

/**
 * Caller counts are per (caller, city or network, hour): each once, however many operations saw it. Networks
 * used from a city in quarantine for the caller are not learned: an attacker who stays must not make their own
 * network the caller's.
 */
function countCallerHours(run: TickRun, hourObs: readonly Observation[], hourMs: number): void {
  const callerCities = run.histories.cities;
  const callerSeen = new Set<string>();
  for (const obs of hourObs) {
    for (const c of obs.callers) {
      if (c.caller === '') continue;
      const held =
        run.quarantineNow.has(`${c.caller}\u0000${obs.city.key}`) ||
        quarantinedAt(callerCities.get(c.caller)?.get(obs.city.key), hourMs);
      const keys = [obs.city.key, ...(held ? [] : (c.networks ?? []).map((n) => networkKey(n.asn)))];
      for (const key of keys) {
        const seen = `${c.caller}\u0000${key}`;
        if (callerSeen.has(seen)) continue;
        callerSeen.add(seen);
        const u: CallerHourUpdate = {
          cityKey: key,
          hourMs,
          quarantineUntilMs: run.quarantineNow.get(seen) ?? 0,
        };
        callerCities.set(
          c.caller,
          countCallerHour(callerCities.get(c.caller) ?? new Map(), key, hourMs, u.quarantineUntilMs).cities,
        );
        const list = run.callerUpdates.get(c.caller);
        if (list) list.push(u);
        else run.callerUpdates.set(c.caller, [u]);
      }
    }
  }
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
 * 3. The daily count (idempotent: rows keyed by alert id), and 3a. the alert index (AlertId → caller, city,
 * network): how an analyst's verdict finds its (caller, city).
 */
async function rememberAlerts(run: TickRun, alerts: readonly Alert[], day: string): Promise<void> {
  if (alerts.length === 0) return;
  const { p, tickMs } = run;
  const count = (cur: ReadonlyMap<string, Entity>) => {
    const out = new Map<string, Entity | null>();
    for (const a of alerts) if (!cur.has(a.AlertId)) out.set(a.AlertId, { tickMs, score: a.AnomalyScore });
    return out;
  };
  await updateIsolated(p.store, 'state', dayPartition(day), count, run.rejected);
  const index = indexAlerts(alerts, run.findings);
  const ids = [...new Set(alerts.map((a) => a.AlertId))];
  await updateIsolated(p.store, 'state', ALERT_INDEX_PARTITION, index, run.rejected, ids);
}

/**
 * 3b. Quarantines this run started, before any hour is counted: a crash after the baselines are written would
 * otherwise lose them (a re-run does not score hours already counted).
 */
async function rememberQuarantines(run: TickRun): Promise<void> {
  const marks = new Map<string, CallerHourUpdate[]>();
  for (const [caller, list] of run.callerUpdates) {
    const mine = list.filter((u) => u.quarantineUntilMs > 0).map((u) => ({ ...u, markOnly: true }));
    if (mine.length > 0) marks.set(caller, mine);
  }
  if (marks.size > 0) await updateCallerHistories(run.p.store, marks, new Map(), run.rejected);
}

/** 4. Baselines: re-applies this run's hours to each operation as stored now (a concurrent writer may have moved it). */
async function rememberOperations(run: TickRun): Promise<void> {
  const { p, params, display } = run;
  await mapLimit([...run.updates.entries()], 8, async ([opKey, hours]) => {
    await updateIsolated(
      p.store,
      'baselines',
      opKey,
      (cur) => {
        let op = operationFromRows(opKey, display.get(opKey) ?? opKey, cur);
        // Only the summary and the cities this run counted can change: build rows for those, not for every city
        // of the operation (a busy operation has hundreds).
        const touched = new Set<string>();
        for (const u of hours) {
          const r = countOperationHour(op, u, params);
          op = r.op;
          if (r.changedCity) touched.add(r.changedCity.cityKey);
        }
        const next = new Map<string, Entity>([[OPERATION_SUMMARY_ROW, operationSummaryEntity(op)]]);
        for (const key of touched) next.set(key, cityToEntity(op.cities.get(key)!));
        return changedRows(cur, next);
      },
      run.rejected,
    );
    run.stats.operationsWritten += 1;
  });
}

/** Re-applies this run's city-hours to the tenant's cities as stored now. */
async function rememberTenant(run: TickRun): Promise<void> {
  if (run.tenantUpdates.length === 0) return;
  await updateIsolated(
    run.p.store,
    'tenant',
    TENANT_PARTITION,
    (cur) => {
      let t = tenantFromRows(cur);
      for (const u of run.tenantUpdates)
        t = countTenantHour(t, u.city, u.hourMs, run.params, u.quarantined).tenant;
      const next = new Map<string, Entity>();
      next.set(TENANT_SUMMARY_ROW, {
        ...tenantSummaryEntity(t),
        // A store whose callers all live in buckets says so (no old per-caller partitions to look in).
        ...(bucketsOnly(cur) ? { [CALLER_LAYOUT_PROPERTY]: CALLER_LAYOUT_BUCKETS } : {}),
      });
      for (const c of t.cities.values()) next.set(c.cityKey, tenantCityToEntity(c));
      return changedRows(cur, next);
    },
    run.rejected,
  );
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

/** The index rows of this run's alerts not indexed yet: each alert's id is that of one of its findings. */
function indexAlerts(alerts: readonly Alert[], findings: readonly RareFinding[]): PartitionUpdate {
  const wanted = new Set(alerts.map((a) => a.AlertId));
  const rows = new Map<string, Entity>();
  for (const f of findings) {
    const { caller } = f.activity;
    const o = f.observation;
    const id = alertIdFor(caller, o.city.key, o.hourMs, o.operationKey);
    if (!wanted.has(id) || rows.has(id)) continue;
    const asn = f.activity.networks?.[0]?.asn;
    rows.set(
      id,
      alertIndexEntity({
        caller,
        cityKey: o.city.key,
        network: asn !== undefined ? `AS${asn}` : '',
        hourMs: o.hourMs,
        score: f.rarity.score,
      }),
    );
  }
  return (cur) => new Map([...rows].filter(([id]) => !cur.has(id)));
}

/** The last tick that completed (0 when none). */
export async function readCheckpoint(store: BaselineStore): Promise<number> {
  const rows = await store.readRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW]);
  const v = rows.get(CHECKPOINT_ROW)?.lastTickMs;
  return typeof v === 'number' ? v : 0;
}

/** Records a completed tick; never moves the checkpoint backwards. */
export async function commitCheckpoint(store: BaselineStore, tickMs: number): Promise<void> {
  await store.updateRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW], (cur) => {
    const prev = cur.get(CHECKPOINT_ROW)?.lastTickMs;
    if (typeof prev === 'number' && prev >= tickMs) return new Map();
    return new Map([[CHECKPOINT_ROW, { lastTickMs: tickMs, updatedAt: new Date(tickMs).toISOString() }]]);
  });
}
