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
  CallerCity,
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
  readCallerHistories,
  updateCallerHistories,
} from './callers.js';
import { type RejectHandler, updateIsolated } from './isolate.js';
import { Quarantine } from './quarantine.js';
import {
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
  const s = p.settings;
  const params: ScoringParams = scoringParams(s);
  const stats = newTickStats(tickMs, tickMs - s.UC_LOOKBACK);
  stats.groups = groups.length;
  const observations = buildObservations(groups, p.geo, stats, p.networks);
  stats.observations = observations.length;
  if (observations.length === 0) return stats;

  // Load: the tenant's cities (one partition) and each operation's cities (one partition per operation).
  const tenantRows = await p.store.readPartition('tenant', TENANT_PARTITION);
  let tenant: TenantBaseline = tenantFromRows(tenantRows);
  const opKeys = [...new Set(observations.map((o) => o.operationKey))];
  const display = new Map(observations.map((o) => [o.operationKey, o.operation]));
  const loaded = await mapLimit(opKeys, 8, async (k) =>
    operationFromRows(k, display.get(k) ?? k, await p.store.readPartition('baselines', k)),
  );
  const ops = new Map<string, OperationBaseline>(loaded.map((op) => [op.operationKey, op]));
  const callerKeys = [...new Set(observations.flatMap((o) => o.callers.map((c) => c.caller)))].filter(
    (c) => c !== '',
  );
  // Callers' cities: one read per bucket of callers (shared/pipeline/callers.ts), not one per caller.
  const histories = await readCallerHistories(p.store, callerKeys, tenantRows);
  const callerCities: Map<string, Map<string, CallerCity>> = histories.cities;
  const callerUpdates = new Map<string, CallerHourUpdate[]>();
  const quarantine = new Quarantine(s.UC_QUARANTINE_DAYS, s.UC_QUARANTINE_SCORE, callerCities);
  /** Scores one caller's part of an observation: the operation's rarity plus the caller's own history. */
  const scoreFor = (
    base: RarityScore,
    op: OperationBaseline,
    obs: Observation,
    activity: CallerActivity,
  ): RarityScore =>
    activity.caller === ''
      ? base
      : forCaller(
          base,
          op,
          obs.city,
          callerContext(
            activity.caller,
            callerCities.get(activity.caller) ?? new Map(),
            obs.city.key,
            obs.hourMs,
            activity.networks,
            params.networkKnownDays,
          ),
          params,
        );

  const updates = new Map<string, HourUpdate[]>();
  const tenantUpdates: { city: City; hourMs: number; quarantined: boolean }[] = [];
  /** Quarantines started or extended by this run's scores, applied before the hour is counted. */
  const quarantineNow = new Map<string, number>();
  const noteScore = (obs: Observation, activity: CallerActivity, rarity: RarityScore): void => {
    const end = quarantine.record(activity.caller, obs.city.key, obs.hourMs, rarity);
    if (end !== undefined) quarantineNow.set(`${activity.caller}\u0000${obs.city.key}`, end);
  };
  const findings: RareFinding[] = [];
  /** Activities from a city new to their caller, with networks: moves and waves (shared/pipeline/arrivals.ts). */
  const arrivals: Arrival[] = [];
  const noteArrival = (obs: Observation, activity: CallerActivity, rarity: RarityScore): void => {
    const net = rarity.network;
    if (!rarity.newCityForCaller || net === undefined || activity.networks === undefined) return;
    const finding = { observation: obs, activity, rarity };
    arrivals.push({ finding, asns: activity.networks.map((n) => n.asn), known: net.known, isNew: net.isNew });
  };

  let i = 0;
  while (i < observations.length) {
    const hourMs = observations[i]!.hourMs;
    let j = i;
    while (j < observations.length && observations[j]!.hourMs === hourMs) j++;
    const hourObs = observations.slice(i, j);
    const pending: { obs: Observation; score: number }[] = [];
    for (const obs of hourObs) {
      const op = ops.get(obs.operationKey) ?? emptyOperation(obs.operationKey, obs.operation);
      const row = op.cities.get(obs.city.key);
      let callers = obs.callers;
      if (
        row &&
        alreadyCounted(
          row.recent.map(([h]) => h),
          hourMs,
        )
      ) {
        // An earlier overlapping run scored and counted this hour. Only callers it did not see can still
        // raise an alert; they are scored against today's state (conservative: it includes this hour).
        stats.alreadyCounted += 1;
        callers =
          row.callers.length >= params.maxCallersPerCity
            ? []
            : obs.callers.filter((c) => c.caller !== '' && !row.callers.includes(c.caller));
        if (callers.length === 0) continue;
        const base = scoreObservation(op, tenant, obs.city, hourMs, params);
        for (const activity of callers) {
          const rarity = scoreFor(base, op, obs, activity);
          noteScore(obs, activity, rarity);
          noteArrival(obs, activity, rarity);
          if (rarity.score >= s.UC_ALERT_THRESHOLD) findings.push({ observation: obs, activity, rarity });
        }
        continue;
      }
      const base = scoreObservation(op, tenant, obs.city, hourMs, params);
      stats.scored += 1;
      let best = base.score;
      for (const activity of callers) {
        const rarity = scoreFor(base, op, obs, activity);
        noteScore(obs, activity, rarity);
        noteArrival(obs, activity, rarity);
        best = Math.max(best, rarity.score);
        if (rarity.score >= s.UC_ALERT_THRESHOLD) findings.push({ observation: obs, activity, rarity });
      }
      pending.push({ obs, score: best });
    }
    // Only now does this hour become part of the baseline: every observation of the hour was scored
    // against the state before it.
    for (const { obs, score } of pending) {
      const who = obs.callers.map((c) => c.caller);
      const u: HourUpdate = {
        city: obs.city,
        hourMs,
        callers: who,
        score,
        quarantined: quarantine.allOn(who, obs.city.key, hourMs),
      };
      const op = ops.get(obs.operationKey) ?? emptyOperation(obs.operationKey, obs.operation);
      ops.set(obs.operationKey, countOperationHour(op, u, params).op);
      const list = updates.get(obs.operationKey);
      if (list) list.push(u);
      else updates.set(obs.operationKey, [u]);
    }
    // Tenant and caller counts are per (city, hour) and per (caller, city, hour): count each once, however many
    // operations saw it (counting is idempotent, but every call copies the caller's or the tenant's cities).
    // A city-hour seen only from callers in quarantine is remembered, not counted, for the tenant.
    const cityHours = new Map<string, { city: City; quarantined: boolean }>();
    for (const obs of hourObs) {
      const all = quarantine.allOn(
        obs.callers.map((c) => c.caller),
        obs.city.key,
        hourMs,
      );
      const prev = cityHours.get(obs.city.key);
      cityHours.set(obs.city.key, { city: obs.city, quarantined: (prev?.quarantined ?? true) && all });
    }
    for (const { city, quarantined } of cityHours.values()) {
      tenant = countTenantHour(tenant, city, hourMs, params, quarantined).tenant;
      tenantUpdates.push({ city, hourMs, quarantined });
    }
    const callerSeen = new Set<string>();
    for (const obs of hourObs) {
      for (const c of obs.callers) {
        if (c.caller === '') continue;
        // Networks used from a city in quarantine for the caller are not learned: an attacker who stays must not
        // make their own network the caller's.
        const held =
          quarantineNow.has(`${c.caller}\u0000${obs.city.key}`) ||
          quarantinedAt(callerCities.get(c.caller)?.get(obs.city.key), hourMs);
        const keys = [obs.city.key, ...(held ? [] : (c.networks ?? []).map((n) => networkKey(n.asn)))];
        for (const key of keys) {
          const seen = `${c.caller}\u0000${key}`;
          if (callerSeen.has(seen)) continue;
          callerSeen.add(seen);
          const u: CallerHourUpdate = {
            cityKey: key,
            hourMs,
            quarantineUntilMs: quarantineNow.get(seen) ?? 0,
          };
          callerCities.set(
            c.caller,
            countCallerHour(callerCities.get(c.caller) ?? new Map(), key, hourMs, u.quarantineUntilMs).cities,
          );
          const list = callerUpdates.get(c.caller);
          if (list) list.push(u);
          else callerUpdates.set(c.caller, [u]);
        }
      }
    }
    quarantineNow.clear();
    i = j;
  }
  stats.rareFindings = findings.length;
  if (options.countOnly === true) findings.length = 0; // history is counted, never alerted on
  p.onFindings?.(tickMs, findings);
  if (p.suppress) {
    const kept = findings.filter((f) => p.suppress!(f) === undefined);
    stats.allowlisted = findings.length - kept.length;
    findings.splice(0, findings.length, ...kept);
  }
  // Moves and waves: several callers arriving in one city together are one event (shared/pipeline/arrivals.ts).
  let eventAlerts: Alert[] = [];
  if (options.countOnly !== true && arrivals.length > 0) {
    const settled = await settleArrivals(p.store, tickMs, arrivals, findings, arrivalPolicy(s), p.defaults);
    findings.splice(0, findings.length, ...settled.findings);
    stats.absorbedByMove = settled.absorbed;
    eventAlerts = settled.alerts;
  }

  // Decide alerts against the ledger and today's count.
  const ledger = new Map<string, LedgerEntry>();
  const byCaller = new Map<string, Set<string>>();
  for (const f of findings) {
    const set = byCaller.get(f.activity.caller) ?? new Set<string>();
    set.add(f.observation.city.key);
    byCaller.set(f.activity.caller, set);
  }
  await mapLimit([...byCaller.entries()], 8, async ([caller, cities]) => {
    const rows = await p.store.readRows('alerts', caller, [...cities]);
    for (const e of rows.values()) {
      const l = ledgerFromEntity(e);
      ledger.set(ledgerKey(l.caller, l.cityKey), l);
    }
  });
  const day = new Date(tickMs).toISOString().slice(0, 10);
  const dayRows =
    findings.length > 0 ? await p.store.readPartition('state', dayPartition(day)) : new Map<string, Entity>();
  const policy: EpisodePolicy = {
    cooldownMs: s.UC_ALERT_COOLDOWN,
    rescoreMargin: s.UC_RESCORE_MARGIN,
    dailyCap: s.UC_DAILY_ALERT_CAP,
  };
  const decision = decideAlerts(
    findings,
    ledger,
    new Map([[day, new Set(dayRows.keys())]]),
    tickMs,
    policy,
    p.defaults,
  );
  stats.alerts = decision.alerts.length;
  stats.suppressedByCooldown = decision.suppressedByCooldown;
  stats.suppressedByCap = decision.suppressedByCap;
  if (decision.suppressedByCap > 0) {
    p.log?.(
      'warn',
      `Daily alert cap UC_DAILY_ALERT_CAP=${s.UC_DAILY_ALERT_CAP} reached: ${decision.suppressedByCap} alert(s) suppressed`,
    );
  }

  // 1. The ledger, as a claim: each (caller, city) episode is decided again against its ledger row as stored at
  //    the moment of writing (updateRows re-reads and re-applies on an ETag conflict). Alone, this gives exactly
  //    the decision above. When another writer got there first — a queue-mode shard raising an alert for the
  //    same caller and city from other operations (shared/runtime/shards.ts) — this run's finding joins that
  //    episode instead of raising a second alert: at most one alert per episode.
  //    Crash-safe before the sink: a re-run finds its own AlertId in the ledger and raises the alert again
  //    (decideAlerts' same-AlertId rule), so an alert claimed but not yet written is not lost.
  const rejected: RejectHandler = { log: p.log, count: () => (stats.rowsRejected += 1) };
  const alerts = await claimAlerts(p, tickMs, findings, ledger, decision, policy, rejected);
  stats.alerts = alerts.length;
  const kept = new Set(alerts.map((a) => a.AlertId));
  stats.suppressedByCooldown += decision.alerts.filter((a) => !kept.has(a.AlertId)).length;

  // 2. Alerts: once they are safe, nothing below can lose them (a re-run recomputes the same ids). Move and wave
  //    alerts have ids of their own, recomputed by a re-run of the same run.
  await p.sink.write([...alerts, ...eventAlerts]);
  stats.eventAlerts = eventAlerts.length;
  stats.alerts += eventAlerts.length;

  // 3. The daily count (idempotent: rows keyed by alert id).
  if (alerts.length > 0) {
    const count = (cur: ReadonlyMap<string, Entity>) => {
      const out = new Map<string, Entity | null>();
      for (const a of alerts) if (!cur.has(a.AlertId)) out.set(a.AlertId, { tickMs, score: a.AnomalyScore });
      return out;
    };
    await updateIsolated(p.store, 'state', dayPartition(day), count, rejected);
    // 3a. The alert index (AlertId → caller, city, network): how an analyst's verdict finds its (caller, city).
    const index = indexAlerts(alerts, findings);
    await updateIsolated(p.store, 'state', ALERT_INDEX_PARTITION, index, rejected, [...kept]);
  }

  // 3b. Quarantines this run started, before any hour is counted: a crash after the baselines are written would
  //     otherwise lose them (a re-run does not score hours already counted).
  const marks = new Map<string, CallerHourUpdate[]>();
  for (const [caller, list] of callerUpdates) {
    const mine = list.filter((u) => u.quarantineUntilMs > 0).map((u) => ({ ...u, markOnly: true }));
    if (mine.length > 0) marks.set(caller, mine);
  }
  if (marks.size > 0) await updateCallerHistories(p.store, marks, new Map(), rejected);

  // 4. Baselines: re-apply this run's hours to what is stored now (a concurrent writer may have moved it).
  await mapLimit([...updates.entries()], 8, async ([opKey, hours]) => {
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
      rejected,
    );
    stats.operationsWritten += 1;
  });
  if (tenantUpdates.length > 0) {
    await updateIsolated(
      p.store,
      'tenant',
      TENANT_PARTITION,
      (cur) => {
        let t = tenantFromRows(cur);
        for (const u of tenantUpdates) t = countTenantHour(t, u.city, u.hourMs, params, u.quarantined).tenant;
        const next = new Map<string, Entity>();
        next.set(TENANT_SUMMARY_ROW, {
          ...tenantSummaryEntity(t),
          // A store whose callers all live in buckets says so (no old per-caller partitions to look in).
          ...(bucketsOnly(cur) ? { [CALLER_LAYOUT_PROPERTY]: CALLER_LAYOUT_BUCKETS } : {}),
        });
        for (const c of t.cities.values()) next.set(c.cityKey, tenantCityToEntity(c));
        return changedRows(cur, next);
      },
      rejected,
    );
  }
  await updateCallerHistories(p.store, callerUpdates, histories.legacy, rejected);
  return stats;
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
