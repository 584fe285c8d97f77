import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { shardOf, xxh64 } from '../../shared/pipeline/shard.js';
import { evaluateKql, type KqlValue } from './kqlEval.js';
import { analyseKql, securityAlertTable, securityIncidentTable } from './kusto.js';
import { testCertificate } from './tls.js';

/**
 * A local Log Analytics query API (`POST {endpoint}/workspaces/{id}/query`) over https, for the real
 * LogsQueryClient. It answers only the query shared/source/activity.kql makes: the request's query must be a
 * `let` header of the expected shape (read with a strict pattern) followed by activity.kql verbatim. The fake
 * then computes, in JavaScript over its rows, what that query computes in Log Analytics, and answers with a
 * response of the real shape (named, typed columns; datetimes as ISO text; dynamic values as JSON text).
 *
 * It also answers shared/source/verdicts.kql (its `let` header, then the file verbatim) over the Sentinel rows it
 * holds (`incidents`, `securityAlerts`), by evaluating the query itself with test/support/kqlEval.ts after
 * Kusto.Language bound it against the SecurityIncident and SecurityAlert schemas.
 */

/** One AzureActivity row: Log Analytics column names; dynamic columns as objects or JSON text. */
export type AzureActivityRow = Record<string, unknown>;

export interface FakeLogAnalyticsRequest {
  workspace: string;
  /** The body's timespan, as sent (`start/end`), or undefined when the client sent none. */
  timespan: string | undefined;
  query: string;
  /** The body's additional workspaces, as sent. */
  workspaces: string[] | undefined;
  authorization: string | undefined;
  prefer: string | undefined;
  /** HTTP status the fake answered with. */
  status: number;
}

/**
 * partial: 200 with tables and a non-limit `error` (a workspace that could not be read);
 * truncate: 200 with the first half of the rows and the error the service reports for its result limits;
 * 429 (with Retry-After), 500, 403: error responses of the real shape.
 */
export type FakeFailure = 'partial' | 'truncate' | 429 | 500 | 403;

export interface FakeLogAnalytics {
  /** The query API base, including /v1: pass as `endpoint` to LogsQueryClient. */
  endpoint: string;
  /** PEM of the server's certificate: pass as `tlsOptions: { ca }`. */
  ca: string;
  requests: FakeLogAnalyticsRequest[];
  /** The rows the fake answers from (may be replaced between queries). */
  rows: AzureActivityRow[];
  /** SecurityIncident rows (one per change of an incident), for the verdict query; push to add. */
  incidents: Record<string, unknown>[];
  /** SecurityAlert rows, for the verdict query; push to add. */
  securityAlerts: Record<string, unknown>[];
  /** The next `times` query requests fail this way (queued after earlier failures). */
  failNext(kind: FakeFailure, times?: number): void;
  /** Forgets recorded requests and pending failures. */
  reset(): void;
  close(): Promise<void>;
}

export const LOG_ANALYTICS_AUDIENCE = 'https://api.loganalytics.io';
const EXPECTED_AUTHORIZATION = `Bearer test-token:${LOG_ANALYTICS_AUDIENCE}`;
const TEMPLATE_PATH = new URL('../../shared/source/activity.kql', import.meta.url);
const VERDICT_TEMPLATE_PATH = new URL('../../shared/source/verdicts.kql', import.meta.url);
const VERDICT_HEADER =
  /^let ruleId = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";\nlet since = datetime\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\);\n/;
const SENTINEL_SCHEMAS = [securityIncidentTable(), securityAlertTable()];

/** The verdict query's answer over the Sentinel rows: typed columns and rows as the service sends them. */
function answerVerdictQuery(
  query: string,
  incidents: readonly Record<string, unknown>[],
  alerts: readonly Record<string, unknown>[],
): { columns: { name: string; type: string }[]; rows: unknown[][] } {
  const columns = analyseKql(query, { tables: SENTINEL_SCHEMAS }).resultColumns.map(([name, type]) => ({
    name,
    type,
  }));
  const result = evaluateKql(query, {
    schemas: SENTINEL_SCHEMAS,
    data: {
      SecurityIncident: incidents.map((row) => ({ row, ingestedMs: 0 })),
      SecurityAlert: alerts.map((row) => ({ row, ingestedMs: 0 })),
    },
    nowMs: Date.now(),
  });
  const cell = (v: KqlValue | undefined, type: string): unknown =>
    v === undefined || v === null
      ? null
      : type === 'datetime'
        ? new Date(v as number).toISOString()
        : type === 'dynamic'
          ? JSON.stringify(v)
          : v;
  return { columns, rows: result.map((r) => columns.map((c) => cell(r[c.name], c.type))) };
}

/** A closed incident of the rule with one alert, as Sentinel records it in SecurityIncident and SecurityAlert. */
export function sentinelVerdictRows(v: {
  ruleId: string;
  incidentNumber: number;
  classification: string;
  reason?: string;
  comment?: string;
  owner?: string;
  modifiedBy?: string;
  closedMs: number;
  alertId: string;
}): { incident: Record<string, unknown>; alert: Record<string, unknown> } {
  const systemAlertId = `${String(v.incidentNumber).padStart(8, '0')}-0000-4000-8000-${v.alertId.slice(-12)}`;
  const incidentName = `${String(v.incidentNumber).padStart(8, '0')}-1111-4111-8111-${v.alertId.slice(-12)}`;
  const at = new Date(v.closedMs).toISOString();
  return {
    incident: {
      TimeGenerated: at,
      IncidentName: incidentName,
      IncidentNumber: v.incidentNumber,
      Title: 'Unusual city for an Azure operation',
      Status: 'Closed',
      Severity: 'Medium',
      Classification: v.classification,
      ClassificationReason: v.reason ?? '',
      ClassificationComment: v.comment ?? '',
      Owner: { assignedTo: v.owner ?? '', email: '', objectId: '', userPrincipalName: v.owner ?? '' },
      ModifiedBy: v.modifiedBy ?? '',
      LastModifiedTime: at,
      ClosedTime: at,
      AlertIds: [systemAlertId],
      RelatedAnalyticRuleIds: [
        `/subscriptions/0/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws/providers/Microsoft.SecurityInsights/alertRules/${v.ruleId}`,
      ],
      ProviderName: 'Azure Sentinel',
    },
    alert: {
      TimeGenerated: new Date(v.closedMs - 3_600_000).toISOString(),
      SystemAlertId: systemAlertId,
      ProviderName: 'ASI Scheduled Alerts',
      ProductName: 'Azure Sentinel',
      AlertType: v.ruleId,
      ExtendedProperties: JSON.stringify({
        'Custom Details': JSON.stringify({ AlertId: [v.alertId], City: ['somewhere'] }),
        'Analytic Rule Ids': JSON.stringify([v.ruleId]),
      }),
    },
  };
}

const ISO_MS = String.raw`(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)`;
const NAMES = String.raw`(\[(?:"[A-Za-z]+"(?:,"[A-Za-z]+")*)?\])`;
const HEADER = new RegExp(
  '^' +
    [
      String.raw`let windowStart = datetime\(${ISO_MS}\);`,
      String.raw`let windowEnd = datetime\(${ISO_MS}\);`,
      String.raw`let filterCategories = (true|false);`,
      String.raw`let categories = dynamic\(${NAMES}\);`,
      String.raw`let filterStatuses = (true|false);`,
      String.raw`let statuses = dynamic\(${NAMES}\);`,
      String.raw`let maxRows = ([1-9]\d{0,8});`,
      String.raw`let maxBytes = ([1-9]\d{0,9});`,
      String.raw`let slotSize = ([1-9]\d?)m;`,
      String.raw`let shardCount = ([1-9]\d{0,3});`,
      String.raw`let shardIndex = (\d{1,4});`,
      String.raw`let resume = (true|false);`,
      String.raw`let resumeSlot = datetime\(${ISO_MS}\);`,
      String.raw`let resumeKey = (\d{1,16});`,
    ].join('\n') +
    '\n',
);

export interface QueryHeader {
  windowStartMs: number;
  windowEndMs: number;
  filterCategories: boolean;
  categories: string[];
  filterStatuses: boolean;
  statuses: string[];
  maxRows: number;
  maxBytes: number;
  slotMs: number;
  shardCount: number;
  shardIndex: number;
  /** Read on from (resumeSlotMs, resumeKey) in the answer's order; undefined: from the start. */
  resume?: { slotMs: number; key: number };
}

/** The parameters of a query, or a reason it is not the activity.kql query. */
export function parseActivityQuery(query: string, template: string): QueryHeader | string {
  const m = HEADER.exec(query);
  if (!m) return 'the query does not start with the expected let header';
  if (query.slice(m[0].length) !== template) return 'the query after the let header is not activity.kql';
  const [, start, end, fc, cats, fs, stats, maxRows, maxBytes, slotMinutes, sc, si, resume, rSlot, rKey] = m;
  const windowStartMs = Date.parse(start!);
  const windowEndMs = Date.parse(end!);
  if (Number.isNaN(windowStartMs) || Number.isNaN(windowEndMs)) return 'invalid datetime in the header';
  return {
    windowStartMs,
    windowEndMs,
    filterCategories: fc === 'true',
    categories: JSON.parse(cats!) as string[],
    filterStatuses: fs === 'true',
    statuses: JSON.parse(stats!) as string[],
    maxRows: Number(maxRows),
    maxBytes: Number(maxBytes),
    slotMs: Number(slotMinutes) * 60_000,
    shardCount: Number(sc),
    shardIndex: Number(si),
    ...(resume === 'true' ? { resume: { slotMs: Date.parse(rSlot!), key: Number(rKey) } } : {}),
  };
}

const UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
const NAME = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name';
const OID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
const HOUR = 3_600_000;

/** The query's output columns, in order, with their types. */
export const OUTPUT_COLUMNS: [string, string][] = [
  ['Hour', 'datetime'],
  ['Slot', 'datetime'],
  ['OperationKey', 'string'],
  ['Operation', 'string'],
  ['CallerIpAddress', 'string'],
  ['Caller', 'string'],
  ['FirstTime', 'datetime'],
  ['LastTime', 'datetime'],
  ['EventCount', 'long'],
  ['ResourceIds', 'dynamic'],
  ['CorrelationIds', 'dynamic'],
  ['SubscriptionId', 'string'],
  ['ResourceGroup', 'string'],
  ['IdType', 'string'],
  ['Upn', 'string'],
  ['AppId', 'string'],
  ['ManagedIdentityEvents', 'long'],
  ['PrincipalType', 'string'],
  ['GroupKey', 'long'],
  ['RowBytes', 'long'],
  ['RunningBytes', 'long'],
];

/** KQL `tostring()` of a scalar column value ('' for null). */
function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** A dynamic column: ingestion stores JSON text as an object. */
function dyn(v: unknown): Record<string, unknown> | undefined {
  let value = v;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** KQL coalesce() over strings: the first non-empty one. */
const coalesce = (...xs: string[]): string => xs.find((x) => x !== '') ?? '';

function timeMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v; // epoch ms (generated rows, see bench/tenant.ts)
  if (typeof v === 'string') return Date.parse(v);
  return NaN;
}

interface Group {
  hour: number;
  slot: number;
  operationKey: string;
  callerIp: string;
  caller: string;
  first: number;
  firstRow: AzureActivityRow;
  last: number;
  count: number;
  resourceIds: string[];
  correlationIds: string[];
  idType: string;
  upn: string;
  appId: string;
  miEvents: number;
  principalType: string;
}

const pushSet = (set: string[], v: string): void => {
  if (v !== '' && set.length < 20 && !set.includes(v)) set.push(v);
};
const anyIf = (current: string, v: string): string => current || v;

/**
 * What activity.kql returns for these rows and parameters, as response rows (in OUTPUT_COLUMNS order). The rows
 * are read once, in order, so they may be generated lazily (millions of rows need not sit in memory).
 */
export function evaluateActivityQuery(rows: Iterable<AzureActivityRow>, h: QueryHeader): unknown[][] {
  const cats = new Set(h.categories.map((c) => c.toLowerCase()));
  const stats = new Set(h.statuses.map((c) => c.toLowerCase()));
  const groups = new Map<string, Group>();
  for (const r of rows) {
    const t = timeMs(r.TimeGenerated);
    if (!(t >= h.windowStartMs && t < h.windowEndMs)) continue;
    const ip = str(r.CallerIpAddress);
    const op = str(r.OperationNameValue);
    if (ip === '' || op === '') continue;
    if (h.filterCategories && !cats.has(str(r.CategoryValue).toLowerCase())) continue;
    if (h.filterStatuses && !stats.has(str(r.ActivityStatusValue).toLowerCase())) continue;
    const claims = dyn(r.Claims_d) ?? {};
    const evidence = dyn(dyn(r.Authorization_d)?.evidence) ?? {};
    const caller = coalesce(
      str(r.Caller),
      str(claims[UPN]),
      str(claims.upn),
      str(claims[NAME]),
      str(claims.unique_name),
      str(claims[OID]),
      str(claims.oid),
      str(claims.appid),
    );
    const operationKey = op.toLowerCase();
    if (h.shardCount > 1 && shardOf(operationKey, h.shardCount) !== h.shardIndex) continue;
    const hour = Math.floor(t / HOUR) * HOUR;
    // bin(TimeGenerated, slotSize): slots of a divisor of an hour never straddle one.
    const slot = Math.floor(t / h.slotMs) * h.slotMs;
    const key = JSON.stringify([operationKey, ip, caller, hour, slot]);
    let g = groups.get(key);
    if (!g) {
      g = {
        hour,
        slot,
        operationKey,
        callerIp: ip,
        caller,
        first: t,
        firstRow: r,
        last: t,
        count: 0,
        resourceIds: [],
        correlationIds: [],
        idType: '',
        upn: '',
        appId: '',
        miEvents: 0,
        principalType: '',
      };
      groups.set(key, g);
    }
    g.count += 1;
    if (t < g.first) {
      g.first = t;
      g.firstRow = r;
    }
    g.last = Math.max(g.last, t);
    pushSet(g.resourceIds, str(r._ResourceId));
    pushSet(g.correlationIds, str(r.CorrelationId));
    g.idType = anyIf(g.idType, str(claims.idtyp));
    g.upn = anyIf(g.upn, coalesce(str(claims[UPN]), str(claims.upn)));
    g.appId = anyIf(g.appId, str(claims.appid));
    if (str(claims.xms_mirid) !== '') g.miEvents += 1;
    g.principalType = anyIf(g.principalType, str(evidence.principalType));
  }
  const keyed = [...groups.values()].map((g) => ({ g, key: groupKey(g.operationKey, g.callerIp, g.caller) }));
  const ordered = keyed
    .filter(({ g, key }) => afterCursor(h, g.slot, key))
    .sort((a, b) => a.g.hour - b.g.hour || a.g.slot - b.g.slot || a.key - b.key);
  const out: unknown[][] = [];
  let running = 0;
  for (const { g, key } of ordered) {
    const row: unknown[] = [
      iso(g.hour),
      iso(g.slot),
      g.operationKey,
      str(g.firstRow.OperationNameValue),
      g.callerIp,
      g.caller,
      iso(g.first),
      iso(g.last),
      g.count,
      JSON.stringify(g.resourceIds),
      JSON.stringify(g.correlationIds),
      str(g.firstRow.SubscriptionId),
      str(g.firstRow.ResourceGroup),
      g.idType,
      g.upn,
      g.appId,
      g.miEvents,
      g.principalType,
      key,
    ];
    // estimate_data_size(*): the fake's estimate is the row's JSON size.
    const size = Buffer.byteLength(JSON.stringify(row));
    running += size;
    // | where RunningBytes - RowBytes < maxBytes | take maxRows + 1
    if (running - size >= h.maxBytes || out.length >= h.maxRows + 1) break;
    out.push([...row, size, running]);
  }
  return out;
}

/** activity.kql's GroupKey: binary_and(hash_xxhash64(strcat(OperationKey, "\n", CallerIpAddress, "\n", Caller)), 2^50 - 1). */
export const groupKey = (operationKey: string, callerIp: string, caller: string): number =>
  Number(xxh64(`${operationKey}\n${callerIp}\n${caller}`) & GROUP_KEY_MASK);
const GROUP_KEY_MASK = 2n ** 50n - 1n;

/** `not(resume) or Slot > resumeSlot or (Slot == resumeSlot and GroupKey >= resumeKey)` */
export const afterCursor = (h: QueryHeader, slot: number, key: number): boolean =>
  h.resume === undefined || slot > h.resume.slotMs || (slot === h.resume.slotMs && key >= h.resume.key);
const iso = (ms: number): string => new Date(ms).toISOString();

function errorBody(code: string, message: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ error: { code, message, ...extra } });
}

/** The error the service puts beside `tables` when a result hit its size limits (taken from real responses). */
const LIMIT_ERROR = {
  code: 'PartialError',
  message: 'There were some errors when processing your query.',
  details: [
    {
      code: 'EngineError',
      message: 'Something went wrong processing your query on the server.',
      innererror: {
        code: '-2133196797',
        message:
          'The results of this query exceed the set limit of 64000000 bytes, so not all records were returned ' +
          '(E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003, see https://aka.ms/kustoquerylimits for more information ' +
          'and possible solutions).',
        severity: 2,
        severityName: 'Error',
      },
    },
  ],
};

/** A result table of another query: typed columns (Log Analytics type names) and rows as the service sends them. */
export interface OtherQueryResult {
  columns: [string, string][];
  rows: unknown[][];
}

export async function startFakeLogAnalytics(opts: {
  rows: AzureActivityRow[];
  /** Retry-After of simulated 429 answers, in seconds (default 0). */
  retryAfterSeconds?: number;
  /**
   * Computes the result rows for a valid query instead of evaluating it over `rows` (the benchmark serves
   * generated tenants of millions of rows this way, without holding them).
   */
  answer?: (header: QueryHeader) => unknown[][];
  /**
   * Other queries the fake knows (e.g. `unusual-city doctor`'s): the result table for the query text, computed
   * over the fake's rows (and the workspace queried), or undefined for a query it does not know (answered 400).
   */
  other?: (
    query: string,
    rows: readonly AzureActivityRow[],
    workspace: string,
  ) => OtherQueryResult | undefined;
}): Promise<FakeLogAnalytics> {
  const { cert, key } = await testCertificate();
  const template = readFileSync(TEMPLATE_PATH, 'utf8');
  const verdictTemplate = readFileSync(VERDICT_TEMPLATE_PATH, 'utf8');
  const failures: FakeFailure[] = [];
  const requests: FakeLogAnalyticsRequest[] = [];
  const state = { rows: opts.rows };
  const incidents: Record<string, unknown>[] = [];
  const securityAlerts: Record<string, unknown>[] = [];

  const server: Server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const current: { record?: FakeLogAnalyticsRequest } = {};
      const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
        if (current.record) current.record.status = status;
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(body);
      };
      const m = /^\/v1\/workspaces\/([^/?]+)\/query$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) {
        send(
          404,
          errorBody('PathNotFoundError', `The requested path does not exist: ${req.method} ${req.url}`),
        );
        return;
      }
      let body: { query?: unknown; timespan?: unknown; workspaces?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        send(400, errorBody('BadArgumentError', 'The request body is not valid JSON'));
        return;
      }
      const record: FakeLogAnalyticsRequest = {
        workspace: decodeURIComponent(m[1]!),
        timespan: typeof body.timespan === 'string' ? body.timespan : undefined,
        query: typeof body.query === 'string' ? body.query : '',
        workspaces: Array.isArray(body.workspaces) ? (body.workspaces as string[]) : undefined,
        authorization: req.headers.authorization,
        prefer: typeof req.headers.prefer === 'string' ? req.headers.prefer : undefined,
        status: 0,
      };
      current.record = record;
      requests.push(record);
      if (req.headers.authorization !== EXPECTED_AUTHORIZATION) {
        send(
          401,
          errorBody('InvalidTokenError', 'The provided authentication is not valid for this resource'),
        );
        return;
      }
      const failure = failures.shift();
      if (failure === 429) {
        send(429, errorBody('ThrottledError', 'Your request was throttled. Please retry later.'), {
          'retry-after': String(opts.retryAfterSeconds ?? 0),
        });
        return;
      }
      if (failure === 500) {
        send(
          500,
          errorBody('InternalServerError', 'An unexpected error occurred while processing the request'),
        );
        return;
      }
      if (failure === 403) {
        send(
          403,
          errorBody(
            'InsufficientAccessError',
            'The provided credentials have insufficient access to perform the requested operation',
          ),
        );
        return;
      }
      const other = opts.other?.(record.query, state.rows, record.workspace);
      if (other !== undefined) {
        const columns = other.columns.map(([name, type]) => ({ name, type }));
        send(200, JSON.stringify({ tables: [{ name: 'PrimaryResult', columns, rows: other.rows }] }));
        return;
      }
      const verdictHeader = VERDICT_HEADER.exec(record.query);
      if (verdictHeader && record.query.slice(verdictHeader[0].length) === verdictTemplate) {
        const answer = answerVerdictQuery(record.query, incidents, securityAlerts);
        if (failure === 'partial') {
          const table = { name: 'PrimaryResult', ...answer, rows: answer.rows.slice(0, 1) };
          const error = {
            code: 'PartialError',
            message: 'There were some errors when processing your query.',
          };
          send(200, JSON.stringify({ tables: [table], error }));
          return;
        }
        send(200, JSON.stringify({ tables: [{ name: 'PrimaryResult', ...answer }] }));
        return;
      }
      const header = parseActivityQuery(record.query, template);
      if (typeof header === 'string') {
        send(
          400,
          errorBody('BadArgumentError', 'The request had some invalid properties', {
            details: [{ code: 'InvalidQuery', message: header }],
          }),
        );
        return;
      }
      const span = /^([^/]+)\/([^/]+)$/.exec(record.timespan ?? '');
      if (
        !span ||
        Date.parse(span[1]!) !== header.windowStartMs ||
        Date.parse(span[2]!) !== header.windowEndMs
      ) {
        send(
          400,
          errorBody(
            'BadArgumentError',
            `fake: timespan ${String(record.timespan)} is not the query's window ` +
              `${iso(header.windowStartMs)}/${iso(header.windowEndMs)}`,
          ),
        );
        return;
      }
      let rows = opts.answer ? opts.answer(header) : evaluateActivityQuery(state.rows, header);
      let error: unknown;
      if (failure === 'truncate') {
        rows = rows.slice(0, Math.ceil(rows.length / 2));
        error = LIMIT_ERROR;
      } else if (failure === 'partial') {
        const other = record.workspaces?.[0] ?? record.workspace;
        rows = rows.slice(0, Math.ceil(rows.length / 2));
        error = {
          code: 'PartialError',
          message: 'There were some errors when processing your query.',
          details: [
            {
              code: 'InsufficientAccessError',
              message: `The query could not be run on workspace ${other}`,
              resources: [other],
            },
          ],
        };
      }
      const table = {
        name: 'PrimaryResult',
        columns: OUTPUT_COLUMNS.map(([name, type]) => ({ name, type })),
        rows,
      };
      send(200, JSON.stringify(error === undefined ? { tables: [table] } : { tables: [table], error }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `https://127.0.0.1:${port}/v1`,
    ca: cert,
    requests,
    get rows() {
      return state.rows;
    },
    set rows(rows: AzureActivityRow[]) {
      state.rows = rows;
    },
    incidents,
    securityAlerts,
    failNext(kind, times = 1) {
      for (let i = 0; i < times; i++) failures.push(kind);
    },
    reset() {
      requests.length = 0;
      failures.length = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
