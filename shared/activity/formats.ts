import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

import { CLAIM, parseResourceId } from './normalise.js';
import type { ActivityEvent } from './types.js';

/**
 * Writers that render events in each supported input format. The demo uses them to produce realistic
 * inputs and the tests use them for round trips, so every writer emits exactly what the reader
 * needs to recover the same `ActivityEvent` (apart from operation casing in the portal CSV).
 */

export type EventSource = Iterable<ActivityEvent> | AsyncIterable<ActivityEvent>;

export interface WriteOptions {
  /** Gzip the output (the reader detects compression from content, so the name need not end in .gz). */
  gzip?: boolean;
}

export interface DiagnosticWriteOptions extends WriteOptions {
  /**
   * true: `{"records":[…]}` wrappers as Event Hub delivers them, one per line; false: one bare
   * record per line as the storage archive (PT1H.json) writes them.
   */
  wrapped: boolean;
  /** Records per wrapper line when wrapped (default 100); ignored when `pretty`. */
  recordsPerWrapper?: number;
  /** Wrapped only: one pretty-printed `{"records":[…]}` document holding every record. */
  pretty?: boolean;
}

type Dict = Record<string, unknown>;

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
/** Flush threshold for generated text: large enough to amortise stream overhead, small enough to stay flat. */
const CHUNK_CHARS = 256 * 1024;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The portal CSV rendering of a UTC time: `4/28/2021, 2:32:14.029 PM`. */
export function formatPortalTime(ms: number): string {
  const d = new Date(ms);
  const h = d.getUTCHours();
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()}, ` +
    `${h % 12 === 0 ? 12 : h % 12}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.` +
    `${pad(d.getUTCMilliseconds(), 3)} ${h < 12 ? 'AM' : 'PM'}`
  );
}

/**
 * JWT claims consistent with the event's caller type. An event carries a single identifier, so for
 * applications it serves as both `appid` and object id: whichever one a reader prefers, it gets the caller.
 */
function claimsFor(ev: ActivityEvent): Dict | null {
  const c: Dict = {};
  const put = (k: string, v: string): void => {
    if (v) c[k] = v;
  };
  switch (ev.callerType) {
    case 'user':
      put(CLAIM.upn, ev.caller);
      put(CLAIM.name, ev.caller);
      // The client app (here the Azure portal); left out without a caller, or it would become the caller.
      if (ev.caller) put(CLAIM.appId, 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c');
      put(CLAIM.idType, 'user');
      break;
    case 'servicePrincipal':
      put(CLAIM.appId, ev.caller);
      put(CLAIM.objectId, ev.caller);
      put(CLAIM.idType, 'app');
      break;
    case 'managedIdentity': {
      const rg = ev.resourceGroup || 'identities';
      put(CLAIM.appId, ev.caller);
      put(CLAIM.objectId, ev.caller);
      put(CLAIM.idType, 'app');
      put(
        CLAIM.managedIdentityResourceId,
        `/subscriptions/${ev.subscriptionId || ZERO_GUID}/resourcegroups/${rg}` +
          `/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${ev.caller || 'identity'}`,
      );
      break;
    }
    case 'unknown':
      return null;
  }
  put(CLAIM.ipAddress, ev.callerIp);
  return c;
}

function authorizationFor(ev: ActivityEvent): Dict {
  const a: Dict = { action: ev.operation, scope: ev.resourceId };
  if (ev.callerType !== 'unknown') {
    a.evidence = {
      role: 'Contributor',
      roleAssignmentScope: `/subscriptions/${ev.subscriptionId || ZERO_GUID}`,
      roleAssignmentId: (ev.correlationId || ZERO_GUID).replace(/-/g, ''),
      roleDefinitionId: 'b24988ac618042a0ab8820f7382dd24c',
      principalId: ev.caller,
      principalType: ev.callerType === 'user' ? 'User' : 'ServicePrincipal',
    };
  }
  return a;
}

function propertiesFor(ev: ActivityEvent): Dict {
  return {
    eventCategory: ev.category,
    entity: ev.resourceId,
    message: ev.operation,
    hierarchy: ev.subscriptionId ? `${ZERO_GUID}/${ev.subscriptionId}` : '',
    // Raw records have no caller field; this is where an unclassifiable caller survives.
    caller: ev.caller,
  };
}

function resourceProvider(operation: string): string {
  const slash = operation.indexOf('/');
  return slash > 0 ? operation.slice(0, slash) : '';
}

/** One AzureActivity row (Log Analytics column names, in the table's column order). */
export function toActivityRow(ev: ActivityEvent): Record<string, unknown> {
  const time = iso(ev.timeMs);
  return {
    TenantId: ZERO_GUID,
    SourceSystem: 'Azure',
    CallerIpAddress: ev.callerIp,
    CategoryValue: ev.category,
    CorrelationId: ev.correlationId,
    Authorization: '',
    Authorization_d: authorizationFor(ev),
    Claims: '',
    Claims_d: claimsFor(ev),
    Level: 'Informational',
    OperationNameValue: ev.operation,
    Properties: '',
    Properties_d: propertiesFor(ev),
    Caller: ev.caller,
    EventDataId: ev.eventDataId,
    EventSubmissionTimestamp: time,
    HTTPRequest: '',
    OperationId: '',
    ResourceGroup: ev.resourceGroup,
    ResourceProviderValue: resourceProvider(ev.operation),
    ActivityStatusValue: ev.status,
    ActivitySubstatusValue: '',
    Hierarchy: '',
    TimeGenerated: time,
    SubscriptionId: ev.subscriptionId,
    OperationName: '',
    ActivityStatus: '',
    ActivitySubstatus: '',
    Category: '',
    ResourceId: '',
    ResourceProvider: '',
    Resource: '',
    Type: 'AzureActivity',
    _ResourceId: ev.resourceId,
  };
}

const DATETIME_COLUMNS = new Set(['TimeGenerated', 'EventSubmissionTimestamp']);
const DYNAMIC_COLUMNS = new Set(['Authorization_d', 'Claims_d', 'Properties_d']);
const ROW_COLUMNS = Object.keys(toActivityRow(placeholderEvent()));

function placeholderEvent(): ActivityEvent {
  return {
    timeMs: 0,
    operation: '',
    operationKey: '',
    caller: '',
    callerType: 'unknown',
    callerIp: '',
    category: '',
    status: '',
    correlationId: '',
    eventDataId: '',
    subscriptionId: '',
    resourceGroup: '',
    resourceId: '',
  };
}

/** One raw diagnostic-settings record (what Event Hub and the storage archive receive). */
export function toDiagnosticRecord(ev: ActivityEvent): Record<string, unknown> {
  const rec: Dict = {
    time: iso(ev.timeMs),
    resourceId: ev.resourceId,
    operationName: ev.operation,
    category: ev.category,
    resultType: ev.status,
    resultSignature: '',
    durationMs: '0',
    callerIpAddress: ev.callerIp,
    correlationId: ev.correlationId,
    identity: { authorization: authorizationFor(ev), claims: claimsFor(ev) ?? {} },
    level: 'Information',
    location: 'global',
    properties: { ...propertiesFor(ev), eventDataId: ev.eventDataId },
  };
  // Raw records carry subscription and resource group only inside resourceId; spell them out only
  // when the resourceId cannot reproduce them, so that such events still survive a round trip.
  const fromId = parseResourceId(ev.resourceId);
  if (fromId.subscriptionId !== ev.subscriptionId) rec.subscriptionId = ev.subscriptionId;
  if (fromId.resourceGroup !== ev.resourceGroup) rec.resourceGroup = ev.resourceGroup;
  return rec;
}

// ---------------------------------------------------------------------------------------------------
// Text generators: each yields the file content in chunks of roughly CHUNK_CHARS.

/** How one format frames its events: text before, per event (by index) and after (given the count). */
interface Layout {
  head: string;
  item: (ev: ActivityEvent, index: number) => string;
  tail: (count: number) => string;
}

async function* render(events: EventSource, layout: Layout, onEvent?: () => void): AsyncGenerator<string> {
  let buf = layout.head;
  let i = 0;
  // A synchronous source is drained without an await per event: that is most of the writing cost.
  if (Symbol.iterator in events) {
    for (const ev of events) {
      onEvent?.();
      buf += layout.item(ev, i++);
      if (buf.length >= CHUNK_CHARS) {
        yield buf;
        buf = '';
      }
    }
  } else {
    for await (const ev of events) {
      onEvent?.();
      buf += layout.item(ev, i++);
      if (buf.length >= CHUNK_CHARS) {
        yield buf;
        buf = '';
      }
    }
  }
  buf += layout.tail(i);
  if (buf) yield buf;
}

const none = (): string => '';

const JSON_LINES: Layout = { head: '', item: (ev) => `${JSON.stringify(toActivityRow(ev))}\n`, tail: none };

function logAnalyticsLayout(): Layout {
  const columns = ROW_COLUMNS.map((name) => ({
    name,
    type: DATETIME_COLUMNS.has(name) ? 'datetime' : DYNAMIC_COLUMNS.has(name) ? 'dynamic' : 'string',
  }));
  return {
    head: `{"tables":[{"name":"PrimaryResult","columns":${JSON.stringify(columns)},"rows":[`,
    item: (ev, i) => {
      const row = toActivityRow(ev);
      const values = ROW_COLUMNS.map((c) => {
        const v = row[c];
        if (DYNAMIC_COLUMNS.has(c)) return v === null ? '' : JSON.stringify(v);
        return v;
      });
      return `${i === 0 ? '\n' : ',\n'}${JSON.stringify(values)}`;
    },
    tail: () => '\n]}]}\n',
  };
}

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v, null, 2);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function portalCsvLayout(): Layout {
  const header = ['$table', ...ROW_COLUMNS.map((c) => (DATETIME_COLUMNS.has(c) ? `${c} [UTC]` : c))];
  return {
    head: `${header.map(csvField).join(',')}\r\n`,
    item: (ev) => {
      const row = toActivityRow(ev);
      row.OperationNameValue = ev.operation.toUpperCase();
      row.ResourceProviderValue = resourceProvider(ev.operation).toUpperCase();
      const fields = ROW_COLUMNS.map((c) => (DATETIME_COLUMNS.has(c) ? formatPortalTime(ev.timeMs) : row[c]));
      return `${['AzureActivity', ...fields].map(csvField).join(',')}\r\n`;
    },
    tail: none,
  };
}

function diagnosticLayout(opts: DiagnosticWriteOptions): Layout {
  if (!opts.wrapped)
    return { head: '', item: (ev) => `${JSON.stringify(toDiagnosticRecord(ev))}\n`, tail: none };
  if (opts.pretty) {
    return {
      head: '{\n  "records": [',
      item: (ev, i) =>
        `${i === 0 ? '\n    ' : ',\n    '}${JSON.stringify(toDiagnosticRecord(ev), null, 2).replace(/\n/g, '\n    ')}`,
      tail: () => '\n  ]\n}\n',
    };
  }
  const per = Math.max(1, opts.recordsPerWrapper ?? 100);
  return {
    head: '',
    item: (ev, i) =>
      `${i % per === 0 ? '{"records":[' : ','}${JSON.stringify(toDiagnosticRecord(ev))}${i % per === per - 1 ? ']}\n' : ''}`,
    tail: (count) => (count % per === 0 ? '' : ']}\n'),
  };
}

/** AzureActivity rows as JSON Lines (dynamic columns as objects, like a KQL export). */
export function jsonLinesChunks(events: EventSource): AsyncGenerator<string> {
  return render(events, JSON_LINES);
}

/** A Log Analytics query API response body; dynamic values as JSON text, as the API sends them. */
export function logAnalyticsResponseChunks(events: EventSource): AsyncGenerator<string> {
  return render(events, logAnalyticsLayout());
}

/**
 * A portal "Export to CSV": `$table` first, datetime headers carrying their zone, US-style UTC times,
 * dynamic columns as pretty-printed (multi-line) JSON, operation names upper-cased as in real data.
 */
export function portalCsvChunks(events: EventSource): AsyncGenerator<string> {
  return render(events, portalCsvLayout());
}

/** Raw diagnostic records: bare JSON Lines, `{"records":[…]}` lines, or one pretty-printed document. */
export function diagnosticRecordsChunks(
  events: EventSource,
  opts: DiagnosticWriteOptions,
): AsyncGenerator<string> {
  return render(events, diagnosticLayout(opts));
}

// ---------------------------------------------------------------------------------------------------
// File writers: stream the chunks with back-pressure (pipeline awaits 'drain'), optionally gzipped.

async function writeFile(
  events: EventSource,
  layout: Layout,
  path: string,
  opts: WriteOptions,
): Promise<number> {
  let count = 0;
  const source = Readable.from(
    render(events, layout, () => count++),
    { objectMode: false },
  );
  const out = createWriteStream(path);
  if (opts.gzip) await pipeline(source, createGzip(), out);
  else await pipeline(source, out);
  return count;
}

/** Writes AzureActivity JSON Lines; resolves to the number of events written. */
export function writeJsonLines(events: EventSource, path: string, opts: WriteOptions = {}): Promise<number> {
  return writeFile(events, JSON_LINES, path, opts);
}

/** Writes a Log Analytics query API response body; resolves to the number of events written. */
export function writeLogAnalyticsResponse(
  events: EventSource,
  path: string,
  opts: WriteOptions = {},
): Promise<number> {
  return writeFile(events, logAnalyticsLayout(), path, opts);
}

/** Writes a portal-style CSV export; resolves to the number of events written. */
export function writePortalCsv(events: EventSource, path: string, opts: WriteOptions = {}): Promise<number> {
  return writeFile(events, portalCsvLayout(), path, opts);
}

/** Writes raw diagnostic-settings records; resolves to the number of events written. */
export function writeDiagnosticRecords(
  events: EventSource,
  path: string,
  opts: DiagnosticWriteOptions,
): Promise<number> {
  return writeFile(events, diagnosticLayout(opts), path, opts);
}
