import { loadSettings } from '../../shared/config/settings.js';
import type { City } from '../../shared/geo/types.js';
import {
  type CallerCity,
  DAY_MS,
  emptyOperation,
  emptyTenant,
  HOUR_MS,
  type OperationBaseline,
  type ScoringParams,
  type TenantBaseline,
} from '../../shared/scoring/model.js';
import { scoringParams } from '../../shared/scoring/params.js';
import { type RarityScore, scoreObservation } from '../../shared/scoring/score.js';
import {
  callerContext,
  countCallerHour,
  countOperationHour,
  countTenantHour,
} from '../../shared/scoring/update.js';

export const defaultParams = (overrides: Record<string, string> = {}): ScoringParams =>
  scoringParams(loadSettings({}, overrides));

const place = (key: string, name: string, country: string, latitude: number, longitude: number): City => ({
  key,
  geonameId: Number(key.slice(2)),
  name,
  region: '',
  country,
  countryName: country,
  latitude,
  longitude,
});

/** Real MaxMind geoname ids and coordinates. */
export const CITIES = {
  london: place('g:2643743', 'London', 'GB', 51.5164, -0.093),
  manchester: place('g:2643123', 'Manchester', 'GB', 53.4809, -2.2374),
  amsterdam: place('g:2759794', 'Amsterdam', 'NL', 52.3534, 4.9087),
  mumbai: place('g:1275339', 'Mumbai', 'IN', 19.0748, 72.8856),
  berlin: place('g:2950159', 'Berlin', 'DE', 52.5246, 13.4821),
  lagos: place('g:2332459', 'Lagos', 'NG', 6.4474, 3.3903),
  newYork: place('g:5128581', 'New York', 'US', 40.7494, -73.9664),
  // 12 km from London's centre: GeoIP metro noise.
  croydon: place('g:2651817', 'Croydon', 'GB', 51.3833, -0.1),
} as const;

export const T0 = Date.UTC(2026, 0, 5); // a Monday
export const hour = (day: number, h: number): number => T0 + day * DAY_MS + h * HOUR_MS;

/** A tenant's history built through the production update functions, hour by hour. */
export class History {
  readonly ops = new Map<string, OperationBaseline>();
  tenant: TenantBaseline = emptyTenant();
  readonly callers = new Map<string, Map<string, CallerCity>>();
  constructor(readonly params: ScoringParams = defaultParams()) {}

  op(key: string): OperationBaseline {
    return this.ops.get(key) ?? emptyOperation(key, key.toUpperCase());
  }

  /** Counts (operation, city, hour) for these callers, as the pipeline does after scoring. */
  observe(opKey: string, city: City, hourMs: number, callers: string[], score = 0): void {
    this.ops.set(opKey, countOperationHour(this.op(opKey), { city, hourMs, callers, score }, this.params).op);
    this.tenant = countTenantHour(this.tenant, city, hourMs, this.params).tenant;
    for (const c of callers) {
      this.callers.set(c, countCallerHour(this.callers.get(c) ?? new Map(), city.key, hourMs).cities);
    }
  }

  /** Scores as the pipeline does: against the state before the hour, with the caller's own history. */
  score(opKey: string, city: City, hourMs: number, caller?: string): RarityScore {
    const ctx =
      caller === undefined
        ? undefined
        : callerContext(caller, this.callers.get(caller) ?? new Map(), city.key, hourMs);
    return scoreObservation(this.op(opKey), this.tenant, city, hourMs, this.params, ctx);
  }

  /** Scores, then counts: one step of the pipeline. */
  step(opKey: string, city: City, hourMs: number, caller: string): RarityScore {
    const r = this.score(opKey, city, hourMs, caller);
    this.observe(opKey, city, hourMs, [caller], r.score);
    return r;
  }
}

/**
 * A tenant with 60 days of working-day history: headquarters in London (16 people deploying daily, two
 * admins listing storage keys), a development office in Mumbai (deployments), automation in Amsterdam.
 */
export function contosoHistory(days = 60, params?: ScoringParams): History {
  const h = new History(params);
  for (let d = 0; d < days; d++) {
    const weekday = d % 7;
    for (let hr = 0; hr < 24; hr++) {
      h.observe('vmss/write', CITIES.amsterdam, hour(d, hr), ['autoscaler-mi']);
    }
    if (weekday >= 5) continue;
    for (let hr = 9; hr < 18; hr++) {
      h.observe('deployments/write', CITIES.london, hour(d, hr), [
        `dev${hr % 8}@contoso.com`,
        `dev${(hr + 3) % 8}@contoso.com`,
      ]);
      if (hr % 2 === 0) h.observe('sites/write', CITIES.london, hour(d, hr), [`dev${hr % 8}@contoso.com`]);
    }
    for (const hr of [10, 14])
      h.observe('listkeys/action', CITIES.london, hour(d, hr), ['admin1@contoso.com', 'admin2@contoso.com']);
    for (let hr = 4; hr < 13; hr++) {
      h.observe('deployments/write', CITIES.mumbai, hour(d, hr), [`mumbai${hr % 5}@contoso.com`]);
    }
  }
  return h;
}
