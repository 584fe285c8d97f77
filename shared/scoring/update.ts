import type { City, Network } from '../geo/types.js';
import { decayed } from './decay.js';
import {
  type CallerCity,
  type CallerContext,
  type CallerNetworkContext,
  type CityBaseline,
  CONFIRMED_UNTIL_MS,
  DAY_MS,
  isNetworkKey,
  networkKey,
  type OperationBaseline,
  RECENT_HOURS_KEPT,
  type ScoringParams,
  type TenantBaseline,
  type TenantCity,
} from './model.js';

/**
 * True when `hourMs` was already counted. The recent list holds the last RECENT_HOURS_KEPT counted hours;
 * an hour older than all of them (when the list is full) is treated as counted: it may have been, and
 * overlapping windows must never count an hour twice.
 */
export function alreadyCounted(recent: readonly number[], hourMs: number): boolean {
  if (recent.includes(hourMs)) return true;
  return recent.length >= RECENT_HOURS_KEPT && hourMs < Math.min(...recent);
}

function pushRecent<T>(list: T[], item: T, hourOf: (t: T) => number): T[] {
  const next = [...list, item].sort((a, b) => hourOf(a) - hourOf(b));
  return next.length > RECENT_HOURS_KEPT ? next.slice(next.length - RECENT_HOURS_KEPT) : next;
}

export interface HourUpdate {
  city: City;
  hourMs: number;
  callers: readonly string[];
  /**
   * Every caller of the hour is in quarantine for the city: the hour is counted, but its days cannot make the
   * city established for the operation — only UC_ESTABLISH_CALLERS distinct callers can.
   */
  quarantined?: boolean;
  /** Score the observation got, remembered for the explanation of later overlapping runs. */
  score: number;
}

/**
 * Counts one (operation, city, hour) in the operation's baseline. Idempotent: applying the same hour again
 * changes nothing. Returns the changed city row (undefined when nothing changed) — the operation summary
 * (`op`) is updated in place on the returned copy.
 */
export function countOperationHour(
  op: OperationBaseline,
  u: HourUpdate,
  params: ScoringParams,
): { op: OperationBaseline; changedCity?: CityBaseline; changedSummary: boolean } {
  const next: OperationBaseline = { ...op, cities: new Map(op.cities) };
  let changedSummary = false;
  if (!alreadyCounted(next.recentHours, u.hourMs)) {
    next.activeHours += 1;
    next.recentHours = pushRecent(next.recentHours, u.hourMs, (h) => h);
    next.firstSeenMs = next.firstSeenMs === 0 ? u.hourMs : Math.min(next.firstSeenMs, u.hourMs);
    next.lastSeenMs = Math.max(next.lastSeenMs, u.hourMs);
    changedSummary = true;
  }

  const prev = next.cities.get(u.city.key);
  if (
    prev &&
    alreadyCounted(
      prev.recent.map(([h]) => h),
      u.hourMs,
    )
  )
    return { op: next, changedSummary };

  const day = Math.floor(u.hourMs / DAY_MS);
  const c: CityBaseline = prev
    ? { ...prev, callers: [...prev.callers], recent: [...prev.recent] }
    : {
        cityKey: u.city.key,
        name: u.city.name,
        region: u.city.region,
        country: u.city.country,
        latitude: u.city.latitude,
        longitude: u.city.longitude,
        n: 0,
        decayedAtMs: u.hourMs,
        rawHours: 0,
        firstSeenMs: u.hourMs,
        lastSeenMs: u.hourMs,
        days: 0,
        lastDay: -1,
        lastWeightedDay: -1,
        callers: [],
        established: false,
        recent: [],
        quarantinedHours: 0,
      };
  if (u.hourMs > c.decayedAtMs) {
    c.n = decayed(c.n, c.decayedAtMs, u.hourMs, params.halfLifeDays);
    c.decayedAtMs = u.hourMs;
  }
  c.rawHours += 1;
  if (day > c.lastDay) {
    c.days += 1;
    c.lastDay = day;
  }
  for (const caller of u.callers) {
    if (caller !== '' && !c.callers.includes(caller) && c.callers.length < params.maxCallersPerCity) {
      c.callers.push(caller);
    }
  }
  if (u.quarantined === true) c.quarantinedHours += 1;
  // A caller in quarantine cannot establish the city by repeating it on several days (the attacker who stays);
  // many distinct callers still can (a team, the corporate VPN moving to another city).
  if (
    !c.established &&
    c.rawHours >= params.establishHours &&
    ((u.quarantined !== true && c.days >= params.establishDays) ||
      c.callers.length >= params.establishCallers)
  ) {
    c.established = true;
  }
  // Until established, a pair gains one fraction of an hour per day at most: an attacker repeating from one
  // city every hour does not make it normal within hours, a team working from a new office does in days.
  let weight = 0;
  if (c.established) weight = 1;
  else if (day !== c.lastWeightedDay) {
    weight = params.unestablishedWeight;
    c.lastWeightedDay = day;
  }
  // A late hour (older than decayedAtMs) is added at its decayed weight.
  c.n += decayed(weight, u.hourMs, c.decayedAtMs, params.halfLifeDays);
  c.firstSeenMs = Math.min(c.firstSeenMs, u.hourMs);
  c.lastSeenMs = Math.max(c.lastSeenMs, u.hourMs);
  c.recent = pushRecent(c.recent, [u.hourMs, u.score] as [number, number], ([h]) => h);
  next.cities.set(c.cityKey, c);
  return { op: next, changedCity: c, changedSummary };
}

/**
 * Records that the tenant had data in `hourMs` (first sighting, days observed). Returns `tenant` itself when
 * nothing changed, else a copy (sharing the cities map). An hour earlier than the last observed day adds no day:
 * days are counted as data arrives, as the replay and the timer both deliver it.
 */
export function observeTenantHour(tenant: TenantBaseline, hourMs: number): TenantBaseline {
  const day = Math.floor(hourMs / DAY_MS);
  const first = tenant.firstSeenMs === 0 || hourMs < tenant.firstSeenMs;
  const newDay = day > tenant.lastObservedDay;
  if (!first && !newDay) return tenant;
  return {
    ...tenant,
    firstSeenMs: first ? hourMs : tenant.firstSeenMs,
    observedDays: tenant.observedDays + (newDay ? 1 : 0),
    lastObservedDay: newDay ? day : tenant.lastObservedDay,
  };
}

/** Counts one (city, hour) in the tenant's city counts. Idempotent. */
export function countTenantHour(
  tenant: TenantBaseline,
  city: City,
  hourMs: number,
  params: ScoringParams,
  /** Every caller of the city in this hour is in quarantine: the hour is remembered, not counted. */
  quarantined = false,
): { tenant: TenantBaseline; changedCity?: TenantCity; changedSummary: boolean } {
  const observed = observeTenantHour(tenant, hourMs);
  const changedSummary = observed !== tenant;
  const next: TenantBaseline = { ...observed, cities: new Map(tenant.cities) };
  const prev = next.cities.get(city.key);
  if (prev && alreadyCounted(prev.recentHours, hourMs)) return { tenant: next, changedSummary };
  const c: TenantCity = prev
    ? { ...prev, recentHours: [...prev.recentHours] }
    : {
        cityKey: city.key,
        name: city.name,
        country: city.country,
        latitude: city.latitude,
        longitude: city.longitude,
        n: 0,
        decayedAtMs: hourMs,
        rawHours: 0,
        firstSeenMs: hourMs,
        lastSeenMs: hourMs,
        days: 0,
        lastDay: -1,
        recentHours: [],
        quarantinedHours: 0,
      };
  if (quarantined) {
    c.quarantinedHours += 1;
    c.recentHours = pushRecent(c.recentHours, hourMs, (h) => h);
    next.cities.set(c.cityKey, c);
    return { tenant: next, changedCity: c, changedSummary };
  }
  if (hourMs > c.decayedAtMs) {
    c.n = decayed(c.n, c.decayedAtMs, hourMs, params.halfLifeDays);
    c.decayedAtMs = hourMs;
  }
  c.n += decayed(1, hourMs, c.decayedAtMs, params.halfLifeDays);
  c.rawHours += 1;
  const day = Math.floor(hourMs / DAY_MS);
  if (day > c.lastDay) {
    c.days += 1;
    c.lastDay = day;
  }
  c.firstSeenMs = Math.min(c.firstSeenMs, hourMs);
  c.lastSeenMs = Math.max(c.lastSeenMs, hourMs);
  c.recentHours = pushRecent(c.recentHours, hourMs, (h) => h);
  next.cities.set(c.cityKey, c);
  return { tenant: next, changedCity: c, changedSummary };
}

/** Most cities remembered per caller: bounds the row count of a caller's partition (least recent dropped). */
export const MAX_CITIES_PER_CALLER = 64;

/** One (caller's) city and hour to count, and the quarantine this run's scores put it in (0 = none). */
export interface CallerHourUpdate {
  cityKey: string;
  hourMs: number;
  quarantineUntilMs: number;
  /** Only the quarantine, not the hour (written before the baselines, so a crash cannot lose it). */
  markOnly?: boolean;
}

/** True when the caller's hours in the city are quarantined at `hourMs` (see CallerCity.quarantinedUntilMs). */
export const quarantinedAt = (c: CallerCity | undefined, hourMs: number): boolean =>
  c !== undefined && c.quarantinedUntilMs > hourMs;

/**
 * Counts one (caller, city, hour). Idempotent. Returns the caller's cities and the changed row. With
 * `quarantineUntilMs` the city is put in quarantine until then (it never shortens one): while it lasts the
 * scorer does not see the caller's hours there (callerContext), so an alerted episode nobody confirmed as benign
 * never makes the city familiar to the caller; once it ends, they count.
 */
export function countCallerHour(
  cities: ReadonlyMap<string, CallerCity>,
  cityKey: string,
  hourMs: number,
  quarantineUntilMs = 0,
  markOnly = false,
): { cities: Map<string, CallerCity>; changed?: CallerCity } {
  const next = new Map(cities);
  const prev = next.get(cityKey);
  const extends_ = quarantineUntilMs > (prev?.quarantinedUntilMs ?? 0);
  const counted = markOnly || (prev !== undefined && alreadyCounted(prev.recentHours, hourMs));
  if (counted && !extends_) return { cities: next };
  const c: CallerCity = prev
    ? { ...prev, recentHours: [...prev.recentHours] }
    : {
        cityKey,
        rawHours: 0,
        days: 0,
        lastDay: -1,
        firstSeenMs: markOnly ? 0 : hourMs,
        lastSeenMs: markOnly ? 0 : hourMs,
        recentHours: [],
        quarantinedUntilMs: 0,
      };
  if (extends_) c.quarantinedUntilMs = quarantineUntilMs;
  if (!counted) {
    const day = Math.floor(hourMs / DAY_MS);
    c.rawHours += 1;
    if (day > c.lastDay) {
      c.days += 1;
      c.lastDay = day;
    }
    c.firstSeenMs = c.firstSeenMs === 0 ? hourMs : Math.min(c.firstSeenMs, hourMs);
    c.lastSeenMs = Math.max(c.lastSeenMs, hourMs);
    c.recentHours = pushRecent(c.recentHours, hourMs, (h) => h);
  }
  next.set(cityKey, c);
  return { cities: next, changed: c };
}

/** The caller's history as the scorer sees it at `hourMs` (cities in quarantine then count as unknown). */
export function callerContext(
  caller: string,
  cities: ReadonlyMap<string, CallerCity>,
  cityKey: string,
  hourMs: number,
  networks?: readonly Network[],
  knownDays = 1,
  familiar?: { days: number; countryOf: (cityKey: string) => string | undefined },
): CallerContext {
  let historyHours = 0;
  let known = 0;
  let days = 0;
  let networkHistory = false;
  const countries = familiar ? new Set<string>() : undefined;
  for (const c of cities.values()) {
    if (isNetworkKey(c.cityKey)) {
      networkHistory ||= c.days >= knownDays;
      continue;
    }
    if (c.rawHours === 0 || (c.cityKey === cityKey && quarantinedAt(c, hourMs))) continue;
    historyHours += c.rawHours;
    known += 1;
    days += c.days;
    if (familiar && c.days >= familiar.days && !quarantinedAt(c, hourMs))
      addCountry(countries!, familiar.countryOf(c.cityKey));
  }
  const here = cities.get(cityKey);
  const quarantined = quarantinedAt(here, hourMs);
  return {
    caller,
    historyHours,
    cityHours: quarantined ? 0 : (here?.rawHours ?? 0),
    cityDays: quarantined ? 0 : (here?.days ?? 0),
    cities: known,
    cityDaysTotal: days,
    quarantined,
    confirmed: (here?.quarantinedUntilMs ?? 0) >= CONFIRMED_UNTIL_MS,
    ...(networks !== undefined && networks.length > 0
      ? { network: networkContext(cities, networks, networkHistory) }
      : {}),
    ...(countries ? { countries: [...countries].sort() } : {}),
  };
}

const addCountry = (countries: Set<string>, country: string | undefined): void => {
  if (country !== undefined && country !== '') countries.add(country);
};

/** The caller's days on each of the activity's networks (the fewest decides) — days before this run's hours count. */
function networkContext(
  cities: ReadonlyMap<string, CallerCity>,
  networks: readonly Network[],
  hasHistory: boolean,
): CallerNetworkContext {
  let minDays = Infinity;
  for (const n of networks) minDays = Math.min(minDays, cities.get(networkKey(n.asn))?.days ?? 0);
  return { networks: [...networks], minDays, hasHistory };
}
