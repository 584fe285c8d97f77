import type { CallerType } from '../activity/types.js';
import type { City, Network } from '../geo/types.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** How many counted hours (with their scores) a baseline row remembers, to make counting idempotent. */
export const RECENT_HOURS_KEPT = 24;

/** A place's identity and decayed counts: what an operation's city and the tenant's city both keep. */
export interface PlaceCounts {
  cityKey: string;
  name: string;
  country: string;
  latitude: number;
  longitude: number;
  n: number;
  decayedAtMs: number;
  /** Distinct hours ever counted (not decayed, not weighted). */
  rawHours: number;
  firstSeenMs: number;
  lastSeenMs: number;
}

/**
 * What the baseline knows about one (operation, city). `n` is the decayed, establishment-weighted number of
 * distinct hours, valid at `decayedAtMs`; decay is applied lazily when the row is next read or written.
 */
export interface CityBaseline extends PlaceCounts {
  region: string;
  /** Distinct UTC days with at least one counted hour. */
  days: number;
  lastDay: number;
  /** UTC day on which an unestablished pair last gained weight (it gains at most one fraction per day). */
  lastWeightedDay: number;
  /** Bounded set of distinct callers. */
  callers: string[];
  established: boolean;
  /** Hours already counted, newest last, with the score each got when first seen. */
  recent: [hourMs: number, score: number][];
  /**
   * Of the hours counted, those seen only from callers in quarantine for the city (an alert not confirmed as
   * benign): they count, but none of them can make the city established for the operation.
   */
  quarantinedHours: number;
}

export interface OperationBaseline {
  operationKey: string;
  /** Display name: the first spelling seen. */
  operation: string;
  /** Distinct hours in which the operation was seen from any city (drives the learning factor). */
  activeHours: number;
  firstSeenMs: number;
  lastSeenMs: number;
  recentHours: number[];
  cities: Map<string, CityBaseline>;
}

/** The tenant's own use of a city, all operations together: the prior for cities new to an operation. */
export interface TenantCity extends PlaceCounts {
  /** Distinct UTC days with at least one counted hour (a city is established for the tenant with enough). */
  days: number;
  lastDay: number;
  recentHours: number[];
  /**
   * Hours seen only from callers in quarantine for the city: not counted (n, rawHours, days), so an attacker who
   * stays never makes their city common in the tenant.
   */
  quarantinedHours: number;
}

/** One caller's use of one city, all operations together (per-caller novelty, as UEBA does per user). */
export interface CallerCity {
  cityKey: string;
  rawHours: number;
  days: number;
  lastDay: number;
  firstSeenMs: number;
  lastSeenMs: number;
  recentHours: number[];
  /**
   * Until then, the caller's hours in this city are quarantined (an alert for it that no analyst has confirmed
   * as benign): they never make the city familiar to the caller. 0 = not quarantined.
   */
  quarantinedUntilMs: number;
}

/** A quarantine an analyst confirmed (a TruePositive verdict): it does not age out (only an allow rule lifts it). */
export const CONFIRMED_UNTIL_MS = Date.UTC(9999, 11, 31);

/** What the scorer needs to know about the caller of an observation. */
export interface CallerContext {
  caller: string;
  /** Hours the caller was seen in, from any city (bounded by the cities kept). */
  historyHours: number;
  /** Hours and days the caller was seen in this city before (0 while the city is quarantined for them). */
  cityHours: number;
  cityDays: number;
  /** Cities the caller worked from (outside quarantine), and the (city, day)s they were seen on. */
  cities: number;
  cityDaysTotal: number;
  /** The city is quarantined for the caller: an alert for it that no analyst has confirmed as benign. */
  quarantined: boolean;
  /** That quarantine is an analyst's TruePositive verdict (CONFIRMED_UNTIL_MS): every later hour alerts. */
  confirmed: boolean;
  /** The caller's history with the networks of this activity; absent when no network is known (no ASN data). */
  network?: CallerNetworkContext;
  /**
   * Countries of the caller's familiar cities (UC_ESTABLISH_DAYS days or more outside quarantine), when the
   * scorer was given their countries (callerContext's `countryOf`); sorted, distinct.
   */
  countries?: string[];
}

/** What the caller's history says about the networks (autonomous systems) an activity came through. */
export interface CallerNetworkContext {
  /** The activity's networks, for the explanation (bounded). */
  networks: Network[];
  /** Fewest days the caller used any of them before (0: one of them is new to the caller). */
  minDays: number;
  /** The caller has a network history (some network on UC_NETWORK_KNOWN_DAYS days or more). */
  hasHistory: boolean;
}

/** Caller-history rows for networks share the caller's map with cities, keyed `n:<asn>` (cities: g:/c:/e:). */
export const NETWORK_KEY_PREFIX = 'n:';
export const networkKey = (asn: number): string => `${NETWORK_KEY_PREFIX}${asn}`;
export const isNetworkKey = (key: string): boolean => key.startsWith(NETWORK_KEY_PREFIX);

export interface TenantBaseline {
  /** When the detector first saw data for this tenant; 0 = never. */
  firstSeenMs: number;
  /** Distinct UTC days with data (drives the tenant learning factor: days observed, not days since). */
  observedDays: number;
  lastObservedDay: number;
  cities: Map<string, TenantCity>;
}

/** One caller's part of an observation. */
export interface CallerActivity {
  caller: string;
  callerType: CallerType;
  ips: string[];
  events: number;
  firstMs: number;
  lastMs: number;
  resourceIds: string[];
  correlationIds: string[];
  subscriptionId: string;
  resourceGroup: string;
  /**
   * The networks (autonomous systems) of `ips`, when a network locator is configured; distinct, bounded.
   * Absent: unknown (no ASN data), which the model treats as neither familiar nor new.
   */
  networks?: Network[];
}

/** The unit of scoring: one operation from one city in one hour, however many events. */
export interface Observation {
  operationKey: string;
  operation: string;
  city: City;
  hourMs: number;
  events: number;
  callers: CallerActivity[];
}

/** The knobs of the model (from app settings, see shared/config/settings.json). */
export interface ScoringParams {
  halfLifeDays: number;
  priorWeight: number;
  smoothingAlpha: number;
  mergeKm: number;
  distanceScaleKm: number;
  nearFactor: number;
  newCountryOperationBoost: number;
  newCountryTenantBoost: number;
  learningOperationHours: number;
  learningTenantDays: number;
  establishHours: number;
  establishDays: number;
  establishCallers: number;
  unestablishedWeight: number;
  egressScoreCap: number;
  callerNewCityBoost: number;
  /** Exponent on the caller's own odds against a new city (UC_CALLER_NOVELTY_WEIGHT). */
  callerNoveltyWeight: number;
  /** Exponent on the evidence of absence (UC_ABSENCE_WEIGHT); 0 = off. */
  absenceWeight: number;
  /** Highest score of a city not familiar to the caller through a network they already use. */
  knownNetworkScoreCap: number;
  /** P ÷ this for a city new to the caller through a network they never used (UC_NEW_NETWORK_BOOST). */
  newNetworkBoost: number;
  /** Days of use that make a network the caller's (UC_NETWORK_KNOWN_DAYS). */
  networkKnownDays: number;
  familiarScoreCap: number;
  callerLearningHours: number;
  maxCallersPerCity: number;
  topCities: number;
}

export function emptyOperation(operationKey: string, operation: string): OperationBaseline {
  return {
    operationKey,
    operation,
    activeHours: 0,
    firstSeenMs: 0,
    lastSeenMs: 0,
    recentHours: [],
    cities: new Map(),
  };
}

export function emptyTenant(): TenantBaseline {
  return { firstSeenMs: 0, observedDays: 0, lastObservedDay: -1, cities: new Map() };
}

/** A tenant city is established with UC_ESTABLISH_HOURS hours on UC_ESTABLISH_DAYS days, as an operation's city. */
export function tenantCityEstablished(c: TenantCity, params: ScoringParams): boolean {
  return c.rawHours >= params.establishHours && c.days >= params.establishDays;
}
