import type { LedgerEntry } from '../alerts/episodes.js';
import type { Entity } from '../baseline/store.js';
import { fitJsonList, fitList, isOmittedMarker, STORE_BUDGETS, utf16Chars } from '../config/budgets.js';
import type {
  CallerCity,
  CityBaseline,
  OperationBaseline,
  TenantBaseline,
  TenantCity,
} from '../scoring/model.js';
import { emptyOperation, emptyTenant } from '../scoring/model.js';

/** Row key of an operation's summary inside its partition (city keys start with g:, c: or e:). */
export const OPERATION_SUMMARY_ROW = '~op';
/** The tenant's cities live in one partition, with its summary row. */
export const TENANT_PARTITION = 'cities';
export const TENANT_SUMMARY_ROW = '~tenant';
/** A caller's cities live in the tenant table, one partition per caller. */
export const callerPartition = (caller: string): string => `caller:${caller}`;
export const CHECKPOINT_PARTITION = 'checkpoint';
export const CHECKPOINT_ROW = 'main';
/** Alerts raised per UTC day, one row per alert id (idempotent counting for the daily cap). */
export const dayPartition = (day: string): string => `day:${day}`;

const num = (e: Entity, k: string, d = 0): number => {
  const v = e[k];
  return typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : d;
};
const str = (e: Entity, k: string): string => {
  const v = e[k];
  return typeof v === 'string' ? v : v === undefined ? '' : String(v);
};
const json = <T>(e: Entity, k: string, d: T): T => {
  const v = e[k];
  if (typeof v !== 'string' || v === '') return d;
  try {
    return JSON.parse(v) as T;
  } catch {
    return d;
  }
};

/**
 * Where a city is and how it has been seen: what an operation's city (CityBaseline) and a tenant city (TenantCity)
 * share. Both are stored alike, by the two functions below: these fields in this order, the region only where the
 * kind has one (an operation's city), then the kind's own fields.
 */
type Place = Omit<TenantCity, 'recentHours' | 'days' | 'lastDay' | 'quarantinedHours'>;

function placeToEntity(c: Place & { region?: string }, withRegion: boolean, own: Entity): Entity {
  return {
    name: c.name,
    ...(withRegion ? { region: c.region } : {}),
    country: c.country,
    latitude: c.latitude,
    longitude: c.longitude,
    n: c.n,
    decayedAtMs: c.decayedAtMs,
    rawHours: c.rawHours,
    firstSeenMs: c.firstSeenMs,
    lastSeenMs: c.lastSeenMs,
    ...own,
  };
}

/*
 * Reading rows builds each object in one literal and then adds the kind's own fields by assignment: an object
 * spread (`{ ...place, days }`) of a fresh object takes V8's slow path, about 17 µs a row against under 1 µs, and a
 * warm run reads tens of thousands of rows (issue 16).
 */
function placeFromEntity(cityKey: string, e: Entity): Place {
  return {
    cityKey,
    name: str(e, 'name'),
    country: str(e, 'country'),
    latitude: num(e, 'latitude'),
    longitude: num(e, 'longitude'),
    n: num(e, 'n'),
    decayedAtMs: num(e, 'decayedAtMs'),
    rawHours: num(e, 'rawHours'),
    firstSeenMs: num(e, 'firstSeenMs'),
    lastSeenMs: num(e, 'lastSeenMs'),
  };
}

export function cityToEntity(c: CityBaseline): Entity {
  return placeToEntity(c, true, {
    days: c.days,
    lastDay: c.lastDay,
    lastWeightedDay: c.lastWeightedDay,
    // Within its budget whatever the callers' names (the first callers, who are the longest known, are kept).
    callers: JSON.stringify(fitList(c.callers, STORE_BUDGETS.cityCallersChars, utf16Chars).kept),
    established: c.established,
    recent: JSON.stringify(c.recent),
    ...(c.quarantinedHours > 0 ? { quarantinedHours: c.quarantinedHours } : {}),
  });
}

export function cityFromEntity(cityKey: string, e: Entity): CityBaseline {
  const c = placeFromEntity(cityKey, e) as CityBaseline;
  c.region = str(e, 'region');
  c.days = num(e, 'days');
  c.lastDay = num(e, 'lastDay', -1);
  c.lastWeightedDay = num(e, 'lastWeightedDay', -1);
  c.callers = json<string[]>(e, 'callers', []);
  c.established = e.established === true;
  c.recent = json<[number, number][]>(e, 'recent', []);
  c.quarantinedHours = num(e, 'quarantinedHours');
  return c;
}

export function operationToRows(op: OperationBaseline): Map<string, Entity> {
  const rows = new Map<string, Entity>();
  rows.set(OPERATION_SUMMARY_ROW, operationSummaryEntity(op));
  for (const c of op.cities.values()) rows.set(c.cityKey, cityToEntity(c));
  return rows;
}

export function operationSummaryEntity(op: OperationBaseline): Entity {
  return {
    operation: op.operation,
    activeHours: op.activeHours,
    firstSeenMs: op.firstSeenMs,
    lastSeenMs: op.lastSeenMs,
    recentHours: JSON.stringify(op.recentHours),
  };
}

export function operationFromRows(
  operationKey: string,
  operation: string,
  rows: ReadonlyMap<string, Entity>,
): OperationBaseline {
  const op = emptyOperation(operationKey, operation);
  const summary = rows.get(OPERATION_SUMMARY_ROW);
  if (summary) {
    op.operation = str(summary, 'operation') || operation;
    op.activeHours = num(summary, 'activeHours');
    op.firstSeenMs = num(summary, 'firstSeenMs');
    op.lastSeenMs = num(summary, 'lastSeenMs');
    op.recentHours = json<number[]>(summary, 'recentHours', []);
  }
  for (const [key, e] of rows) {
    if (key !== OPERATION_SUMMARY_ROW) op.cities.set(key, cityFromEntity(key, e));
  }
  return op;
}

export function tenantCityToEntity(c: TenantCity): Entity {
  return placeToEntity(c, false, {
    days: c.days,
    lastDay: c.lastDay,
    recentHours: JSON.stringify(c.recentHours),
    ...(c.quarantinedHours > 0 ? { quarantinedHours: c.quarantinedHours } : {}),
  });
}

export function tenantSummaryEntity(t: TenantBaseline): Entity {
  return { firstSeenMs: t.firstSeenMs, observedDays: t.observedDays, lastObservedDay: t.lastObservedDay };
}

const DAY = 86_400_000;

/** Days of a tenant city stored before days were kept: the days its first and last sightings span, at most. */
const spannedDays = (p: Place): number =>
  p.rawHours === 0
    ? 0
    : Math.min(p.rawHours, Math.floor(p.lastSeenMs / DAY) - Math.floor(p.firstSeenMs / DAY) + 1);

export function tenantFromRows(rows: ReadonlyMap<string, Entity>): TenantBaseline {
  const t = emptyTenant();
  for (const [key, e] of rows) {
    if (key === TENANT_SUMMARY_ROW) {
      t.firstSeenMs = num(e, 'firstSeenMs');
      t.observedDays = num(e, 'observedDays', -1);
      t.lastObservedDay = num(e, 'lastObservedDay', -1);
      continue;
    }
    const c = placeFromEntity(key, e) as TenantCity;
    c.days = num(e, 'days', spannedDays(c));
    c.lastDay = num(e, 'lastDay', Math.floor(c.lastSeenMs / DAY));
    c.recentHours = json<number[]>(e, 'recentHours', []);
    c.quarantinedHours = num(e, 'quarantinedHours');
    t.cities.set(key, c);
  }
  if (t.observedDays < 0) {
    // Stored before days were observed: at least as many days as its busiest city was seen on.
    t.observedDays = Math.max(0, ...[...t.cities.values()].map((c) => c.days));
    t.lastObservedDay = Math.max(-1, ...[...t.cities.values()].map((c) => c.lastDay));
  }
  return t;
}

export function ledgerToEntity(l: LedgerEntry): Entity {
  return {
    caller: l.caller,
    cityKey: l.cityKey,
    alertId: l.alertId,
    alertedAtMs: l.alertedAtMs,
    score: l.score,
    lastActivityMs: l.lastActivityMs,
    // Within its budget whatever the operations' names: the first ones, then `…and N more`.
    operations: fitJsonList(l.operations, STORE_BUDGETS.ledgerOperationsChars, utf16Chars),
    ...(l.reported !== undefined
      ? { reported: fitJsonList(l.reported, STORE_BUDGETS.ledgerOperationsChars, utf16Chars) }
      : {}),
    ...(l.confirmedAlertId !== undefined ? { confirmedAlertId: l.confirmedAlertId } : {}),
    ...(l.update !== undefined
      ? {
          update: JSON.stringify({
            alertId: l.update.alertId,
            atMs: l.update.atMs,
            operations: JSON.parse(
              fitJsonList(l.update.operations, STORE_BUDGETS.ledgerOperationsChars, utf16Chars),
            ) as string[],
          }),
        }
      : {}),
  };
}

/** The episode's latest update alert as stored (markers of a cut list dropped). */
function ledgerUpdate(e: Entity): { alertId: string; atMs: number; operations: string[] } {
  const u = json<{ alertId: string; atMs: number; operations: string[] }>(e, 'update', {
    alertId: '',
    atMs: 0,
    operations: [],
  });
  return { ...u, operations: u.operations.filter((o) => !isOmittedMarker(o)) };
}

export function ledgerFromEntity(e: Entity): LedgerEntry {
  return {
    caller: str(e, 'caller'),
    cityKey: str(e, 'cityKey'),
    alertId: str(e, 'alertId'),
    alertedAtMs: num(e, 'alertedAtMs'),
    score: num(e, 'score'),
    lastActivityMs: num(e, 'lastActivityMs'),
    operations: json<string[]>(e, 'operations', []).filter((o) => !isOmittedMarker(o)),
    ...(typeof e.reported === 'string'
      ? { reported: json<string[]>(e, 'reported', []).filter((o) => !isOmittedMarker(o)) }
      : {}),
    ...(typeof e.update === 'string' ? { update: ledgerUpdate(e) } : {}),
    ...(typeof e.confirmedAlertId === 'string' && e.confirmedAlertId !== ''
      ? { confirmedAlertId: e.confirmedAlertId }
      : {}),
  };
}

/** Field-by-field equality of two entities (to write only rows that really changed). */
export function sameEntity(a: Entity | undefined, b: Entity): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(b);
  return keys.length === Object.keys(a).length && keys.every((k) => a[k] === b[k]);
}

export function callerCityToEntity(c: CallerCity): Entity {
  return {
    rawHours: c.rawHours,
    days: c.days,
    lastDay: c.lastDay,
    firstSeenMs: c.firstSeenMs,
    lastSeenMs: c.lastSeenMs,
    recentHours: JSON.stringify(c.recentHours),
    ...(c.quarantinedUntilMs > 0 ? { quarantinedUntilMs: c.quarantinedUntilMs } : {}),
  };
}

export function callerCitiesFromRows(rows: ReadonlyMap<string, Entity>): Map<string, CallerCity> {
  const out = new Map<string, CallerCity>();
  for (const [cityKey, e] of rows) {
    out.set(cityKey, {
      cityKey,
      rawHours: num(e, 'rawHours'),
      days: num(e, 'days'),
      lastDay: num(e, 'lastDay', -1),
      firstSeenMs: num(e, 'firstSeenMs'),
      lastSeenMs: num(e, 'lastSeenMs'),
      recentHours: json<number[]>(e, 'recentHours', []),
      quarantinedUntilMs: num(e, 'quarantinedUntilMs'),
    });
  }
  return out;
}
