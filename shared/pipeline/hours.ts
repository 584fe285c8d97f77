/**
 * Scoring and counting one hour of a run (shared/pipeline/tick.ts): every observation of the hour is scored
 * against the baselines as they were before it, then the hour is counted in the baselines held in memory.
 */
import type { City } from '../geo/types.js';
import {
  type CallerActivity,
  type CityBaseline,
  emptyOperation,
  networkKey,
  type Observation,
  type OperationBaseline,
} from '../scoring/model.js';
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
import type { TickRun } from './tickRun.js';

/** An observation the hour will count, with the best score of its callers (the operation's own when none). */
export interface PendingHour {
  obs: Observation;
  score: number;
}

/** Scores one hour's observations, every one against the baselines as they were before that hour. */
export function scoreHour(run: TickRun, hourObs: readonly Observation[]): PendingHour[] {
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
    { days: run.params.establishDays, countryOf: (key) => run.tenant.cities.get(key)?.country },
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
export function countHour(
  run: TickRun,
  hourObs: readonly Observation[],
  pending: readonly PendingHour[],
): void {
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
