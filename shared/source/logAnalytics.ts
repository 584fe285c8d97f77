import { readFile } from 'node:fs/promises';

import {
  type LogsErrorInfo,
  type LogsQueryClient,
  type LogsQueryResult,
  LogsQueryResultStatus,
  type LogsTable,
} from '@azure/monitor-query-logs';

import { canonicalStatus } from '../activity/normalise.js';
import type { ShardShare } from '../pipeline/shard.js';
import { type EventGroup, type EventSource, MAX_GROUP_LIST } from '../pipeline/types.js';
import { BudgetExceededError, RunBudget, sleepWithin } from '../run/budget.js';
import { installAnswerStreaming, withStreamedAnswer } from './answerStream.js';
import {
  cellNumber,
  type Cursor,
  GROUP_KEY_LIMIT,
  GroupBuilder,
  StreamedGroups,
  stringPool,
} from './groups.js';

// The result's columns and their mapping to groups live in groups.ts; re-exported for the code that imports them here.
export { type Cursor, RESULT_COLUMNS, rowsToGroups } from './groups.js';

/**
 * Reads Activity Log operations from a Log Analytics workspace (the AzureActivity table) with the query in
 * activity.kql, which aggregates per (operation, caller IP, caller, hour) inside the service.
 *
 * Completeness matters more than speed: a window is returned only when every query for it succeeded in full.
 * A result that is, or may be, truncated is re-read in two halves; anything else incomplete throws
 * IncompleteWindowError so the run stops without moving its checkpoint.
 */

const HOUR_MS = 3_600_000;
/** Smallest window the reader splits into; a window this small that is still too big is reported incomplete. */
const MIN_WINDOW_MS = 60_000;
/** Splits one read may make before it gives up (a persistent engine error must not fan out without end). */
const MAX_SPLITS_PER_READ = 256;
/** The service's own limit on records in one result; maxRows must stay below it (`take maxRows + 1`). */
const SERVICE_MAX_ROWS = 500_000;
/** The service's own limit on the size of one result (64 MB). */
const SERVICE_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_ROWS = 400_000;
/**
 * Default cap on the estimated size of one result. The service's 64 MB limit measures its own encoding and
 * every row carries up to 40 ids, so the reader stays at well under half of it.
 */
const DEFAULT_MAX_BYTES = 24 * 1024 * 1024;
/** Budget of a read when the caller gives none. */
const DEFAULT_READ_BUDGET_MS = 10 * 60_000;
const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_RETRY_BASE_MS = 2_000;
const MAX_RETRY_DELAY_MS = 60_000;
/** Category and status names: the settings already validate them as letters only; so does buildQuery. */
const NAME = /^[A-Za-z]{1,64}$/;
const MAX_NAMES = 64;
/** Both vocabularies of ActivityStatusValue: the current one (Success, Start) and the older (Succeeded, Started). */
const STATUS_WORDS = [
  'Start',
  'Started',
  'Accept',
  'Accepted',
  'Success',
  'Succeeded',
  'Failure',
  'Failed',
  'Fail',
];
/** Datetimes the query header can print: 1970 to 9999 (datetime() takes four-digit years). */
const MAX_TIME_MS = Date.UTC(10000, 0, 1) - 1;

export interface QueryParameters {
  /** Window [startMs, endMs), epoch milliseconds. */
  startMs: number;
  endMs: number;
  /** CategoryValue names to keep (letters only); empty: all categories. */
  categories?: readonly string[];
  /** Status names to keep (letters only, either vocabulary); empty: all statuses. */
  statuses?: readonly string[];
  /** The query returns at most maxRows + 1 groups; more than maxRows means the window must be split. */
  maxRows?: number;
  /** Estimated result size at which the query stops returning groups (then the window must be split). */
  maxBytes?: number;
  /**
   * Groups are split by time slots of this many minutes (a divisor of 60). Default 60: one slot per hour, which
   * is what the detector reads; the backtest asks for the timer's slots to replay every run from one download.
   */
  slotMinutes?: number;
  /** A queue-mode shard's share: only the groups of its operations (shardOf in shared/pipeline/shard.ts). */
  shard?: ShardShare;
  /** Read on after a cut answer: only groups at or after this (Slot, GroupKey) in the answer's order. */
  resume?: Cursor;
}

/** Shard counts the query accepts (UC_SHARD_COUNT is far below). */
const MAX_SHARDS = 1024;

/** Slot sizes the query accepts: whole minutes that divide an hour. */
export function checkSlotMinutes(minutes: number): void {
  if (!Number.isSafeInteger(minutes) || minutes < 1 || 60 % minutes !== 0)
    throw new RangeError(`slotMinutes must be a whole number of minutes dividing 60, got ${minutes}`);
}

function checkTime(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_TIME_MS) {
    throw new RangeError(`${name} must be an integer number of milliseconds from 1970 to 9999, got ${ms}`);
  }
}

function checkNames(what: string, names: readonly string[]): void {
  if (names.length > MAX_NAMES)
    throw new RangeError(`at most ${MAX_NAMES} ${what} names, got ${names.length}`);
  for (const n of names as readonly unknown[]) {
    if (typeof n !== 'string' || !NAME.test(n)) {
      throw new RangeError(
        `${what} name ${JSON.stringify(n)} rejected: only letters (A-Z, a-z), 1 to 64 of them, are allowed`,
      );
    }
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** Status names and their synonyms in the other vocabulary (`Succeeded` also keeps `Success` rows). */
function withSynonyms(statuses: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (s: string): void => {
    if (!seen.has(s.toLowerCase())) {
      seen.add(s.toLowerCase());
      out.push(s);
    }
  };
  for (const s of statuses) {
    add(s);
    const canonical = canonicalStatus(s);
    for (const w of STATUS_WORDS) if (canonicalStatus(w) === canonical) add(w);
  }
  return out;
}

const kqlDatetime = (ms: number): string => `datetime(${new Date(ms).toISOString()})`;

/**
 * The query text for one window: a generated `let` header followed by the template (activity.kql).
 * Nothing is pasted as free text: datetimes are printed from validated numbers, lists are JSON arrays of
 * names re-validated here as letters only, numbers are validated integers. Anything else throws.
 */
export function buildQuery(kqlTemplate: string, p: QueryParameters): string {
  checkTime('startMs', p.startMs);
  checkTime('endMs', p.endMs);
  if (p.endMs <= p.startMs) throw new RangeError(`empty window: endMs ${p.endMs} <= startMs ${p.startMs}`);
  const categories = p.categories ?? [];
  const statuses = p.statuses ?? [];
  checkNames('category', categories);
  checkNames('status', statuses);
  const maxRows = p.maxRows ?? DEFAULT_MAX_ROWS;
  const maxBytes = p.maxBytes ?? DEFAULT_MAX_BYTES;
  checkInteger('maxRows', maxRows, 1, SERVICE_MAX_ROWS - 1);
  checkInteger('maxBytes', maxBytes, 1, SERVICE_MAX_BYTES);
  const slotMinutes = p.slotMinutes ?? 60;
  checkSlotMinutes(slotMinutes);
  const statusList = withSynonyms(statuses);
  const shard = p.shard ?? { index: 0, count: 1 };
  checkInteger('shard count', shard.count, 1, MAX_SHARDS);
  checkInteger('shard index', shard.index, 0, shard.count - 1);
  const resume = p.resume ?? { slotMs: p.startMs, key: 0 };
  checkTime('resume slot', resume.slotMs);
  checkInteger('resume key', resume.key, 0, GROUP_KEY_LIMIT - 1);
  const header = [
    `let windowStart = ${kqlDatetime(p.startMs)};`,
    `let windowEnd = ${kqlDatetime(p.endMs)};`,
    `let filterCategories = ${categories.length > 0};`,
    `let categories = dynamic(${JSON.stringify(categories)});`,
    `let filterStatuses = ${statusList.length > 0};`,
    `let statuses = dynamic(${JSON.stringify(statusList)});`,
    `let maxRows = ${maxRows};`,
    `let maxBytes = ${maxBytes};`,
    `let slotSize = ${slotMinutes}m;`,
    `let shardCount = ${shard.count};`,
    `let shardIndex = ${shard.index};`,
    `let resume = ${p.resume !== undefined};`,
    `let resumeSlot = ${kqlDatetime(resume.slotMs)};`,
    `let resumeKey = ${resume.key};`,
  ];
  return `${header.join('\n')}\n${kqlTemplate}`;
}

let templateCache: Promise<string> | undefined;

/** activity.kql, next to this module (the build copies it to dist/shared/source/). */
export function loadActivityQuery(): Promise<string> {
  templateCache ??= readFile(new URL('./activity.kql', import.meta.url), 'utf8').catch((e: unknown) => {
    templateCache = undefined;
    throw e;
  });
  return templateCache;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * A window whose result came back incomplete for a reason other than its size (a partial failure the service
 * reported, or a result still too large at the smallest window). The caller must not checkpoint past it.
 */
export class IncompleteWindowError extends Error {
  constructor(
    readonly workspaceId: string,
    readonly startMs: number,
    readonly endMs: number,
    readonly code: string,
    detail: string,
  ) {
    super(
      `Log Analytics returned an incomplete result for workspace ${workspaceId}, window ` +
        `${iso(startMs)} to ${iso(endMs)}: ${code}: ${detail}. The window will be read again by the next run`,
    );
    this.name = 'IncompleteWindowError';
  }
}

/** A query the service refused or kept failing; `statusCode` is the HTTP status when there was one. */
export class LogAnalyticsQueryError extends Error {
  constructor(
    message: string,
    readonly statusCode: number | undefined,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LogAnalyticsQueryError';
  }
}

export interface ReadStats {
  /** HTTP queries sent (every attempt counts). */
  queries: number;
  /** Rows (groups) the service returned, including those of results discarded for a split. */
  rows: number;
  splits: number;
  retries: number;
  durationMs: number;
}

export interface LogAnalyticsSourceOptions {
  client: LogsQueryClient;
  workspaceId: string;
  additionalWorkspaces?: string[];
  categories?: string[];
  statuses?: string[];
  /** The budget of the current run; called once per read. Default: 10 minutes per read. */
  budget?: () => RunBudget;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Groups per query before the window is split; default 400,000 (the service truncates at 500,000). */
  maxRowsPerQuery?: number;
  /** Estimated bytes per query before the window is split; default 24 MiB (the service truncates at 64 MB). */
  maxBytesPerQuery?: number;
  /** Attempts per query for throttling (429), server errors (5xx) and network failures; default 5. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt (with jitter), at most 60 s. Default 2 s. */
  retryBaseMs?: number;
  /** Query text template; default: activity.kql next to this module. */
  queryTemplate?: string;
  /**
   * Split groups by slots of this many milliseconds (whole minutes dividing an hour) and set their `slotMs`.
   * Default: one hour, and groups carry no `slotMs` (what the detector reads).
   */
  slotMs?: number;
}

type Outcome =
  | { kind: 'groups'; groups: EventGroup[] }
  | { kind: 'split'; reason: string }
  /** Cut by the query's limits: the groups before the last key, and that key, where to read on from. */
  | { kind: 'prefix'; reason: string; groups: EventGroup[]; resume: Cursor };

interface RestErrorLike {
  name: 'RestError';
  message: string;
  statusCode?: number;
  code?: string;
  response?: { headers: { get(name: string): string | undefined }; bodyAsText?: string | null };
}

function isRestError(e: unknown): e is RestErrorLike {
  return e instanceof Error && e.name === 'RestError';
}

/** The service's error code and message from a failed response (`{"error":{"code","message"}}`). */
function serviceError(e: RestErrorLike): { code: string; message: string } {
  let code = e.code ?? '';
  let message = e.message;
  const body = e.response?.bodyAsText;
  if (body) {
    try {
      const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
      if (typeof parsed.error?.code === 'string') code = parsed.error.code;
      if (typeof parsed.error?.message === 'string') message = parsed.error.message;
    } catch {
      // not JSON: keep what the client made of it
    }
  }
  return { code: code || 'Unknown', message };
}

function retryAfterMs(e: RestErrorLike, now: number): number {
  const v = e.response?.headers.get('retry-after');
  if (!v) return 0;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}

const isRetryable = (e: RestErrorLike): boolean =>
  e.statusCode === undefined ? e.code === 'REQUEST_SEND_ERROR' : e.statusCode === 429 || e.statusCode >= 500;

/** Every code and message in a partial error, innermost included. */
function errorTexts(err: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 8 || err === null || typeof err !== 'object') return out;
  const o = err as Record<string, unknown>;
  for (const k of ['code', 'message']) if (typeof o[k] === 'string') out.push(o[k]);
  for (const k of ['innererror', 'additionalProperties']) errorTexts(o[k], out, depth + 1);
  if (Array.isArray(o.details)) for (const d of o.details) errorTexts(d, out, depth + 1);
  return out;
}

const LIMIT_TEXT =
  /E_QUERY_RESULT_SET_TOO_LARGE|E_RUNAWAY_QUERY|E_LOW_MEMORY_CONDITION|0x80DA000[137]|result set has exceeded|exceed(?:s|ed)? the (?:set|internal)[^.]*limit|truncat/i;

/**
 * True when a partial error says the result hit a limit that a smaller window avoids. The service reports the
 * result-size limits as `PartialError` → details `EngineError` → innererror `E_QUERY_RESULT_SET_TOO_LARGE`, but
 * this client library keeps only code and message of each detail (it drops the detail's innererror), so an
 * `EngineError` detail with nothing more specific is taken as a limit too: for this one aggregation over one
 * table, the engine's partial failures are resource limits. Splits are bounded (MIN_WINDOW_MS,
 * MAX_SPLITS_PER_READ), so a persistent engine error still ends as IncompleteWindowError.
 */
export function isLimitError(err: LogsErrorInfo): boolean {
  if (errorTexts(err).some((t) => LIMIT_TEXT.test(t))) return true;
  const details = err.details ?? [];
  return details.length > 0 && details.every((d) => d.code === 'EngineError');
}

/** The message of a partial error with whatever detail the client kept: `message (code: message; ...)`. */
function describePartialError(err: LogsErrorInfo): string {
  const inner = errorTexts({ innererror: err.innererror, details: err.details }).filter(
    (t, i, all) => t !== '' && all.indexOf(t) === i,
  );
  return inner.length > 0 ? `${err.message} (${inner.join('; ')})` : err.message;
}

/** Where a window is split: an hour boundary near the middle when it spans 2 h or more, else the middle. */
export function splitPoint(startMs: number, endMs: number): number {
  if (endMs - startMs >= 2 * HOUR_MS) {
    const mid = Math.floor((startMs + endMs) / 2 / HOUR_MS) * HOUR_MS;
    return mid > startMs ? mid : mid + HOUR_MS;
  }
  return startMs + Math.floor((endMs - startMs) / 2);
}

const groupKey = (g: EventGroup): string =>
  `${g.operationKey}\u0000${g.caller}\u0000${g.callerIp}\u0000${g.slotMs ?? g.hourMs}`;

function addBounded(into: string[], values: readonly string[]): void {
  for (const v of values) if (v !== '' && into.length < MAX_GROUP_LIST && !into.includes(v)) into.push(v);
}

/**
 * Adds groups into `into`, merging those with the same key: halves of a split hour, and IPs that differ only
 * by a port. The earliest event's spelling and context win, as in the file pipeline.
 */
export function mergeGroups(into: Map<string, EventGroup>, groups: readonly EventGroup[]): void {
  for (const g of groups) {
    const key = groupKey(g);
    const m = into.get(key);
    if (!m) {
      into.set(key, { ...g, resourceIds: [...g.resourceIds], correlationIds: [...g.correlationIds] });
      continue;
    }
    m.count += g.count;
    if (g.firstMs < m.firstMs) {
      m.firstMs = g.firstMs;
      m.operation = g.operation;
      m.subscriptionId = g.subscriptionId || m.subscriptionId;
      m.resourceGroup = g.resourceGroup || m.resourceGroup;
    }
    m.lastMs = Math.max(m.lastMs, g.lastMs);
    if (m.callerType === 'unknown') m.callerType = g.callerType;
    addBounded(m.resourceIds, g.resourceIds);
    addBounded(m.correlationIds, g.correlationIds);
  }
}

function compareGroups(a: EventGroup, b: EventGroup): number {
  if (a.hourMs !== b.hourMs) return a.hourMs - b.hourMs;
  if ((a.slotMs ?? 0) !== (b.slotMs ?? 0)) return (a.slotMs ?? 0) - (b.slotMs ?? 0);
  for (const k of ['operationKey', 'callerIp', 'caller'] as const) {
    if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  }
  return 0;
}

/** A window still to read, and where in it to read on from (after a cut answer). */
interface Pending {
  s: number;
  e: number;
  resume?: Cursor;
}

/** Index of the answer's primary table. */
function primaryTable(tables: LogsTable[]): number {
  const i = tables.findIndex((x) => x.name === 'PrimaryResult');
  if (tables.length === 0) throw new Error('Log Analytics answered without a result table');
  return i < 0 ? 0 : i;
}

export class LogAnalyticsSource implements EventSource {
  lastRead: ReadStats = { queries: 0, rows: 0, splits: 0, retries: 0, durationMs: 0 };
  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly categories: string[];
  private readonly statuses: string[];
  /** Sub-hour slots asked of the query (minutes), or undefined: whole hours. */
  private readonly slotMinutes: number | undefined;
  private readonly log: (level: 'info' | 'warn' | 'error', msg: string) => void;

  constructor(private readonly opts: LogAnalyticsSourceOptions) {
    this.maxRows = opts.maxRowsPerQuery ?? DEFAULT_MAX_ROWS;
    this.maxBytes = opts.maxBytesPerQuery ?? DEFAULT_MAX_BYTES;
    this.maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.retryBaseMs = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.categories = opts.categories ?? [];
    this.statuses = opts.statuses ?? [];
    if (opts.slotMs !== undefined && opts.slotMs !== HOUR_MS) {
      if (opts.slotMs % 60_000 !== 0)
        throw new RangeError(`slotMs must be whole minutes dividing an hour, got ${opts.slotMs}`);
      checkSlotMinutes(opts.slotMs / 60_000);
      this.slotMinutes = opts.slotMs / 60_000;
    }
    this.log = opts.log ?? (() => undefined);
    checkInteger('maxRowsPerQuery', this.maxRows, 1, SERVICE_MAX_ROWS - 1);
    checkInteger('maxBytesPerQuery', this.maxBytes, 1, SERVICE_MAX_BYTES);
    checkInteger('maxAttempts', this.maxAttempts, 1, 100);
    checkNames('category', this.categories);
    checkNames('status', this.statuses);
    if (!opts.workspaceId) throw new Error('LogAnalyticsSource needs a workspace id (UC_WORKSPACE_ID)');
    // A client without a pipeline (none in production) gives its answers whole, as before.
    const pipeline = (opts.client as Partial<LogsQueryClient>).pipeline;
    if (pipeline) installAnswerStreaming(pipeline);
  }

  /**
   * The window's groups. With `shard`, only that shard's operations, filtered by the service: a shard downloads
   * its share of the window.
   */
  async read(startMs: number, endMs: number, shard?: ShardShare): Promise<EventGroup[]> {
    checkTime('startMs', startMs);
    checkTime('endMs', endMs);
    if (endMs < startMs)
      throw new RangeError(`window ends before it starts: ${iso(startMs)} > ${iso(endMs)}`);
    const stats: ReadStats = { queries: 0, rows: 0, splits: 0, retries: 0, durationMs: 0 };
    this.lastRead = stats;
    if (endMs === startMs) return [];
    const t0 = performance.now();
    try {
      const template = this.opts.queryTemplate ?? (await loadActivityQuery());
      const budget = this.opts.budget?.() ?? new RunBudget(DEFAULT_READ_BUDGET_MS);
      const merged = new Map<string, EventGroup>();
      const pending: Pending[] = [{ s: startMs, e: endMs }];
      const strings = stringPool();
      for (let w = pending.shift(); w !== undefined; w = pending.shift()) {
        const { s, e, resume } = w;
        const outcome = await this.queryWindow(template, w, shard, { budget, stats, strings });
        if (outcome.kind === 'groups') {
          mergeGroups(merged, outcome.groups);
          continue;
        }
        if (outcome.kind === 'prefix' && stats.splits < MAX_SPLITS_PER_READ) {
          // The answer is a prefix in (Hour, Slot, GroupKey) order: keep every group before its last key and
          // read on from that key. Nothing parsed is thrown away; only the groups tied with the key are re-read.
          mergeGroups(merged, outcome.groups);
          stats.splits += 1;
          const next = outcome.resume;
          this.log(
            'warn',
            `Log Analytics: ${outcome.reason}; kept ${outcome.groups.length} groups, reading on from slot ` +
              `${iso(next.slotMs)} key ${next.key} to ${iso(e)}`,
          );
          pending.unshift({ s: Math.max(s, next.slotMs), e, resume: next });
          continue;
        }
        if (e - s < 2 * MIN_WINDOW_MS || stats.splits >= MAX_SPLITS_PER_READ) {
          throw new IncompleteWindowError(
            this.opts.workspaceId,
            s,
            e,
            'ResultTooLarge',
            `${outcome.reason}, and the window cannot be split further ` +
              `(${stats.splits} splits so far; smallest window ${MIN_WINDOW_MS / 1000} s)`,
          );
        }
        const mid = splitPoint(s, e);
        stats.splits += 1;
        this.log('warn', `Log Analytics: ${outcome.reason}; splitting ${iso(s)} to ${iso(e)} at ${iso(mid)}`);
        pending.unshift({ s, e: mid, resume }, { s: mid, e, resume });
      }
      const groups = [...merged.values()].sort(compareGroups);
      this.log(
        'info',
        `Log Analytics: ${groups.length} groups for ${iso(startMs)} to ${iso(endMs)} ` +
          `(${stats.queries} queries, ${stats.rows} rows, ${stats.splits} splits, ${stats.retries} retries)`,
      );
      return groups;
    } finally {
      stats.durationMs = performance.now() - t0;
    }
  }

  /** One window, with retries of transient failures; either its groups or a request to split it. */
  private async queryWindow(
    template: string,
    { s: startMs, e: endMs, resume }: Pending,
    shard: ShardShare | undefined,
    { budget, stats, strings }: { budget: RunBudget; stats: ReadStats; strings: (s: string) => string },
  ): Promise<Outcome> {
    const ws = this.opts.workspaceId;
    const query = buildQuery(template, {
      startMs,
      endMs,
      categories: this.categories,
      statuses: this.statuses,
      maxRows: this.maxRows,
      maxBytes: this.maxBytes,
      ...(this.slotMinutes !== undefined ? { slotMinutes: this.slotMinutes } : {}),
      ...(shard ? { shard } : {}),
      ...(resume ? { resume } : {}),
    });
    const what = `querying Log Analytics workspace ${ws} for ${iso(startMs)} to ${iso(endMs)}`;
    for (let attempt = 1; ; attempt++) {
      const remaining = budget.remainingMs();
      if (remaining <= 0) throw new BudgetExceededError(what);
      stats.queries += 1;
      let result: LogsQueryResult;
      // The answer's rows are mapped to groups as they arrive (answerStream.ts), not buffered whole.
      const streamed = new StreamedGroups(this.slotMinutes !== undefined, strings);
      try {
        result = await withStreamedAnswer(streamed, () =>
          this.opts.client.queryWorkspace(
            ws,
            query,
            // Explicit bounds: the service's timespan is inclusive, the query's filter makes the end exclusive.
            { startTime: new Date(startMs), endTime: new Date(endMs) },
            {
              additionalWorkspaces: this.opts.additionalWorkspaces?.length
                ? this.opts.additionalWorkspaces
                : undefined,
              serverTimeoutInSeconds: Math.max(1, Math.min(600, Math.floor(remaining / 1000))),
              requestOptions: { timeout: Math.min(remaining, 600_000) + 30_000 },
            },
          ),
        );
      } catch (e) {
        if (budget.expired()) throw new BudgetExceededError(what);
        if (!isRestError(e)) {
          throw new LogAnalyticsQueryError(
            `${what} failed before reaching the service: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
            undefined,
            e instanceof Error ? e.name : 'Error',
            { cause: e },
          );
        }
        const { code, message } = serviceError(e);
        if (!isRetryable(e)) throw this.refused(e.statusCode, code, message, e);
        const status = e.statusCode === undefined ? code : `${e.statusCode} ${code}`;
        if (attempt >= this.maxAttempts) {
          throw new LogAnalyticsQueryError(
            `${what} failed ${attempt} times (last: ${status}: ${message})`,
            e.statusCode,
            code,
            { cause: e },
          );
        }
        const backoff = Math.min(MAX_RETRY_DELAY_MS, this.retryBaseMs * 2 ** (attempt - 1));
        const delay = Math.max(
          Math.round(backoff * (0.5 + Math.random() / 2)),
          retryAfterMs(e, budget.now()),
        );
        this.log('warn', `Log Analytics: ${status} (${message}); retry ${attempt} in ${delay} ms`);
        if (!(await sleepWithin(budget, delay)))
          throw new BudgetExceededError(`${what} (waiting to retry ${status})`);
        stats.retries += 1;
        continue;
      }
      return this.outcome(result, streamed, startMs, endMs, stats);
    }
  }

  private outcome(
    result: LogsQueryResult,
    streamed: StreamedGroups,
    startMs: number,
    endMs: number,
    stats: ReadStats,
  ): Outcome {
    const slots = this.slotMinutes !== undefined;
    // The client's tables, or (when the answer was streamed) the groups mapped while it arrived.
    const rowsOf = (tables: LogsTable[], i: number): GroupBuilder =>
      streamed.answer ? streamed.builder(i) : GroupBuilder.of(tables[i]!, slots);
    const onSkip = (why: string) => this.log('warn', `Log Analytics: a group was skipped: ${why}`);
    if (result.status === LogsQueryResultStatus.Success) {
      const table = rowsOf(result.tables, primaryTable(result.tables));
      stats.rows += table.rows;
      const tooBig = this.tooBig(table);
      const resume = tooBig ? table.resumeAt(startMs, endMs) : undefined;
      if (resume) return { kind: 'prefix', reason: tooBig, groups: table.finish(true, onSkip), resume };
      if (tooBig) return { kind: 'split', reason: tooBig };
      return { kind: 'groups', groups: table.finish(false, onSkip) };
    }
    const err = result.partialError;
    const rows = result.partialTables.reduce((n, _, i) => n + rowsOf(result.partialTables, i).rows, 0);
    stats.rows += rows;
    if (rows >= this.maxRows || isLimitError(err)) {
      return {
        kind: 'split',
        reason: `partial result (${rows} rows) cut short by the service: ${err.code}: ${describePartialError(err)}`,
      };
    }
    throw new IncompleteWindowError(
      this.opts.workspaceId,
      startMs,
      endMs,
      err.code || 'PartialError',
      describePartialError(err),
    );
  }

  /** Why a complete answer is still not the whole window (the query's own limits), or '' when it is. */
  private tooBig(table: GroupBuilder): string {
    if (table.rows > this.maxRows) return `more than ${this.maxRows} groups`;
    if (cellNumber(table.lastRunningBytes) > this.maxBytes) {
      return `result larger than ${this.maxBytes} bytes (estimated)`;
    }
    return '';
  }

  private refused(statusCode: number | undefined, code: string, message: string, cause: unknown): Error {
    const ws = this.opts.workspaceId;
    const all = [ws, ...(this.opts.additionalWorkspaces ?? [])].join(', ');
    const service = `(${statusCode ?? '?'} ${code}: ${message})`;
    let text: string;
    switch (statusCode) {
      case 400:
        text =
          `Log Analytics rejected the query for workspace ${ws} ${service}` +
          (/AzureActivity/i.test(message)
            ? ': is the Activity Log sent to this workspace (a diagnostic setting on the subscription)?'
            : '');
        break;
      case 401:
        text =
          `Log Analytics did not accept the token ${service}: the identity's token must be for ` +
          'https://api.loganalytics.io (or the sovereign cloud of UC_LOGS_ENDPOINT) in the workspace tenant';
        break;
      case 403:
        text =
          `Log Analytics denied access ${service}: the Function App's identity needs the Log Analytics Reader ` +
          `role on workspace ${all}`;
        break;
      case 404:
        text = `Log Analytics workspace ${ws} was not found ${service}: UC_WORKSPACE_ID must be the workspace (customer) id`;
        break;
      default:
        text = `Log Analytics refused the query for workspace ${ws} ${service}`;
    }
    return new LogAnalyticsQueryError(text, statusCode, code, { cause });
  }
}
