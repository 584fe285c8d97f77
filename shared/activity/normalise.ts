import { INPUT_BUDGETS } from '../config/budgets.js';
import type { ActivityEvent, CallerType, SkipReason } from './types.js';

/** Result of normalising one input record: an event, or the reason it had to be skipped. */
export type NormaliseResult =
  { ok: true; event: ActivityEvent } | { ok: false; reason: SkipReason; id?: string; detail?: string };

type Dict = Record<string, unknown>;

/** JWT claim names as they appear in `Claims_d` / `identity.claims`. */
export const CLAIM = {
  upn: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  name: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
  objectId: 'http://schemas.microsoft.com/identity/claims/objectidentifier',
  tenantId: 'http://schemas.microsoft.com/identity/claims/tenantid',
  appId: 'appid',
  idType: 'idtyp',
  ipAddress: 'ipaddr',
  managedIdentityResourceId: 'xms_mirid',
} as const;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATES = /\p{Cs}/gu;

/**
 * The text with lone UTF-16 surrogates (from JSON escapes such as "\ud800") replaced by U+FFFD, as any UTF-8
 * encoder would: no store can key on them, so one such record would otherwise fail every run that reads it.
 */
export function wellFormed(s: string): string {
  return LONE_SURROGATE.test(s) ? s.replace(LONE_SURROGATES, '\uFFFD') : s;
}

/**
 * Longest operation, caller and caller IP accepted (characters). Azure's are far shorter (operation names are
 * provider/type/action paths, callers UPNs or GUIDs, IPs at most 45 characters plus a port or zone); longer
 * values are hostile or corrupt, and would not fit the baseline rows (Table Storage strings hold 32K characters,
 * a city row lists up to 100 callers, a ledger row up to 50 operations). Such records are skipped as
 * 'oversized-field'.
 */
export const FIELD_LIMITS = { operation: 512, caller: 256, callerIp: 256 } as const;
/** Context fields (ids, resource id, group, category, status) are cut to this many characters. */
export const MAX_CONTEXT_LENGTH = 2048;
/**
 * Event times accepted: the Activity Log has none before 2000 or after 2099. Anything else is corrupt and would
 * make a replay simulate centuries of runs (or fail to print the time at all).
 */
export const EARLIEST_EVENT_MS = Date.UTC(2000, 0, 1);
export const LATEST_EVENT_MS = Date.UTC(2100, 0, 1);

/** Why an event's identity fields cannot be used (too long), or undefined. */
export function oversizedField(fields: {
  operation: string;
  caller: string;
  callerIp: string;
}): string | undefined {
  for (const name of ['operation', 'caller', 'callerIp'] as const) {
    const length = fields[name].length;
    if (length > FIELD_LIMITS[name]) {
      return `${name} of ${length} characters (at most ${FIELD_LIMITS[name]})`;
    }
  }
  return undefined;
}

const cut = (s: string): string => (s.length > MAX_CONTEXT_LENGTH ? s.slice(0, MAX_CONTEXT_LENGTH) : s);

/** String content of a scalar cell; numbers are accepted because CSV/JSON producers disagree on ids. */
function text(value: unknown): string {
  if (typeof value === 'string') return wellFormed(value.trim());
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return '';
}

/** Legacy columns (`OperationName`, `Category`, `ActivityStatus`) are either text or `{value, localizedValue}`. */
function nameValue(value: unknown): string {
  if (isDict(value)) return text(value.value) || text(value.localizedValue);
  return text(value);
}

function isAbsent(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

/**
 * True when the JSON text nests deeper than `max` (strings are skipped; the text need not be valid). One pass,
 * no allocation: checked before JSON.parse builds millions of nested arrays.
 */
export function deeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Nesting accepted in a dynamic column's JSON text (INPUT_BUDGETS.jsonDepth). */
const MAX_DYNAMIC_DEPTH = INPUT_BUDGETS.jsonDepth;

/**
 * A Log Analytics `dynamic` value: an object, or JSON text of one (CSV exports and the query API
 * serialise dynamics as text). Unparsable text is treated as absent rather than failing the record:
 * these columns only refine caller classification, they are never required.
 */
export function parseDynamic(value: unknown): Dict | undefined {
  if (isDict(value)) return value;
  if (typeof value !== 'string') return undefined;
  const s = value.trim();
  if (!s.startsWith('{') || deeperThan(s, MAX_DYNAMIC_DEPTH)) return undefined;
  try {
    const parsed: unknown = JSON.parse(s);
    return isDict(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function claim(claims: Dict | undefined, ...names: string[]): string {
  if (!claims) return '';
  for (const n of names) {
    const v = text(claims[n]);
    if (v) return v;
  }
  return '';
}

// Raw JWTs carry the short claim names; Azure rewrites some to the WS-Fed URIs. Accept both.
const upnClaim = (c: Dict | undefined): string => claim(c, CLAIM.upn, 'upn');
const nameClaim = (c: Dict | undefined): string => claim(c, CLAIM.name, 'unique_name');
const oidClaim = (c: Dict | undefined): string => claim(c, CLAIM.objectId, 'oid');

/**
 * Classifies who performed an operation from what the Activity Log records about the caller.
 * Order matters: `xms_mirid` is only issued to managed identities (which are also apps), and `idtyp`
 * is the token's own statement of its identity type, so both outrank heuristics on the caller text.
 */
export function classifyCaller(
  caller: string,
  claims: Record<string, unknown> | undefined,
  authorizationEvidence: Record<string, unknown> | undefined,
): CallerType {
  if (claim(claims, CLAIM.managedIdentityResourceId)) return 'managedIdentity';
  const idType = claim(claims, CLAIM.idType).toLowerCase();
  if (idType === 'user') return 'user';
  if (idType === 'app') return 'servicePrincipal';
  const principalType = text(authorizationEvidence?.principalType).toLowerCase();
  const upn = upnClaim(claims);
  if (upn || principalType === 'user' || caller.includes('@')) return 'user';
  if (claim(claims, CLAIM.appId)) return 'servicePrincipal';
  if (GUID.test(caller) && principalType === 'serviceprincipal') return 'servicePrincipal';
  return 'unknown';
}

/** Caller identity when there is no `Caller` column (raw diagnostic records, or an empty cell). */
/**
 * The Caller the AzureActivity table would show: the UPN (or unique name) for users, the object id for service
 * principals and managed identities — so one principal is one caller whichever format its events came in —
 * and the application id only when a token carries no object id.
 */
function callerFromClaims(claims: Dict | undefined): string {
  return upnClaim(claims) || nameClaim(claims) || oidClaim(claims) || claim(claims, CLAIM.appId);
}

/**
 * Strips a port that some collectors append (`1.2.3.4:5678`, `[2001:db8::1]:443`); a bare IPv6
 * address keeps its colons.
 */
export function normaliseCallerIp(value: unknown): string {
  const s = text(value);
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end > 1) return s.slice(1, end);
  }
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(s);
  return v4WithPort?.[1] ?? s;
}

// Older rows and raw records use the short verbs; normalising lets downstream compare one vocabulary.
const STATUS: Readonly<Record<string, string>> = {
  start: 'Started',
  started: 'Started',
  accept: 'Accepted',
  accepted: 'Accepted',
  success: 'Succeeded',
  succeeded: 'Succeeded',
  failure: 'Failed',
  failed: 'Failed',
  fail: 'Failed',
};

export function canonicalStatus(status: string): string {
  return STATUS[status.toLowerCase()] ?? status;
}

/** Subscription id (lower-cased: GUIDs are case-insensitive, raw records upper-case them) and resource group. */
export function parseResourceId(resourceId: string): { subscriptionId: string; resourceGroup: string } {
  const m = /^\/subscriptions\/([^/]+)(?:\/resourcegroups\/([^/]+))?/i.exec(resourceId);
  return { subscriptionId: m?.[1]?.toLowerCase() ?? '', resourceGroup: m?.[2] ?? '' };
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function utcMs(y: number, mo: number, d: number, h: number, mi: number, s: number, frac: string): number {
  if (mo < 1 || mo > 12 || d < 1 || d > (DAYS_IN_MONTH[mo - 1] ?? 0) || h > 23 || mi > 59 || s > 59) {
    return NaN;
  }
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  // Feb 29 of a non-leap year would silently roll over to March 1.
  return new Date(t).getUTCDate() === d ? t : NaN;
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
// Portal CSV export: `4/28/2021, 2:32:14.029 PM`. 24-hour text without AM/PM is accepted too.
const US = /^(\d{1,2})\/(\d{1,2})\/(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([AP]\.?M\.?)?$/i;

/**
 * Parses the time formats found in Activity Log exports into epoch milliseconds; NaN when the value is
 * present but not a time. Times without a zone are UTC: every Azure export writes UTC.
 */
export function parseActivityTime(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return epochMs(value);
  if (typeof value !== 'string') return NaN;
  const s = value.trim();
  let m = ISO.exec(s);
  if (m) {
    const [, y, mo, d, h, mi, sec, frac, zone] = m;
    const t = utcMs(
      Number(y),
      Number(mo),
      Number(d),
      Number(h ?? 0),
      Number(mi ?? 0),
      Number(sec ?? 0),
      frac ?? '',
    );
    return t - zoneOffsetMs(zone);
  }
  m = US.exec(s);
  if (m) {
    const [, mo, d, y, h, mi, sec, frac, ampm] = m;
    let hour = Number(h);
    if (ampm) {
      if (hour < 1 || hour > 12) return NaN;
      // 12 AM is midnight and 12 PM is noon.
      hour = (hour % 12) + (ampm[0]?.toUpperCase() === 'P' ? 12 : 0);
    }
    return utcMs(Number(y), Number(mo), Number(d), hour, Number(mi), Number(sec ?? 0), frac ?? '');
  }
  if (/^-?\d+(?:\.\d+)?$/.test(s)) return epochMs(Number(s));
  return NaN;
}

/**
 * Epoch numbers come in seconds or milliseconds depending on the producer. 1e11 seconds is the year
 * 5138 while 1e11 milliseconds is 1973, so the magnitude tells them apart for any plausible log.
 */
function epochMs(n: number): number {
  if (!Number.isFinite(n)) return NaN;
  return Math.round(Math.abs(n) < 1e11 ? n * 1000 : n);
}

function zoneOffsetMs(zone: string | undefined): number {
  if (!zone || zone.toUpperCase() === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
}

/** What each format's reader extracts from a record, before normalisation into an ActivityEvent. */
interface Fields extends Pick<
  ActivityEvent,
  | 'operation'
  | 'category'
  | 'status'
  | 'correlationId'
  | 'eventDataId'
  | 'subscriptionId'
  | 'resourceGroup'
  | 'resourceId'
> {
  time: unknown;
  callerColumn: string;
  callerIp: unknown;
  claims: Dict | undefined;
  authorization: Dict | undefined;
  properties: () => Dict | undefined;
}

function lazy<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

function fail(reason: SkipReason, id: string, detail?: string): NormaliseResult {
  const r: { ok: false; reason: SkipReason; id?: string; detail?: string } = { ok: false, reason };
  if (id) r.id = id;
  if (detail) r.detail = detail;
  return r;
}

function preview(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function build(f: Fields): NormaliseResult {
  const id = f.eventDataId || text(f.properties()?.eventDataId) || f.correlationId;
  if (isAbsent(f.time)) return fail('missing-time', id);
  const timeMs = parseActivityTime(f.time);
  if (Number.isNaN(timeMs)) return fail('invalid-time', id, `unparsable time ${preview(f.time)}`);
  if (timeMs < EARLIEST_EVENT_MS || timeMs >= LATEST_EVENT_MS) {
    return fail('invalid-time', id, `time ${preview(f.time)} is not in the years 2000 to 2099`);
  }
  if (!f.operation) return fail('missing-operation', id);

  const caller = f.callerColumn || callerFromClaims(f.claims) || text(f.properties()?.caller);
  const callerIp = normaliseCallerIp(f.callerIp);
  const oversized = oversizedField({ operation: f.operation, caller, callerIp });
  if (oversized !== undefined) return fail('oversized-field', id, oversized);
  const evidence = parseDynamic(f.authorization?.evidence);
  const fromId = f.subscriptionId && f.resourceGroup ? undefined : parseResourceId(f.resourceId);
  return {
    ok: true,
    event: {
      timeMs,
      operation: f.operation,
      operationKey: f.operation.toLowerCase(),
      caller,
      callerType: classifyCaller(caller, f.claims, evidence),
      callerIp,
      category: cut(f.category),
      status: cut(canonicalStatus(f.status)),
      correlationId: cut(f.correlationId),
      eventDataId: cut(f.eventDataId || text(f.properties()?.eventDataId)),
      subscriptionId: cut((f.subscriptionId || fromId?.subscriptionId || '').toLowerCase()),
      resourceGroup: cut(f.resourceGroup || fromId?.resourceGroup || ''),
      resourceId: cut(f.resourceId),
    },
  };
}

/** Normalises one AzureActivity row (Log Analytics column names; JSON Lines, query API or CSV). */
export function normaliseActivityRow(row: Record<string, unknown>): NormaliseResult {
  const properties = lazy(() => parseDynamic(row.Properties_d) ?? parseDynamic(row.Properties));
  return build({
    // EventSubmissionTimestamp is the same instant for Activity Log rows; it rescues exports that
    // projected TimeGenerated away.
    time: isAbsent(row.TimeGenerated) ? row.EventSubmissionTimestamp : row.TimeGenerated,
    operation: text(row.OperationNameValue) || nameValue(row.OperationName),
    callerColumn: text(row.Caller),
    callerIp: row.CallerIpAddress,
    claims: parseDynamic(row.Claims_d) ?? parseDynamic(row.Claims),
    authorization: parseDynamic(row.Authorization_d) ?? parseDynamic(row.Authorization),
    properties,
    category: text(row.CategoryValue) || nameValue(row.Category),
    status: text(row.ActivityStatusValue) || nameValue(row.ActivityStatus),
    correlationId: text(row.CorrelationId),
    eventDataId: text(row.EventDataId),
    subscriptionId: text(row.SubscriptionId),
    resourceGroup: text(row.ResourceGroup),
    resourceId: text(row._ResourceId) || text(row.ResourceId),
  });
}

/** Normalises one raw diagnostic-settings record (Event Hub / storage archive, camelCase keys). */
export function normaliseDiagnosticRecord(rec: Record<string, unknown>): NormaliseResult {
  const identity = parseDynamic(rec.identity);
  const properties = lazy(() => parseDynamic(rec.properties));
  return build({
    time: rec.time,
    operation: nameValue(rec.operationName),
    // Raw records have no caller field; one added by an intermediate pipeline is still honoured.
    callerColumn: text(rec.caller),
    callerIp: rec.callerIpAddress,
    claims: parseDynamic(identity?.claims),
    authorization: parseDynamic(identity?.authorization),
    properties,
    category: nameValue(rec.category),
    status: nameValue(rec.resultType),
    correlationId: text(rec.correlationId),
    eventDataId: text(rec.eventDataId),
    subscriptionId: text(rec.subscriptionId),
    resourceGroup: text(rec.resourceGroup),
    resourceId: text(rec.resourceId),
  });
}
