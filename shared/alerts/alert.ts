import { createHash } from 'node:crypto';

import { omittedMarker } from '../config/budgets.js';
import { displaySafe } from '../display.js';
import type { City } from '../geo/types.js';
import type { CallerActivity, Observation } from '../scoring/model.js';
import type { RarityScore } from '../scoring/score.js';
import columnsFile from './columns.json' with { type: 'json' };
import { fitAlert } from './fit.js';
import type { Alert } from './row.js';

export type { Alert, BaselineCityEntry, OperationExplanation } from './row.js';

export type ColumnType = 'string' | 'int' | 'long' | 'real' | 'bool' | 'datetime' | 'dynamic';
export interface ColumnSpec {
  name: string;
  type: ColumnType;
  description: string;
}
export const ALERT_COLUMNS = columnsFile.columns as ColumnSpec[];
export const ALERT_STREAM = columnsFile.stream;

/** Bumped whenever the scoring model changes meaning, so analysts can tell alerts of different models apart. */
export const MODEL_REVISION = 'm3';
/** Lists in an alert are bounded: alerts must stay far below the Logs Ingestion 1 MB request limit. */
export const MAX_LIST = 50;

/** A rare observation seen for one caller: the raw material of an alert. */
export interface RareFinding {
  observation: Observation;
  activity: CallerActivity;
  rarity: RarityScore;
}

export interface AlertDefaults {
  name: string;
  severity: string;
  riskScore: number;
  detectorVersion: string;
}

/**
 * Deterministic alert id: the caller, the place, the hour and operation that raised it. The same inputs
 * always give the same id, so a re-run (overlapping window, crash, replay) never makes a second alert.
 */
export function alertIdFor(caller: string, cityKey: string, hourMs: number, operationKey: string): string {
  const h = createHash('sha256')
    .update(`${caller}\u0000${cityKey}\u0000${hourMs}\u0000${operationKey}`)
    .digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The distinct values, at most `max`: when there are more, the last place says how many (`…and N more`). */
function uniq(values: Iterable<string>, max = MAX_LIST): string[] {
  const all = new Set<string>();
  for (const v of values) if (v !== '') all.add(v);
  if (all.size <= max) return [...all];
  const kept = [...all].slice(0, max - 1);
  return [...kept, omittedMarker(all.size - kept.length)];
}

function placeText(city: City): string {
  if (city.egress !== undefined) return `egress range ${city.egress}`;
  return [city.name, city.region, city.countryName || city.country].filter((p) => p !== '').join(', ');
}

/** The geoname id of a city place (key `g:<id>`); '' for an egress range or a country (`e:`, `c:` keys). */
export function geonameIdOf(city: City): string {
  return city.key.startsWith('g:') ? city.key.slice(2) : '';
}

/**
 * Builds the alert for one (caller, city) episode from its rare findings (at least one), within the alert budgets
 * (shared/alerts/fit.ts): a few KB whatever the findings.
 */
export function buildAlert(findings: readonly RareFinding[], tickMs: number, defaults: AlertDefaults): Alert {
  const sorted = [...findings].sort(
    (a, b) =>
      b.rarity.score - a.rarity.score ||
      a.observation.hourMs - b.observation.hourMs ||
      a.observation.operationKey.localeCompare(b.observation.operationKey),
  );
  const top = sorted[0];
  if (top === undefined) throw new Error('buildAlert needs at least one finding');
  const { observation: obs, activity, rarity } = top;
  const city = obs.city;
  const operations = uniq(sorted.map((f) => f.observation.operation));
  const first = Math.min(...sorted.map((f) => f.activity.firstMs));
  const last = Math.max(...sorted.map((f) => f.activity.lastMs));
  const events = sorted.reduce((sum, f) => sum + f.activity.events, 0);
  const caller = activity.caller;
  const others = operations.length > 1 ? ` and ${operations.length - 1} other rare operation(s)` : '';
  const description =
    `${caller || 'An unknown caller'} (${activity.callerType}) performed ${obs.operation}${others} from ` +
    `${placeText(city)} (${activity.ips[0] ?? ''}), a place unusual for this operation (score ${rarity.score}). ` +
    rarity.sentence;
  return fitAlert({
    TimeGenerated: new Date(tickMs).toISOString(),
    AlertId: alertIdFor(caller, city.key, obs.hourMs, obs.operationKey),
    AlertName: defaults.name,
    Severity: defaults.severity,
    RiskScore: defaults.riskScore,
    AnomalyScore: rarity.score,
    // Text for people (Sentinel, the workbook): control characters from log fields shown as escapes.
    Description: displaySafe(description),
    Tactics: 'InitialAccess',
    Techniques: 'T1078,T1078.004',
    Operation: obs.operation,
    Operations: operations,
    Caller: caller,
    CallerType: activity.callerType,
    SrcIpAddr: activity.ips[0] ?? '',
    SrcIpAddrs: uniq(sorted.flatMap((f) => f.activity.ips)),
    SrcGeoCity: city.egress !== undefined ? city.egress : city.name,
    SrcGeoRegion: city.region,
    SrcGeoCountry: city.country,
    SrcGeoLatitude: city.latitude,
    SrcGeoLongitude: city.longitude,
    SubscriptionId: activity.subscriptionId,
    ResourceGroup: activity.resourceGroup,
    ResourceIds: uniq(sorted.flatMap((f) => f.activity.resourceIds)),
    CorrelationIds: uniq(sorted.flatMap((f) => f.activity.correlationIds)),
    EventCount: events,
    FirstEventTime: new Date(first).toISOString(),
    LastEventTime: new Date(last).toISOString(),
    BaselineCities: rarity.knownCities.map((k) => ({
      city: k.name,
      country: k.country,
      latitude: k.latitude,
      longitude: k.longitude,
      hours: Math.round(k.hours * 10) / 10,
    })),
    Explanation: {
      summary: displaySafe(rarity.sentence),
      operations: sorted.map((f) => {
        // The caller's countries decide only city+network allow rules, never the score: not a factor.
        const { sentence, knownCities: _known, callerCountries: _countries, ...factors } = f.rarity;
        return {
          operation: f.observation.operation,
          score: f.rarity.score,
          hour: new Date(f.observation.hourMs).toISOString(),
          sentence: displaySafe(sentence),
          factors,
        };
      }),
    },
    DetectorVersion: defaults.detectorVersion,
    ParentAlertId: '',
    SrcGeoCityId: geonameIdOf(city),
  });
}
