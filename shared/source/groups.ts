import type { LogsColumn, LogsTable } from '@azure/monitor-query-logs';

import {
  CLAIM,
  classifyCaller,
  normaliseCallerIp,
  oversizedField,
  parseResourceId,
  wellFormed,
} from '../activity/normalise.js';
import { type EventGroup, MAX_GROUP_LIST } from '../pipeline/types.js';
import type { AnswerParser, RowHandler, StreamedQuery } from './answerStream.js';

/** Columns of the query's result, by name, with their Kusto types (test/source/kql.test.ts checks them). */
export const RESULT_COLUMNS = {
  Hour: 'datetime',
  Slot: 'datetime',
  OperationKey: 'string',
  Operation: 'string',
  CallerIpAddress: 'string',
  Caller: 'string',
  FirstTime: 'datetime',
  LastTime: 'datetime',
  EventCount: 'long',
  ResourceIds: 'dynamic',
  CorrelationIds: 'dynamic',
  SubscriptionId: 'string',
  ResourceGroup: 'string',
  IdType: 'string',
  Upn: 'string',
  AppId: 'string',
  ManagedIdentityEvents: 'long',
  PrincipalType: 'string',
  GroupKey: 'long',
  RowBytes: 'long',
  RunningBytes: 'long',
} as const;
type ResultColumn = keyof typeof RESULT_COLUMNS;

const HOUR_MS = 3_600_000;

/** A position in the answer's order: the slot start (epoch ms) and the group's GroupKey (a 50-bit hash). */
export interface Cursor {
  slotMs: number;
  key: number;
}
/** GroupKey is a hash of 50 bits (activity.kql): exact in a JSON number. */
export const GROUP_KEY_LIMIT = 2 ** 50;

export function cellMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Date.parse(v);
  return NaN;
}

function cellText(v: unknown): string {
  if (typeof v === 'string') return wellFormed(v.trim());
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return '';
}

export function cellNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  return NaN;
}

/** A `dynamic` array cell: the client parses JSON text into arrays; text it could not parse stays text. */
function cellList(v: unknown): string[] {
  let value = v;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return [];
    }
  }
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const x of value) {
    const s = cellText(x);
    if (s !== '' && !out.includes(s) && out.length < MAX_GROUP_LIST) out.push(s);
  }
  return out;
}

/**
 * A row as the service sent it, converted as LogsQueryClient converts it (`datetime` text to a Date, `dynamic`
 * text parsed as JSON when it parses), in place.
 */
export function asClientRow(
  row: unknown[],
  dates: readonly number[],
  dynamics: readonly number[],
): unknown[] {
  for (const i of dates) if (typeof row[i] === 'string') row[i] = new Date(row[i]);
  for (const i of dynamics) {
    try {
      if (typeof row[i] === 'string') row[i] = JSON.parse(row[i]);
    } catch {
      // left as is, as the client leaves it
    }
  }
  return row;
}

/**
 * Maps result rows (as the client gives them) to groups one at a time, as they arrive. The rows tied with the
 * latest (Slot, GroupKey) wait in `tail`: a cut answer (by the query's byte or row limit) leaves them to the next
 * query, which may hold more of them. A row that cannot be mapped, and the warnings of skipped rows, are held
 * until `finish`, which only a complete answer reaches: a partial answer is split or reported, never mapped.
 */
export class GroupBuilder {
  rows = 0;
  /** RunningBytes of the last row. */
  lastRunningBytes: unknown;
  private readonly groups: EventGroup[] = [];
  private readonly at: Map<string, number>;
  private tail: unknown[][] = [];
  private tailSlot = NaN;
  private tailKey = NaN;
  private readonly skips: string[] = [];
  private failure: Error | undefined;
  /** With raw columns: the cells pushed rows need converted as the client converts them. */
  private readonly dates: number[] = [];
  private readonly dynamics: number[] = [];

  constructor(
    columns: readonly LogsColumn[],
    /** Set each group's `slotMs` from the Slot column (a read asked for sub-hour slots). */
    private readonly slots = false,
    /** The columns as the service sent them, when pushed rows are too (not converted by the client). */
    raw?: readonly LogsColumn[],
    /**
     * One copy of each repeated text (operations, callers, IPs, subscriptions, resource ids): every row's JSON
     * gives fresh strings, and a run holds the window's groups and observations to its end.
     */
    private readonly strings: (s: string) => string = (s) => s,
  ) {
    this.at = new Map(columns.map((c, i) => [c.name ?? '', i]));
    raw?.forEach((c, i) => {
      if (c.type === 'datetime') this.dates.push(i);
      else if (c.type === 'dynamic') this.dynamics.push(i);
    });
    const missing = (Object.keys(RESULT_COLUMNS) as ResultColumn[]).filter((c) => !this.at.has(c));
    if (missing.length > 0) {
      this.failure = new Error(
        `Log Analytics result lacks column(s) ${missing.join(', ')}: activity.kql and its reader disagree`,
      );
    }
  }

  /** The builder of a whole table the client gave. */
  static of(table: LogsTable, slots = false): GroupBuilder {
    const b = new GroupBuilder(table.columnDescriptors, slots);
    for (const row of table.rows as unknown[][]) b.push(row);
    return b;
  }

  private cell(row: unknown[], name: ResultColumn): unknown {
    return row[this.at.get(name) ?? -1];
  }

  push(row: unknown[]): void {
    if (this.dates.length + this.dynamics.length > 0) asClientRow(row, this.dates, this.dynamics);
    this.rows += 1;
    this.lastRunningBytes = this.cell(row, 'RunningBytes');
    const slotMs = cellMs(this.cell(row, 'Slot'));
    const key = cellNumber(this.cell(row, 'GroupKey'));
    if (slotMs !== this.tailSlot || key !== this.tailKey) {
      for (const r of this.tail) this.map(r);
      this.tail = [];
      this.tailSlot = slotMs;
      this.tailKey = key;
    }
    this.tail.push(row);
  }

  /**
   * Where to read on from when the answer was cut: the last row's (Slot, GroupKey), when it is a valid key of
   * this window and some row before it is whole; else undefined (the window must be split instead).
   */
  resumeAt(startMs: number, endMs: number): Cursor | undefined {
    const slotMs = this.tailSlot;
    const key = this.tailKey;
    const valid =
      this.at.has('Slot') &&
      this.at.has('GroupKey') &&
      Number.isSafeInteger(slotMs) &&
      slotMs < endMs &&
      slotMs > startMs - HOUR_MS &&
      Number.isSafeInteger(key) &&
      key >= 0 &&
      key < GROUP_KEY_LIMIT;
    if (!valid || this.tail.length >= this.rows) return undefined;
    return { slotMs: Math.max(0, slotMs), key };
  }

  /**
   * The groups; with `cut`, without the rows tied with the last key. Reports skipped rows to `onSkip` and throws
   * what a row or the columns could not give.
   */
  finish(cut: boolean, onSkip?: (why: string) => void): EventGroup[] {
    if (!cut) for (const r of this.tail) this.map(r);
    this.tail = [];
    for (const why of this.skips) onSkip?.(why);
    if (this.failure) throw this.failure;
    return this.groups;
  }

  private map(row: unknown[]): void {
    if (this.failure) return;
    try {
      const g = this.group(row);
      if (g !== undefined) this.groups.push(g);
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
    }
  }

  /** One row's group; undefined for a row without operation or IP, or skipped (reported in `skips`). */
  private group(row: unknown[]): EventGroup | undefined {
    const col = (name: ResultColumn): unknown => this.cell(row, name);
    const one = this.strings;
    const callerIp = one(normaliseCallerIp(col('CallerIpAddress')));
    const operationKey = one(cellText(col('OperationKey')));
    if (callerIp === '' || operationKey === '') return undefined;
    const hourMs = cellMs(col('Hour'));
    const firstMs = cellMs(col('FirstTime'));
    const lastMs = cellMs(col('LastTime'));
    const count = cellNumber(col('EventCount'));
    const slotMs = this.slots ? cellMs(col('Slot')) : hourMs;
    if (
      ![hourMs, firstMs, lastMs, count, slotMs].every(Number.isFinite) ||
      slotMs < hourMs ||
      slotMs >= hourMs + HOUR_MS
    ) {
      throw new Error(`Log Analytics result row has an invalid time or count: ${JSON.stringify(row)}`);
    }
    const caller = one(cellText(col('Caller')));
    const operation = one(cellText(col('Operation')) || operationKey);
    const oversized = oversizedField({ operation: operationKey, caller, callerIp });
    if (oversized !== undefined) {
      this.skips.push(oversized);
      return undefined;
    }
    const claims: Record<string, unknown> = {
      [CLAIM.managedIdentityResourceId]: cellNumber(col('ManagedIdentityEvents')) > 0 ? 'present' : '',
      [CLAIM.idType]: cellText(col('IdType')),
      [CLAIM.upn]: cellText(col('Upn')),
      [CLAIM.appId]: cellText(col('AppId')),
    };
    const resourceIds = cellList(col('ResourceIds')).map(one);
    const fromId = parseResourceId(resourceIds[0] ?? '');
    return {
      operation,
      operationKey,
      caller,
      callerType: classifyCaller(caller, claims, { principalType: cellText(col('PrincipalType')) }),
      callerIp,
      hourMs,
      count,
      firstMs,
      lastMs,
      resourceIds,
      correlationIds: cellList(col('CorrelationIds')),
      subscriptionId: one((cellText(col('SubscriptionId')) || fromId.subscriptionId).toLowerCase()),
      resourceGroup: one(cellText(col('ResourceGroup')) || fromId.resourceGroup),
      ...(this.slots ? { slotMs } : {}),
    };
  }
}

/** A function that gives one copy of each distinct text it is given (for one read: then it is dropped). */
export function stringPool(): (s: string) => string {
  const pool = new Map<string, string>();
  return (s) => {
    const had = pool.get(s);
    if (had !== undefined) return had;
    pool.set(s, s);
    return s;
  };
}

/**
 * Maps the result rows by column name; a missing column means the query and this code disagree. A row whose
 * operation, caller or IP is longer than any Azure writes (FIELD_LIMITS) is skipped and reported to `onSkip`:
 * it could not be stored, and would fail every run that reads its window.
 */
export function rowsToGroups(
  table: LogsTable,
  onSkip?: (why: string) => void,
  /** Set each group's `slotMs` from the Slot column (a read asked for sub-hour slots). */
  slots = false,
): EventGroup[] {
  return GroupBuilder.of(table, slots).finish(false, onSkip);
}

/**
 * The groups of one query whose answer is streamed (shared/source/answerStream.ts): each row is converted as the
 * client would convert it and mapped as it arrives. Rows that arrive before their table's columns wait for them.
 */
export class StreamedGroups implements StreamedQuery {
  answer?: AnswerParser;
  private builders: (GroupBuilder | undefined)[] = [];
  private waiting: unknown[][][] = [];

  constructor(
    private readonly slots: boolean,
    /** Shared by the queries of one read (GroupBuilder's `strings`). */
    private readonly strings?: (s: string) => string,
  ) {}

  begin(): RowHandler {
    this.builders = [];
    this.waiting = [];
    return { row: (table, row, fields) => this.row(table, row, fields) };
  }

  /** The builder of table `t` of the answer (every row pushed). */
  builder(t: number): GroupBuilder {
    const columns = this.answer?.tables[t]?.fields.columns;
    return this.builders[t] ?? this.open(t, Array.isArray(columns) ? (columns as LogsColumn[]) : []);
  }

  private row(t: number, row: unknown, fields: Readonly<Record<string, unknown>>): void {
    if (!Array.isArray(row)) throw new TypeError(`row ${row === null ? 'null' : typeof row} is not an array`);
    const b = this.builders[t] ?? (Array.isArray(fields.columns) ? this.open(t, fields.columns) : undefined);
    if (b) b.push(row);
    else (this.waiting[t] ??= []).push(row);
  }

  private open(t: number, columns: readonly LogsColumn[]): GroupBuilder {
    const b = new GroupBuilder(columns, this.slots, columns, this.strings);
    this.builders[t] = b;
    for (const r of this.waiting[t] ?? []) b.push(r);
    this.waiting[t] = [];
    return b;
  }
}
