import { haversineKm } from '../geo/distance.js';
import type { City } from '../geo/types.js';
import { decayed } from './decay.js';
import {
  type CallerContext,
  type CityBaseline,
  type OperationBaseline,
  type ScoringParams,
  type TenantBaseline,
  tenantCityEstablished,
} from './model.js';

/** P at or above this is not rare at all (score 0); Elastic's `rare` scores p > 0.035 as 0. */
const P_NOT_RARE = 0.05;
/** P at or below this is as rare as it gets (score 100). */
const P_FLOOR = 1e-4;

/** 0–100 from a tail probability: deterministic, comparable across tenants, never rewritten. */
export function rarityFromProbability(p: number): number {
  if (!(p > 0)) return 100;
  const x = Math.log(P_NOT_RARE / p) / Math.log(P_NOT_RARE / P_FLOOR);
  return 100 * Math.min(1, Math.max(0, x));
}

export interface KnownCity {
  cityKey: string;
  name: string;
  country: string;
  latitude: number;
  longitude: number;
  hours: number;
  rawHours: number;
}

/** The score of one observation and every factor behind it: the explanation an analyst reads. */
export interface RarityScore {
  /** Final 0–100 score (after learning factor and egress cap), rounded to 0.1. */
  score: number;
  /** Score from the probability alone. */
  rarity: number;
  probability: number;
  /** The city (or a city within UC_MERGE_KM of it) is already known for the operation. */
  seenForOperation: boolean;
  /** Known and established (UC_ESTABLISH_*): scored by its share; otherwise it is still scored as new. */
  established: boolean;
  mergedInto?: { cityKey: string; name: string; distanceKm: number };
  /** Hours this (operation, city) was seen before, decayed and raw. */
  hoursSeen: number;
  rawHoursSeen: number;
  lastSeenMs?: number;
  /** Good–Turing chance that the operation shows up from a new city. */
  missingMass: number;
  /** How common the city is in the tenant (tail share); small when never seen. */
  tenantPrior: number;
  /** The city's share of all tenant hours. */
  tenantShare: number;
  seenInTenant: boolean;
  nearest?: { cityKey: string; name: string; country: string; distanceKm: number };
  distanceFactor: number;
  /** No established city of the operation is in the country (or, while none is established, no city at all). */
  newCountryForOperation: boolean;
  /** What newCountryForOperation was decided against: the operation's established cities, or all it has seen. */
  operationCountryBasis: 'established' | 'seen';
  /** The tenant has established cities, and none of them is in the country (the city itself included). */
  newCountryForTenant: boolean;
  /** Some tenant city (established or not) is in the country. */
  countrySeenInTenant: boolean;
  /** Hours the tenant saw the city only from callers in quarantine (not counted in its share). */
  tenantQuarantinedHours: number;
  /** Hours this (operation, city) was seen only from callers in quarantine (they cannot establish it). */
  quarantinedHours: number;
  /** The nearest city is the nearest established one (else the nearest of all the operation has seen). */
  nearestBasis: 'established' | 'seen';
  /** Cities of the operation in all (knownCities holds the top UC_TOP_CITIES). */
  operationCities: number;
  /** The caller was never seen in this city (for any operation) although they have history. */
  newCityForCaller: boolean;
  /** The caller has worked from this city on at least UC_ESTABLISH_DAYS days. */
  familiarToCaller: boolean;
  /** Hours the caller was seen in this city before (undefined when scored without a caller). */
  callerCityHours?: number;
  /** The caller's history: hours and cities outside quarantine (undefined when scored without a caller). */
  callerHistoryHours?: number;
  callerHistoryDays?: number;
  callerCities?: number;
  /** P was multiplied by this: the operation never performed from a city common in the tenant (1 = not). */
  absence: number;
  /** P was divided by this because the city is new to a caller with history (1 = not). */
  callerBoost: number;
  /** The caller's earlier activity from this city is in quarantine (an alert no analyst confirmed as benign). */
  quarantinedForCaller: boolean;
  /**
   * The networks (autonomous systems) of the caller's activity and their days in the caller's history; absent
   * when not known (no ASN data, or scored without a caller).
   */
  network?: { label: string; days: number; known: boolean; isNew: boolean };
  /** P was multiplied by this for the network: < 1 a new city through a network the caller never used (1 = not). */
  networkFactor: number;
  /** The city is not familiar to the caller and came through a network of theirs: score capped, no caller novelty. */
  throughKnownNetwork: boolean;
  /** The score was lowered to UC_KNOWN_NETWORK_SCORE_CAP for that. */
  networkCapped: boolean;
  /** Countries of the caller's familiar cities (CallerContext.countries; for `city+network` allow rules). */
  callerCountries?: string[];
  /** The caller's quarantine in this city is an analyst's TruePositive verdict (CallerContext.confirmed). */
  confirmedForCaller?: boolean;
  learningFactor: number;
  operationActiveHours: number;
  tenantDays: number;
  egress?: string;
  capped: boolean;
  knownCities: KnownCity[];
  operationHours: number;
  sentence: string;
}

function placeName(name: string, region: string, country: string): string {
  const parts = [name, region, country].filter((p) => p !== '');
  return parts.length > 0 ? parts.join(', ') : 'an unknown place';
}

function fmtKm(km: number): string {
  return `${Math.round(km).toLocaleString('en-US')} km`;
}

function fmtHours(h: number): string {
  return h >= 10 ? String(Math.round(h)) : String(Math.round(h * 10) / 10);
}

/**
 * Scores one (operation, city, hour) observation against the baselines as they were before that hour.
 * Pure: no I/O, no clock; the same inputs always give the same score and explanation.
 */
export function scoreObservation(
  op: OperationBaseline,
  tenant: TenantBaseline,
  city: City,
  hourMs: number,
  params: ScoringParams,
  caller?: CallerContext,
): RarityScore {
  const base = baseRarity(op, tenant, city, hourMs, params);
  return caller === undefined ? base : forCaller(base, op, city, caller, params);
}

/** The part of the score that depends on the caller: their own history with the city. */
export function forCaller(
  base: RarityScore,
  op: OperationBaseline,
  city: City,
  caller: CallerContext,
  params: ScoringParams,
): RarityScore {
  const newCityForCaller = caller.cityHours === 0 && caller.historyHours >= params.callerLearningHours;
  const familiarToCaller = caller.cityDays >= params.establishDays;
  // A caller with a long, stable history rarely turns up in a city new to them: the odds against it are their
  // (city, day)s per city first seen, (days + 2) / (cities + 1). A roaming identity (a new region every few days)
  // has low odds, a person working from one or two places for weeks high ones. P is divided by the odds raised to
  // UC_CALLER_NOVELTY_WEIGHT, at least UC_NEW_CITY_FOR_CALLER_BOOST — but never by more than the odds themselves.
  // A common tenant city cannot dilute this: it is the caller's own history, not the tenant's.
  const odds = (caller.cityDaysTotal + 2) / (caller.cities + 1);
  const network = networkOf(caller, params);
  // Through a network the caller already uses (their VPN provider, carrier, Microsoft), a city not yet familiar
  // to them says the network moved, not the person: their own novelty does not apply, and the score is capped
  // (finish). Through a network they never used, a new city is more surprising.
  const throughKnown = !familiarToCaller && network?.known === true;
  const networkFactor = newCityForCaller && network?.isNew === true ? 1 / params.newNetworkBoost : 1;
  const callerBoost =
    newCityForCaller && !throughKnown
      ? Math.max(
          1,
          Math.min(odds, Math.max(params.callerNewCityBoost, Math.pow(odds, params.callerNoveltyWeight))),
        )
      : 1;
  const absence = absenceFactor(
    base,
    newCityForCaller && !throughKnown && odds >= params.callerNewCityBoost,
    params,
  );
  const r: RarityScore = {
    ...base,
    absence,
    newCityForCaller,
    familiarToCaller,
    callerCityHours: caller.cityHours,
    callerHistoryHours: caller.historyHours,
    callerHistoryDays: caller.cityDaysTotal,
    callerCities: caller.cities,
    callerBoost,
    quarantinedForCaller: caller.quarantined,
    ...(network !== undefined ? { network } : {}),
    networkFactor,
    throughKnownNetwork: throughKnown,
    ...(caller.countries !== undefined ? { callerCountries: caller.countries } : {}),
    ...(caller.confirmed ? { confirmedForCaller: true } : {}),
    probability: Math.min(1, (base.probability / callerBoost) * absence * networkFactor),
  };
  finish(r, city, params);
  r.sentence = explain(op, city, r);
  return r;
}

/** The networks of the caller's activity, as the explanation states them. */
function networkOf(caller: CallerContext, params: ScoringParams): RarityScore['network'] {
  const n = caller.network;
  if (n === undefined) return undefined;
  const names = n.networks.map((x) => (x.org !== '' ? `AS${x.asn} (${x.org})` : `AS${x.asn}`));
  return {
    label:
      names.length <= 3 ? names.join(', ') : `${names.slice(0, 2).join(', ')} …and ${names.length - 2} more`,
    days: n.minDays,
    known: n.minDays >= params.networkKnownDays,
    isNew: n.minDays === 0 && n.hasHistory,
  };
}

/**
 * Evidence of absence. A city with a share s of the tenant's hours that an operation with N hours was never
 * performed from: were the operation spread like the tenant's activity, that would happen with chance (1 − s)^N.
 * For a stable caller who never worked from the city either (their colleagues do, they do not), it is the
 * operation's own history saying "not from here" — a common tenant city then makes the observation rarer, not
 * more ordinary. Weighted by UC_ABSENCE_WEIGHT; 1 (no effect) otherwise.
 */
function absenceFactor(base: RarityScore, stableCallerNewCity: boolean, params: ScoringParams): number {
  if (!stableCallerNewCity || base.seenForOperation || base.tenantShare <= 0 || params.absenceWeight <= 0)
    return 1;
  const unseen = Math.exp(base.operationHours * Math.log1p(-Math.min(base.tenantShare, 0.999)));
  return Math.max(P_FLOOR, Math.pow(unseen, params.absenceWeight));
}

function finish(r: RarityScore, city: City, params: ScoringParams): void {
  r.rarity = Math.round(rarityFromProbability(r.probability) * 10) / 10;
  let score = rarityFromProbability(r.probability) * r.learningFactor;
  r.capped = false;
  // Places that are normal for reasons the (operation, city) counts cannot see: a known egress range, or a
  // city the caller has worked from on several days (a commute, a new hire's home, a long trip).
  if (city.egress !== undefined && score > params.egressScoreCap) {
    score = params.egressScoreCap;
    r.capped = true;
  }
  if (r.familiarToCaller && score > params.familiarScoreCap) {
    score = params.familiarScoreCap;
    r.capped = true;
  }
  r.networkCapped = false;
  if (r.throughKnownNetwork && score > params.knownNetworkScoreCap) {
    score = params.knownNetworkScoreCap;
    r.capped = true;
    r.networkCapped = true;
  }
  r.score = Math.round(score * 10) / 10;
}

/** Decays a count to the hour scored. */
type LiveHours = (c: { n: number; decayedAtMs: number }) => number;

/** A city of the operation with its hours decayed to the hour scored. */
interface LiveCity {
  c: CityBaseline;
  n: number;
}

/** The operation side: each known city's decayed hours, N_a and the Good–Turing missing mass. */
interface OperationHours {
  opCities: LiveCity[];
  nA: number;
  missingMass: number;
}

/** The tenant side: T_c per city, T and S1_T. */
interface TenantHours {
  byCity: Map<string, number>;
  total: number;
  singletons: number;
}

/** Where the city stands among the operation's cities: its nearest reference and the city it is scored as. */
interface Placement {
  /** The operation's established cities other than this one. */
  established: LiveCity[];
  nearest: RarityScore['nearest'];
  own: CityBaseline | undefined;
  /** The established city the observation is scored as (its own, or a known one within UC_MERGE_KM). */
  subject: CityBaseline | undefined;
  mergedInto: RarityScore['mergedInto'];
}

/** The probability of the observation and the distance factor behind it. */
interface Odds {
  probability: number;
  distanceFactor: number;
}

/**
 * Per-hour snapshots (issue 16). Every observation of an hour is scored against the baselines as they were before
 * that hour, and a baseline object is never changed once built (the updates in update.ts return copies, the store
 * builds new ones): so the decayed counts of an operation, and of the tenant, are the same for every observation
 * of the hour and are computed once per (baseline object, hour) instead of once per observation. The values are
 * exactly those the per-observation computation gives (same arithmetic, same order).
 */
interface Snapshot<T> {
  hourMs: number;
  halfLifeDays: number;
  hours: T;
}

interface OperationSnapshot extends Snapshot<OperationHours> {
  knownCities?: KnownCity[];
}

interface TenantSnapshot extends Snapshot<TenantHours> {
  /** tenantPriorOf by city key. */
  priors: Map<string, number>;
  /** The tenant side of countryNovelty by country. */
  countries: Map<string, { establishedInCountry: boolean; countrySeenInTenant: boolean }>;
  /** Some tenant city is established (the basis of "new country for the tenant"). */
  tenantEstablished: boolean;
}

const operationSnapshots = new WeakMap<OperationBaseline, OperationSnapshot>();
const tenantSnapshots = new WeakMap<TenantBaseline, TenantSnapshot>();

const liveAt =
  (hourMs: number, params: ScoringParams): LiveHours =>
  (c) =>
    decayed(c.n, c.decayedAtMs, hourMs, params.halfLifeDays);

const sameHour = (s: Snapshot<unknown> | undefined, hourMs: number, params: ScoringParams): boolean =>
  s !== undefined && s.hourMs === hourMs && s.halfLifeDays === params.halfLifeDays;

/** The operation's decayed counts at the hour scored, once per (operation baseline, hour). */
function operationSnapshot(op: OperationBaseline, hourMs: number, params: ScoringParams): OperationSnapshot {
  const had = operationSnapshots.get(op);
  if (had !== undefined && sameHour(had, hourMs, params)) return had;
  const snap: OperationSnapshot = {
    hourMs,
    halfLifeDays: params.halfLifeDays,
    hours: operationHours(op, liveAt(hourMs, params)),
  };
  operationSnapshots.set(op, snap);
  return snap;
}

/** The tenant's decayed counts and country facts at the hour scored, once per (tenant baseline, hour). */
function tenantSnapshot(tenant: TenantBaseline, hourMs: number, params: ScoringParams): TenantSnapshot {
  const had = tenantSnapshots.get(tenant);
  if (had !== undefined && sameHour(had, hourMs, params)) return had;
  const countries: TenantSnapshot['countries'] = new Map();
  let tenantEstablished = false;
  for (const c of tenant.cities.values()) {
    const est = tenantCityEstablished(c, params);
    tenantEstablished ||= est;
    const k = countries.get(c.country) ?? { establishedInCountry: false, countrySeenInTenant: false };
    k.countrySeenInTenant ||= c.rawHours > 0 || c.quarantinedHours > 0;
    k.establishedInCountry ||= est;
    countries.set(c.country, k);
  }
  const snap: TenantSnapshot = {
    hourMs,
    halfLifeDays: params.halfLifeDays,
    hours: tenantHours(tenant, liveAt(hourMs, params)),
    priors: new Map(),
    countries,
    tenantEstablished,
  };
  tenantSnapshots.set(tenant, snap);
  return snap;
}

/** tenantPriorOf, once per (tenant snapshot, city). */
function tenantPriorCached(t: TenantSnapshot, cityKey: string): number {
  let p = t.priors.get(cityKey);
  if (p === undefined) {
    p = tenantPriorOf(t.hours, cityKey);
    t.priors.set(cityKey, p);
  }
  return p;
}

/** The caller factors of a score made without a caller: none apply. */
const NO_CALLER = {
  callerBoost: 1,
  networkFactor: 1,
  throughKnownNetwork: false,
  networkCapped: false,
  absence: 1,
  quarantinedForCaller: false,
  newCityForCaller: false,
  familiarToCaller: false,
} as const satisfies Partial<RarityScore>;

/** Scores an observation from the operation's and the tenant's baselines alone (no caller). */
function baseRarity(
  op: OperationBaseline,
  tenant: TenantBaseline,
  city: City,
  hourMs: number,
  params: ScoringParams,
): RarityScore {
  const opHour = operationSnapshot(op, hourMs, params);
  const ops = opHour.hours;
  const tenantHour = tenantSnapshot(tenant, hourMs, params);
  const th = tenantHour.hours;
  const place = placeCity(op, ops.opCities, city, params);
  const countries = countryNovelty(ops.opCities, tenantHour, city);
  const tenantPrior = tenantPriorCached(tenantHour, city.key);
  const priorTerm = ops.missingMass * Math.pow(tenantPrior, params.priorWeight);
  const odds =
    place.subject !== undefined
      ? seenCityOdds(place.subject, ops, th, priorTerm, params)
      : newCityOdds(priorTerm, place.nearest, countries, params);
  const seenAs = place.subject ?? place.own;
  const result: RarityScore = {
    score: 0,
    rarity: 0,
    probability: odds.probability,
    seenForOperation: seenAs !== undefined,
    hoursSeen: seenAs !== undefined ? decayedHoursOf(ops.opCities, seenAs.cityKey) : 0,
    rawHoursSeen: seenAs?.rawHours ?? 0,
    established: place.subject !== undefined,
    missingMass: ops.missingMass,
    tenantPrior,
    tenantShare: tenantShareOf(th, city.key),
    seenInTenant: (th.byCity.get(city.key) ?? 0) > 0,
    distanceFactor: odds.distanceFactor,
    ...countries,
    quarantinedHours: place.own?.quarantinedHours ?? 0,
    tenantQuarantinedHours: tenant.cities.get(city.key)?.quarantinedHours ?? 0,
    nearestBasis: place.established.length > 0 ? 'established' : 'seen',
    operationCities: ops.opCities.length,
    ...NO_CALLER,
    learningFactor: learningFactorOf(op, tenant, params),
    operationActiveHours: op.activeHours,
    tenantDays: tenant.observedDays,
    capped: false,
    knownCities: (opHour.knownCities ??= knownCitiesOf(ops.opCities, params)).slice(),
    operationHours: ops.nA,
    sentence: '',
  };
  if (place.mergedInto) result.mergedInto = place.mergedInto;
  if (place.nearest) result.nearest = place.nearest;
  if (seenAs) result.lastSeenMs = seenAs.lastSeenMs;
  if (city.egress !== undefined) result.egress = city.egress;
  finish(result, city, params);
  result.sentence = explain(op, city, result);
  return result;
}

/** Operation side: N_a, S1_a and each known city's decayed hours. */
function operationHours(op: OperationBaseline, live: LiveHours): OperationHours {
  const opCities: LiveCity[] = [];
  let nA = 0;
  let s1A = 0;
  for (const c of op.cities.values()) {
    const n = live(c);
    opCities.push({ c, n });
    nA += n;
    if (c.rawHours === 1) s1A += 1;
  }
  return { opCities, nA, missingMass: (s1A + 1) / (nA + 1) };
}

/** Tenant side: T_c, T, S1_T. */
function tenantHours(tenant: TenantBaseline, live: LiveHours): TenantHours {
  const byCity = new Map<string, number>();
  let total = 0;
  let singletons = 0;
  for (const tc of tenant.cities.values()) {
    const n = live(tc);
    byCity.set(tc.cityKey, n);
    total += n;
    if (tc.rawHours === 1) singletons += 1;
  }
  return { byCity, total, singletons };
}

/** How common the city is in the tenant: the share of this city and every rarer one; small when never seen. */
function tenantPriorOf(th: TenantHours, cityKey: string): number {
  const tc = th.byCity.get(cityKey) ?? 0;
  if (tc <= 0) return (th.singletons + 1) / (th.total + 1);
  let tail = 0;
  for (const n of th.byCity.values()) if (n <= tc) tail += n;
  return Math.min(1, (tail + th.singletons + 1) / (th.total + 1));
}

/** The city's share of all tenant hours (0 while the tenant has none). */
function tenantShareOf(th: TenantHours, cityKey: string): number {
  return th.total > 0 ? (th.byCity.get(cityKey) ?? 0) / th.total : 0;
}

/** The decayed hours of one of the operation's cities (0 when it has none). */
function decayedHoursOf(opCities: readonly LiveCity[], cityKey: string): number {
  return opCities.find(({ c }) => c.cityKey === cityKey)?.n ?? 0;
}

/** Finds the nearest reference city and the established city the observation is scored as, merging suburbs. */
function placeCity(
  op: OperationBaseline,
  opCities: readonly LiveCity[],
  city: City,
  params: ScoringParams,
): Placement {
  // Reference cities: the operation's established cities. An unestablished city (a one-off, a traveller,
  // an attacker's first days) does not make its country or neighbourhood "known". Until something is
  // established, every city the operation has seen is a reference.
  const others = opCities.filter(({ c }) => c.cityKey !== city.key);
  const established = others.filter(({ c }) => c.established);
  const nearest = nearestReference(city, established.length > 0 ? established : others);
  const own = op.cities.get(city.key);
  let subject = own?.established ? own : undefined;
  let mergedInto: RarityScore['mergedInto'];
  if (subject === undefined && nearest !== undefined && nearest.distanceKm <= params.mergeKm) {
    // GeoIP places neighbouring suburbs in different "cities": treat them as the known one.
    subject = op.cities.get(nearest.cityKey);
    mergedInto = { cityKey: nearest.cityKey, name: nearest.name, distanceKm: nearest.distanceKm };
  }
  return { established, nearest, own, subject, mergedInto };
}

/** Geography: the nearest reference city (only places with coordinates, not egress keys). */
function nearestReference(city: City, reference: readonly LiveCity[]): RarityScore['nearest'] {
  const hasCoords = city.egress === undefined && !(city.latitude === 0 && city.longitude === 0);
  let nearest: RarityScore['nearest'];
  if (!hasCoords) return nearest;
  for (const { c } of reference) {
    if (c.cityKey.startsWith('e:') || (c.latitude === 0 && c.longitude === 0)) continue;
    const d = haversineKm(city.latitude, city.longitude, c.latitude, c.longitude);
    if (nearest === undefined || d < nearest.distanceKm) {
      nearest = {
        cityKey: c.cityKey,
        name: placeName(c.name, c.region, c.country),
        country: c.country,
        distanceKm: d,
      };
    }
  }
  return nearest;
}

/** Seen city: smoothed tail probability — this city or any rarer one, plus the chance of a new city. */
function seenCityOdds(
  subject: CityBaseline,
  ops: OperationHours,
  th: TenantHours,
  priorTerm: number,
  params: ScoringParams,
): Odds {
  const alpha = params.smoothingAlpha;
  const pHat = (c: CityBaseline, n: number) => (n + alpha * tenantShareOf(th, c.cityKey)) / (ops.nA + alpha);
  const pSubject = pHat(subject, decayedHoursOf(ops.opCities, subject.cityKey));
  let tail = 0;
  for (const { c, n } of ops.opCities) {
    const p = pHat(c, n);
    if (p <= pSubject) tail += p;
  }
  return { probability: Math.min(1, tail + priorTerm), distanceFactor: 1 };
}

/** New city for the operation: Good–Turing missing mass, shrunk by how rare the city is in the tenant. */
function newCityOdds(
  priorTerm: number,
  nearest: RarityScore['nearest'],
  countries: CountryNovelty,
  params: ScoringParams,
): Odds {
  let probability = priorTerm;
  let distanceFactor = 1;
  if (nearest !== undefined) {
    const span = Math.max(1, params.distanceScaleKm - params.mergeKm);
    const closeness = 1 - Math.min(1, Math.max(0, (nearest.distanceKm - params.mergeKm) / span));
    distanceFactor = Math.pow(params.nearFactor, closeness);
  }
  probability *= distanceFactor;
  if (countries.newCountryForOperation) probability /= params.newCountryOperationBoost;
  if (countries.newCountryForTenant) probability /= params.newCountryTenantBoost;
  return { probability: Math.min(1, probability), distanceFactor };
}

/** Learning: an operation or tenant without enough history cannot tell rare from new. */
function learningFactorOf(op: OperationBaseline, tenant: TenantBaseline, params: ScoringParams): number {
  const lOp =
    params.learningOperationHours <= 0
      ? 1
      : Math.sqrt(Math.min(1, op.activeHours / params.learningOperationHours));
  // Days the tenant was observed (with data), not days since its first event: one old record must not open the gate.
  const tenantDays = tenant.observedDays;
  const lTenant =
    params.learningTenantDays <= 0 ? 1 : Math.sqrt(Math.min(1, tenantDays / params.learningTenantDays));
  return lOp * lTenant;
}

/** The operation's top UC_TOP_CITIES cities by decayed hours, as the explanation lists them. */
function knownCitiesOf(opCities: readonly LiveCity[], params: ScoringParams): KnownCity[] {
  return opCities
    .map(({ c, n }) => ({
      cityKey: c.cityKey,
      name: placeName(c.name, c.region, c.country),
      country: c.country,
      latitude: c.latitude,
      longitude: c.longitude,
      hours: n,
      rawHours: c.rawHours,
    }))
    .sort((a, b) => b.hours - a.hours || a.cityKey.localeCompare(b.cityKey))
    .slice(0, params.topCities);
}

type CountryNovelty = Pick<
  RarityScore,
  'newCountryForOperation' | 'operationCountryBasis' | 'newCountryForTenant' | 'countrySeenInTenant'
>;

/**
 * Whether the city's country is new, for the operation and for the tenant. "New" means no *established* place is
 * in it — the city itself included — so a country where the tenant has one office is never "new" because of it.
 */
function countryNovelty(
  opCities: readonly { c: CityBaseline }[],
  tenant: TenantSnapshot,
  city: City,
): CountryNovelty {
  const country = city.country;
  const estOp = opCities.filter(({ c }) => c.established);
  const basis = estOp.length > 0 ? estOp : opCities.filter(({ c }) => c.rawHours > 0);
  const newCountryForOperation =
    country !== '' && basis.length > 0 && !basis.some(({ c }) => c.country === country);
  const inCountry = tenant.countries.get(country);
  return {
    newCountryForOperation,
    operationCountryBasis: estOp.length > 0 ? 'established' : 'seen',
    newCountryForTenant:
      country !== '' && tenant.tenantEstablished && !(inCountry?.establishedInCountry ?? false),
    countrySeenInTenant: inCountry?.countrySeenInTenant ?? false,
  };
}

function explain(op: OperationBaseline, city: City, r: RarityScore): string {
  const where =
    city.egress !== undefined
      ? `egress range ${city.egress}`
      : placeName(city.name, city.region, city.country);
  const merged =
    r.established && r.mergedInto
      ? ` (merged with ${r.mergedInto.name}, ${fmtKm(r.mergedInto.distanceKm)} away)`
      : '';
  const parts = [`${op.operation} from ${where}${merged}: ${historyClause(op, r)}`];
  if (r.quarantinedHours > 0) {
    parts.push(
      `${r.quarantinedHours} of its hours only from callers in quarantine (an alert not confirmed as benign), which cannot establish it`,
    );
  }
  if (r.knownCities.length > 0 && !r.established) {
    const more = r.operationCities - r.knownCities.length;
    parts.push(
      `known cities: ${r.knownCities.map((k) => `${k.name} ${fmtHours(k.hours)}h`).join('; ')}` +
        (more > 0 ? ` …and ${more} more` : ''),
    );
  }
  if (!r.established && r.nearest) {
    const which =
      r.nearestBasis === 'established' ? 'established city of the operation' : 'city of the operation';
    parts.push(`nearest ${which} ${r.nearest.name} is ${fmtKm(r.nearest.distanceKm)} away`);
  }
  const cc = city.country;
  if (r.newCountryForTenant) {
    parts.push(
      r.countrySeenInTenant
        ? `the tenant has no established city in ${cc}`
        : 'a country never seen in the tenant',
    );
  } else if (r.newCountryForOperation) {
    parts.push(
      r.operationCountryBasis === 'established'
        ? `no established city of this operation is in ${cc}`
        : `this operation was never seen from ${cc}`,
    );
  }
  parts.push(
    r.seenInTenant
      ? `the city has ${(r.tenantShare * 100).toFixed(2)}% of the tenant's hours`
      : r.tenantQuarantinedHours > 0
        ? `the city was seen in the tenant only from callers in quarantine (${r.tenantQuarantinedHours} hour(s), not counted)`
        : 'the city was never seen in the tenant',
  );
  parts.push(...callerClauses(r));
  if (r.learningFactor < 1) {
    parts.push(
      `still learning (operation active ${r.operationActiveHours}h, tenant observed on ${r.tenantDays} day(s)): score ×${r.learningFactor.toFixed(2)}`,
    );
  }
  if (r.capped && r.egress !== undefined) parts.push(`known egress range: score capped`);
  parts.push(`probability ${r.probability.toExponential(2)} → score ${r.score}`);
  return parts.join('; ') + '.';
}

/** What the operation's baseline says of this city. */
function historyClause(op: OperationBaseline, r: RarityScore): string {
  const last =
    r.lastSeenMs !== undefined ? `, last on ${new Date(r.lastSeenMs).toISOString().slice(0, 10)}` : '';
  if (r.seenForOperation && r.rawHoursSeen > 0 && !r.established) {
    return `seen in ${r.rawHoursSeen} hour(s) before${last}, not yet established for this operation, so still scored as a new city`;
  }
  if (r.seenForOperation && r.established) {
    const merged = r.mergedInto
      ? ` (merged with ${r.mergedInto.name}, ${fmtKm(r.mergedInto.distanceKm)} away)`
      : '';
    return `${merged ? merged.slice(1) + ': ' : ''}seen in ${r.rawHoursSeen} hour(s) before (${fmtHours(r.hoursSeen)} after decay${last}) out of ${fmtHours(r.operationHours)} hours for this operation`;
  }
  if (op.cities.size === 0) return 'the operation has no city history yet';
  return 'a city never seen for this operation';
}

/** What the caller's own history says of this city. */
function callerClauses(r: RarityScore): string[] {
  const out: string[] = [];
  if (r.quarantinedForCaller) {
    out.push(
      "the caller's earlier activity from this city is in quarantine (an alert not confirmed as benign)",
    );
  }
  const net = r.network;
  if (r.throughKnownNetwork && net !== undefined) {
    const city = r.newCityForCaller
      ? 'the caller never worked from this city before'
      : 'the city is not yet familiar to the caller';
    out.push(
      `${city}, but came through ${net.label}, a network they used on ${net.days} day(s)` +
        (r.networkCapped ? `: score capped at ${r.score}` : ''),
    );
  } else if (r.newCityForCaller) {
    out.push(
      `the caller never worked from this city before (${r.callerHistoryHours ?? 0}h on ${r.callerHistoryDays ?? 0} city-day(s) in ${r.callerCities ?? 0} other city(ies)): probability ÷${fmtHours(r.callerBoost)}`,
    );
  }
  if (r.newCityForCaller && net?.isNew === true && r.networkFactor < 1) {
    out.push(
      `through ${net.label}, a network the caller never used: probability ÷${fmtHours(1 / r.networkFactor)}`,
    );
  }
  if (r.absence < 1) {
    out.push(
      `the operation was never performed from this city in its ${fmtHours(r.operationHours)} hours although the city has ${(r.tenantShare * 100).toFixed(2)}% of the tenant's hours: probability ×${r.absence.toExponential(1)}`,
    );
  }
  if (r.familiarToCaller) {
    out.push(
      `the caller has worked from this city on several days (${r.callerCityHours ?? 0}h): score capped`,
    );
  }
  return out;
}
