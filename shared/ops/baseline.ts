/**
 * Inspecting and correcting baselines: what an operation's baseline holds (`baseline show`), and forgetting an
 * (operation, city) — after a confirmed compromise the attacker's city must be new again, not "seen for 3 hours"
 * (`baseline forget`). Every correction is audited (shared/ops/audit.ts).
 */
import type { BaselineStore, Entity } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import { displaySafe } from '../display.js';
import { forgetCallerCity } from '../pipeline/callers.js';
import {
  CHECKPOINT_PARTITION,
  CHECKPOINT_ROW,
  cityFromEntity,
  OPERATION_SUMMARY_ROW,
  operationFromRows,
  TENANT_PARTITION,
  tenantFromRows,
} from '../pipeline/state.js';
import { decayed } from '../scoring/decay.js';
import { parseCityKey } from './allowlist.js';
import { appendAudit } from './audit.js';

const iso = (ms: number): string => (ms > 0 ? new Date(ms).toISOString() : '');

export interface CityView {
  key: string;
  name: string;
  region: string;
  country: string;
  latitude: number;
  longitude: number;
  /** Hours as the model weighs them now: establishment-weighted and decayed to `asOf`. */
  hours: number;
  /** Distinct hours ever counted (not weighted, not decayed). */
  rawHours: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  established: boolean;
  callers: string[];
}

export interface OperationView {
  operation: string;
  operationKey: string;
  activeHours: number;
  firstSeen: string;
  lastSeen: string;
  /** The time decayed hours are computed for. */
  asOf: string;
  cities: CityView[];
}

/** Operations are compared case-insensitively: the partition is the lower-cased name. */
export const operationKeyOf = (operation: string): string => operation.trim().toLowerCase();

/** The baseline of one operation, cities by decayed hours (most first); undefined when there is none. */
export async function showOperation(
  store: BaselineStore,
  settings: Settings,
  operation: string,
  nowMs: number,
): Promise<OperationView | undefined> {
  const key = operationKeyOf(operation);
  const rows = await store.readPartition('baselines', key);
  if (rows.size === 0) return undefined;
  const op = operationFromRows(key, operation, rows);
  const cities = [...op.cities.values()]
    .map((c): CityView => ({
      key: c.cityKey,
      name: c.name,
      region: c.region,
      country: c.country,
      latitude: c.latitude,
      longitude: c.longitude,
      hours: Math.round(1000 * decayed(c.n, c.decayedAtMs, nowMs, settings.UC_HALF_LIFE_DAYS)) / 1000,
      rawHours: c.rawHours,
      days: c.days,
      firstSeen: iso(c.firstSeenMs),
      lastSeen: iso(c.lastSeenMs),
      established: c.established,
      callers: c.callers,
    }))
    .sort((a, b) => b.hours - a.hours || b.rawHours - a.rawHours || (a.key < b.key ? -1 : 1));
  return {
    operation: op.operation,
    operationKey: key,
    activeHours: op.activeHours,
    firstSeen: iso(op.firstSeenMs),
    lastSeen: iso(op.lastSeenMs),
    asOf: iso(nowMs),
    cities,
  };
}

const short = (isoText: string): string =>
  isoText === '' ? '-' : `${isoText.slice(0, 16).replace('T', ' ')}Z`;

/** A fixed-width text table. */
function table(headers: string[], rows: string[][], right: ReadonlySet<number>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** `baseline show` for people. */
export function formatOperation(v: OperationView): string {
  const place = (c: CityView) =>
    [c.name || c.key, c.region, c.country].filter((x, i) => x !== '' && (i === 0 || x !== c.name)).join(', ');
  const callers = (c: CityView) => {
    const text = c.callers.join(', ');
    return `${c.callers.length}${text ? `: ${text.length > 60 ? `${text.slice(0, 59)}…` : text}` : ''}`;
  };
  const rows = v.cities.map((c) => [
    displaySafe(place(c)),
    c.key,
    c.hours.toFixed(1),
    String(c.rawHours),
    String(c.days),
    short(c.firstSeen),
    short(c.lastSeen),
    c.established ? 'yes' : 'no',
    displaySafe(callers(c)),
  ]);
  return (
    `${displaySafe(v.operation)} (key ${displaySafe(v.operationKey)})\n` +
    `  ${v.activeHours} active hour(s), first seen ${short(v.firstSeen)}, last seen ${short(v.lastSeen)}; ` +
    `${v.cities.length} known cit${v.cities.length === 1 ? 'y' : 'ies'}; hours decayed to ${short(v.asOf)}\n\n` +
    table(
      ['City', 'Key', 'Hours', 'Raw hours', 'Days', 'First seen', 'Last seen', 'Established', 'Callers'],
      rows,
      new Set([2, 3, 4]),
    ) +
    '\n'
  );
}

/** A forget that cannot be done as asked (unknown operation or city); the message says what exists. */
export class ForgetError extends Error {
  override name = 'ForgetError';
}

/** Finds the city a person means: a geoname id, a city key, or a name unique among the operation's cities. */
export function resolveCity(rows: ReadonlyMap<string, Entity>, text: string): string {
  const key = parseCityKey(text);
  if (key !== undefined) return key;
  const wanted = text.trim().toLowerCase();
  const matches = [...rows.entries()]
    .filter(([k, e]) => k !== OPERATION_SUMMARY_ROW && cityFromEntity(k, e).name.toLowerCase() === wanted)
    .map(([k, e]) => `${k} (${[cityFromEntity(k, e).name, cityFromEntity(k, e).country].join(', ')})`);
  if (matches.length === 1) return matches[0]!.split(' ')[0]!;
  if (matches.length === 0)
    throw new ForgetError(
      `no city named ${JSON.stringify(text)} in this baseline (use its key, see baseline show)`,
    );
  throw new ForgetError(`${JSON.stringify(text)} is ambiguous: ${matches.join('; ')} — give the key`);
}

export interface ForgetRequest {
  /** An operation name (any case), or `*` for every operation. */
  operation: string;
  /** A geoname id, a city key, or (for one operation) a city name. */
  city: string;
  /** Also forget the city from these callers' histories (the compromised identities). */
  callers?: readonly string[];
  /** Also forget the city from the tenant's city counts (the prior of cities new to an operation). */
  tenant?: boolean;
}

export interface ForgetResult {
  cityKey: string;
  removed: { operationKey: string; name: string; rawHours: number; days: number; lastSeen: string }[];
  callers: { caller: string; removed: boolean }[];
  tenant: boolean;
}

/** Removes the rows; idempotent; audited when anything was removed. */
export async function forgetCity(
  store: BaselineStore,
  req: ForgetRequest,
  change: { by: string; reason: string; atMs: number },
): Promise<ForgetResult> {
  const all = req.operation.trim() === '*';
  let cityKey: string;
  let operations: string[];
  if (all) {
    const k = parseCityKey(req.city);
    if (k === undefined)
      throw new ForgetError(
        'with operation * the city must be a geoname id or a city key (g:<id>, c:<CC>, e:<label>)',
      );
    cityKey = k;
    operations = (await store.listPartitions('baselines')).sort();
  } else {
    const opKey = operationKeyOf(req.operation);
    const rows = await store.readPartition('baselines', opKey);
    if (rows.size === 0) throw new ForgetError(`no baseline for operation ${JSON.stringify(req.operation)}`);
    cityKey = resolveCity(rows, req.city);
    operations = [opKey];
  }
  const result: ForgetResult = { cityKey, removed: [], callers: [], tenant: false };
  for (const opKey of operations) {
    await store.updateRows('baselines', opKey, [cityKey], (cur) => {
      const e = cur.get(cityKey);
      if (!e) return new Map<string, Entity | null>();
      const c = cityFromEntity(cityKey, e);
      const entry = {
        operationKey: opKey,
        name: c.name,
        rawHours: c.rawHours,
        days: c.days,
        lastSeen: iso(c.lastSeenMs),
      };
      const i = result.removed.findIndex((r) => r.operationKey === opKey);
      if (i >= 0) result.removed[i] = entry;
      else result.removed.push(entry);
      return new Map([[cityKey, null]]);
    });
  }
  for (const caller of req.callers ?? []) {
    result.callers.push({ caller, removed: await forgetCallerCity(store, caller, cityKey) });
  }
  if (req.tenant === true) {
    await store.updateRows('tenant', TENANT_PARTITION, [cityKey], (cur) => {
      result.tenant = cur.has(cityKey);
      return result.tenant ? new Map([[cityKey, null]]) : new Map<string, Entity | null>();
    });
  }
  if (!all && result.removed.length === 0 && !result.tenant && !result.callers.some((c) => c.removed)) {
    throw new ForgetError(`operation ${JSON.stringify(req.operation)} has no city ${cityKey}`);
  }
  if (result.removed.length > 0 || result.tenant || result.callers.some((c) => c.removed)) {
    await appendAudit(store, {
      action: 'forget',
      by: change.by,
      reason: change.reason,
      atMs: change.atMs,
      subject: `${all ? '*' : operations[0]!} ${cityKey}`,
      detail: JSON.stringify(result),
    });
  }
  return result;
}

/** The last run's tick of a state (its checkpoint), or undefined before any run. */
export async function checkpointOf(store: BaselineStore): Promise<number | undefined> {
  const row = (await store.readRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW])).get(CHECKPOINT_ROW);
  return typeof row?.lastTickMs === 'number' ? row.lastTickMs : undefined;
}

export interface OperationListItem {
  operation: string;
  activeHours: number;
  lastSeen: string;
}

/** The operations with a baseline, most active first (one summary row read per operation). */
export async function listOperations(store: BaselineStore): Promise<OperationListItem[]> {
  const keys = await store.listPartitions('baselines');
  const items = await Promise.all(
    keys.map(async (key) => {
      const e = (await store.readRows('baselines', key, [OPERATION_SUMMARY_ROW])).get(OPERATION_SUMMARY_ROW);
      if (e === undefined) return undefined;
      const lastSeenMs = typeof e.lastSeenMs === 'number' ? e.lastSeenMs : 0;
      return {
        operation: typeof e.operation === 'string' ? e.operation : key,
        activeHours: typeof e.activeHours === 'number' ? e.activeHours : 0,
        lastSeen: iso(lastSeenMs),
      };
    }),
  );
  return items
    .filter((i): i is OperationListItem => i !== undefined)
    .sort((a, b) => b.activeHours - a.activeHours || (a.operation < b.operation ? -1 : 1));
}

export function formatOperations(ops: readonly OperationListItem[]): string {
  if (ops.length === 0) return 'no operation has a baseline yet\n';
  const rows = ops.map((o) => [o.operation, String(o.activeHours), short(o.lastSeen)]);
  return `${table(['operation', 'active hours', 'last seen'], rows, new Set([1]))}\n`;
}

/** A place the tenant's baseline knows (the tenant's cities), as `baseline allow` resolves a city name. */
export interface KnownCity {
  key: string;
  name: string;
  country: string;
}

/** The places of the tenant's baseline, by key. */
export async function knownCities(store: BaselineStore): Promise<KnownCity[]> {
  const tenant = tenantFromRows(await store.readPartition('tenant', TENANT_PARTITION));
  return [...tenant.cities.values()]
    .map((c) => ({ key: c.cityKey, name: c.name, country: c.country }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A city name that names no known city, or several; the message lists the candidates. */
export class CityNameError extends Error {
  override name = 'CityNameError';
}

/** Compared without case, accents or repeated spaces: `zurich` finds Zürich. */
const fold = (text: string): string =>
  text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/\s+/g, ' ').trim();

/** `Paris, FR (2988507)`: how a candidate is listed. */
export const describeKnownCity = (c: KnownCity): string =>
  `${[c.name || c.key, c.country].filter((x) => x !== '').join(', ')} (${c.key.startsWith('g:') ? c.key.slice(2) : c.key})`;

/**
 * The key of the city a person names: `Paris` when exactly one known city has that name, `Paris, FR` or
 * `Paris,US` to choose by country (ISO code). Unknown or ambiguous names throw a {@link CityNameError} listing
 * the candidates with their geoname ids.
 */
export function resolveCityName(cities: readonly KnownCity[], text: string): string {
  const comma = text.lastIndexOf(',');
  const country = comma >= 0 ? text.slice(comma + 1).trim() : '';
  const name = fold(comma >= 0 && /^[A-Za-z]{2}$/.test(country) ? text.slice(0, comma) : text);
  const byCountry = comma >= 0 && /^[A-Za-z]{2}$/.test(country) ? country.toUpperCase() : undefined;
  const named = cities.filter((c) => fold(c.name) === name);
  const matches = named.filter((c) => byCountry === undefined || c.country.toUpperCase() === byCountry);
  if (matches.length === 1) return matches[0]!.key;
  const list = (cs: readonly KnownCity[]) => cs.slice(0, 12).map(describeKnownCity).join('; ');
  if (matches.length > 1) {
    const countries = new Set(matches.map((c) => c.country));
    const hint =
      countries.size > 1 && byCountry === undefined
        ? ` or add the country (${JSON.stringify(`${matches[0]!.name}, ${matches[0]!.country}`)})`
        : '';
    throw new CityNameError(
      `${JSON.stringify(text)} is ambiguous: ${list(matches)} — give the geoname id${hint}`,
    );
  }
  const similar =
    named.length > 0
      ? named
      : name === ''
        ? []
        : cities.filter(
            (c) => fold(c.name).includes(name) || (name.length >= 4 && name.includes(fold(c.name))),
          );
  throw new CityNameError(
    `no city named ${JSON.stringify(text)} among the ${cities.length} cities this baseline knows` +
      (similar.length > 0
        ? `; did you mean ${list(similar)}?`
        : ': give its MaxMind geoname id (e.g. 2988507 for Paris, FR)'),
  );
}
