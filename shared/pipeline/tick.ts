import { type AlertDefaults, type RareFinding } from '../alerts/alert.js';
import { decideAlerts, type EpisodePolicy, type LedgerEntry, ledgerKey } from '../alerts/episodes.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore, Entity } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { City, Geolocator } from '../geo/types.js';
import type {
  CallerActivity,
  CallerCity,
  Observation,
  OperationBaseline,
  ScoringParams,
  TenantBaseline,
} from '../scoring/model.js';
import { emptyOperation } from '../scoring/model.js';
import { scoringParams } from '../scoring/params.js';
import { forCaller, type RarityScore, scoreObservation } from '../scoring/score.js';
import {
  alreadyCounted,
  callerContext,
  countCallerHour,
  countOperationHour,
  countTenantHour,
  type HourUpdate,
  MAX_CITIES_PER_CALLER,
} from '../scoring/update.js';
import {
  callerCitiesFromRows,
  callerCityToEntity,
  callerPartition,
  CHECKPOINT_PARTITION,
  CHECKPOINT_ROW,
  dayPartition,
  ledgerFromEntity,
  ledgerToEntity,
  operationFromRows,
  operationToRows,
  sameEntity,
  TENANT_PARTITION,
  TENANT_SUMMARY_ROW,
  tenantCityToEntity,
  tenantFromRows,
} from './state.js';
import { type EventGroup, MAX_GROUP_LIST } from './types.js';

export type LogFn = (level: 'info' | 'warn' | 'error', message: string) => void;

/** Everything a detection run needs; built once per process and reused across runs. */
export interface Pipeline {
  store: BaselineStore;
  geo: Geolocator;
  settings: Settings;
  sink: AlertSink;
  defaults: AlertDefaults;
  log?: LogFn;
  /**
   * Allowlists (settings and the allow table): returns why a rare finding must not alert, or undefined.
   * Suppressed findings are still counted in baselines like any other observation; they only never alert.
   */
  suppress?: (finding: RareFinding) => string | undefined;
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
}

const bounded = (into: string[], values: readonly string[]) => {
  for (const v of values) if (v !== '' && into.length < MAX_GROUP_LIST && !into.includes(v)) into.push(v);
};

/** Geolocates event groups and folds them into (operation, city, hour) observations. */
export function buildObservations(
  groups: readonly EventGroup[],
  geo: Geolocator,
  stats: TickStats,
): Observation[] {
  const byKey = new Map<string, Observation>();
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
    let act: CallerActivity | undefined = obs.callers.find((c) => c.caller === g.caller);
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
    }
    act.events += g.count;
    act.firstMs = Math.min(act.firstMs, g.firstMs);
    act.lastMs = Math.max(act.lastMs, g.lastMs);
    bounded(act.ips, [g.callerIp]);
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
  };
}

/**
 * One detection run for the window [tick − lookback, tick): observations are scored hour by hour against
 * the baselines as they were before that hour, alerts are decided and written, then baselines and the
 * ledger are updated. Crash-safe by order and idempotence: alerts reach the sink before anything that
 * would stop a re-run from raising them again, and every update counts an (operation, city, hour) once.
 * The checkpoint is the caller's job (see `commitCheckpoint`), after this resolves.
 */
export async function runTick(
  p: Pipeline,
  tickMs: number,
  groups: readonly EventGroup[],
): Promise<TickStats> {
  const s = p.settings;
  const params: ScoringParams = scoringParams(s);
  const stats = newTickStats(tickMs, tickMs - s.UC_LOOKBACK);
  stats.groups = groups.length;
  const observations = buildObservations(groups, p.geo, stats);
  stats.observations = observations.length;
  if (observations.length === 0) return stats;

  // Load: the tenant's cities (one partition) and each operation's cities (one partition per operation).
  let tenant: TenantBaseline = tenantFromRows(await p.store.readPartition('tenant', TENANT_PARTITION));
  const opKeys = [...new Set(observations.map((o) => o.operationKey))];
  const display = new Map(observations.map((o) => [o.operationKey, o.operation]));
  const loaded = await mapLimit(opKeys, 8, async (k) =>
    operationFromRows(k, display.get(k) ?? k, await p.store.readPartition('baselines', k)),
  );
  const ops = new Map<string, OperationBaseline>(loaded.map((op) => [op.operationKey, op]));
  const callerKeys = [...new Set(observations.flatMap((o) => o.callers.map((c) => c.caller)))].filter(
    (c) => c !== '',
  );
  const callerCities = new Map<string, Map<string, CallerCity>>(
    await mapLimit(
      callerKeys,
      8,
      async (c) =>
        [c, callerCitiesFromRows(await p.store.readPartition('tenant', callerPartition(c)))] as const,
    ),
  );
  const callerUpdates = new Map<string, { cityKey: string; hourMs: number }[]>();
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
          callerContext(activity.caller, callerCities.get(activity.caller) ?? new Map(), obs.city.key),
          params,
        );

  const updates = new Map<string, HourUpdate[]>();
  const tenantUpdates: { city: City; hourMs: number }[] = [];
  const findings: RareFinding[] = [];

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
          if (rarity.score >= s.UC_ALERT_THRESHOLD) findings.push({ observation: obs, activity, rarity });
        }
        continue;
      }
      const base = scoreObservation(op, tenant, obs.city, hourMs, params);
      stats.scored += 1;
      let best = base.score;
      for (const activity of callers) {
        const rarity = scoreFor(base, op, obs, activity);
        best = Math.max(best, rarity.score);
        if (rarity.score >= s.UC_ALERT_THRESHOLD) findings.push({ observation: obs, activity, rarity });
      }
      pending.push({ obs, score: best });
    }
    // Only now does this hour become part of the baseline: every observation of the hour was scored
    // against the state before it.
    for (const { obs, score } of pending) {
      const u: HourUpdate = { city: obs.city, hourMs, callers: obs.callers.map((c) => c.caller), score };
      const op = ops.get(obs.operationKey) ?? emptyOperation(obs.operationKey, obs.operation);
      ops.set(obs.operationKey, countOperationHour(op, u, params).op);
      const list = updates.get(obs.operationKey);
      if (list) list.push(u);
      else updates.set(obs.operationKey, [u]);
    }
    for (const obs of hourObs) {
      tenant = countTenantHour(tenant, obs.city, hourMs, params).tenant;
      tenantUpdates.push({ city: obs.city, hourMs });
      for (const c of obs.callers) {
        if (c.caller === '') continue;
        callerCities.set(
          c.caller,
          countCallerHour(callerCities.get(c.caller) ?? new Map(), obs.city.key, hourMs).cities,
        );
        const list = callerUpdates.get(c.caller) ?? [];
        list.push({ cityKey: obs.city.key, hourMs });
        callerUpdates.set(c.caller, list);
      }
    }
    i = j;
  }
  stats.rareFindings = findings.length;
  if (p.suppress) {
    const kept = findings.filter((f) => p.suppress!(f) === undefined);
    stats.allowlisted = findings.length - kept.length;
    findings.splice(0, findings.length, ...kept);
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

  // 1. Alerts first: once they are safe, nothing below can lose them (a re-run recomputes the same ids).
  await p.sink.write(decision.alerts);

  // 2. The daily count and the ledger (idempotent: rows keyed by alert id and by (caller, city)).
  if (decision.alerts.length > 0) {
    await p.store.updatePartition('state', dayPartition(day), (cur) => {
      const out = new Map<string, Entity | null>();
      for (const a of decision.alerts)
        if (!cur.has(a.AlertId)) out.set(a.AlertId, { tickMs, score: a.AnomalyScore });
      return out;
    });
  }
  const ledgerByCaller = new Map<string, LedgerEntry[]>();
  for (const l of decision.ledger) ledgerByCaller.set(l.caller, [...(ledgerByCaller.get(l.caller) ?? []), l]);
  await mapLimit([...ledgerByCaller.entries()], 8, ([caller, entries]) =>
    p.store.updateRows(
      'alerts',
      caller,
      entries.map((e) => e.cityKey),
      (cur) => {
        const out = new Map<string, Entity | null>();
        for (const e of entries) {
          const ent = ledgerToEntity(e);
          if (!sameEntity(cur.get(e.cityKey), ent)) out.set(e.cityKey, ent);
        }
        return out;
      },
    ),
  );

  // 3. Baselines: re-apply this run's hours to what is stored now (a concurrent writer may have moved it).
  await mapLimit([...updates.entries()], 8, async ([opKey, hours]) => {
    await p.store.updatePartition('baselines', opKey, (cur) => {
      let op = operationFromRows(opKey, display.get(opKey) ?? opKey, cur);
      for (const u of hours) op = countOperationHour(op, u, params).op;
      return changedRows(cur, operationToRows(op));
    });
    stats.operationsWritten += 1;
  });
  if (tenantUpdates.length > 0) {
    await p.store.updatePartition('tenant', TENANT_PARTITION, (cur) => {
      let t = tenantFromRows(cur);
      for (const u of tenantUpdates) t = countTenantHour(t, u.city, u.hourMs, params).tenant;
      const next = new Map<string, Entity>();
      next.set(TENANT_SUMMARY_ROW, { firstSeenMs: t.firstSeenMs });
      for (const c of t.cities.values()) next.set(c.cityKey, tenantCityToEntity(c));
      return changedRows(cur, next);
    });
  }
  await mapLimit([...callerUpdates.entries()], 8, ([caller, list]) =>
    p.store.updatePartition('tenant', callerPartition(caller), (cur) => {
      let cities = callerCitiesFromRows(cur);
      for (const u of list) cities = countCallerHour(cities, u.cityKey, u.hourMs).cities;
      const out = new Map<string, Entity | null>();
      // Keep the most recently used cities: an old city dropped here is simply "new to the caller" again.
      const keep = [...cities.values()].sort(
        (a, b) => b.lastSeenMs - a.lastSeenMs || a.cityKey.localeCompare(b.cityKey),
      );
      keep.forEach((c, i) => {
        if (i >= MAX_CITIES_PER_CALLER) {
          if (cur.has(c.cityKey)) out.set(c.cityKey, null);
          return;
        }
        const e = callerCityToEntity(c);
        if (!sameEntity(cur.get(c.cityKey), e)) out.set(c.cityKey, e);
      });
      return out;
    }),
  );
  return stats;
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
