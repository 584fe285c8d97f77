import { readFile } from 'node:fs/promises';

import { type LogsQueryClient, LogsQueryResultStatus, type LogsTable } from '@azure/monitor-query-logs';

import { ALERT_ID, type SkippedVerdict, type Verdict, verdictFromRecord } from '../pipeline/verdicts.js';

/**
 * Reads the analysts' verdicts back from Sentinel (SecurityIncident joined to SecurityAlert in the workspace)
 * with verdicts.kql, through the same LogsQueryClient as the activity query. A partial result is a warning: what
 * came is kept (a verdict read next run is applied then). Each row is validated; a bad row is counted with its
 * position and skipped.
 */

/** Columns of the query's result, by name, with their Kusto types (test/source/verdicts.test.ts checks them). */
export const VERDICT_COLUMNS = {
  IncidentNumber: 'int',
  IncidentName: 'string',
  Title: 'string',
  Status: 'string',
  Classification: 'string',
  ClassificationReason: 'string',
  ClassificationComment: 'string',
  Owner: 'string',
  ModifiedBy: 'string',
  LastModifiedTime: 'datetime',
  ClosedTime: 'datetime',
  AlertId: 'string',
  AlertTime: 'datetime',
} as const;

/** Datetimes the header can print: 1970 to 9999. */
const MAX_TIME_MS = Date.UTC(10000, 0, 1) - 1;

/** The query text: a generated `let` header (a GUID and a datetime printed from a number) and verdicts.kql. */
export function buildVerdictQuery(template: string, p: { ruleId: string; sinceMs: number }): string {
  if (!ALERT_ID.test(p.ruleId))
    throw new RangeError(
      `ruleId must be a GUID (the analytics rule's name), got ${JSON.stringify(p.ruleId)}`,
    );
  if (!Number.isSafeInteger(p.sinceMs) || p.sinceMs < 0 || p.sinceMs > MAX_TIME_MS)
    throw new RangeError(
      `sinceMs must be an integer number of milliseconds from 1970 to 9999, got ${p.sinceMs}`,
    );
  return (
    `let ruleId = "${p.ruleId.toLowerCase()}";\n` +
    `let since = datetime(${new Date(p.sinceMs).toISOString()});\n` +
    template
  );
}

let templateCache: Promise<string> | undefined;
export function loadVerdictQuery(): Promise<string> {
  templateCache ??= readFile(new URL('./verdicts.kql', import.meta.url), 'utf8').catch((e: unknown) => {
    templateCache = undefined;
    throw e;
  });
  return templateCache;
}

export interface VerdictRead {
  verdicts: Verdict[];
  /** Rows that are not verdicts (0-based position in the result, and why). */
  skipped: SkippedVerdict[];
  /** The service answered with part of the result (the rest is read by a later run). */
  partial: boolean;
}

export interface VerdictSourceOptions {
  client: LogsQueryClient;
  workspaceId: string;
  additionalWorkspaces?: readonly string[];
  /** UC_VERDICT_RULE_ID: the analytics rule whose incidents are read. */
  ruleId: string;
  /** UC_VERDICT_LOOKBACK: incidents closed (recorded) this long before the run. */
  lookbackMs: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Overrides verdicts.kql (tests). */
  queryTemplate?: string;
}

export class VerdictSource {
  constructor(private readonly o: VerdictSourceOptions) {}

  /** The verdicts recorded in [nowMs − lookback, nowMs]. Throws when the query fails (the caller warns). */
  async read(nowMs: number): Promise<VerdictRead> {
    const sinceMs = Math.max(0, nowMs - this.o.lookbackMs);
    const template = this.o.queryTemplate ?? (await loadVerdictQuery());
    const query = buildVerdictQuery(template, { ruleId: this.o.ruleId, sinceMs });
    const result = await this.o.client.queryWorkspace(
      this.o.workspaceId,
      query,
      { startTime: new Date(sinceMs), endTime: new Date(nowMs) },
      {
        additionalWorkspaces: this.o.additionalWorkspaces?.length
          ? [...this.o.additionalWorkspaces]
          : undefined,
        serverTimeoutInSeconds: 120,
      },
    );
    let table: LogsTable | undefined;
    let partial = false;
    if (result.status === LogsQueryResultStatus.Success) table = primary(result.tables);
    else {
      partial = true;
      table = primary(result.partialTables);
      const e = result.partialError;
      this.o.log?.(
        'warn',
        `Verdicts: Log Analytics answered in part (${e.code}: ${e.message}); the ${table?.rows.length ?? 0} row(s) that came are used`,
      );
    }
    return { ...rowsToVerdicts(table), partial };
  }
}

function primary(tables: readonly LogsTable[]): LogsTable | undefined {
  return tables.find((t) => t.name === 'PrimaryResult') ?? tables[0];
}

/** The verdicts of a result table; a row that is not one is skipped with its position. */
export function rowsToVerdicts(table: LogsTable | undefined): {
  verdicts: Verdict[];
  skipped: SkippedVerdict[];
} {
  const verdicts: Verdict[] = [];
  const skipped: SkippedVerdict[] = [];
  if (table === undefined) return { verdicts, skipped };
  const names = table.columnDescriptors.map((c) => c.name ?? '');
  table.rows.forEach((row, position) => {
    const rec: Record<string, unknown> = {};
    names.forEach((n, i) => {
      const v = row[i];
      rec[n] = v instanceof Date ? (Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString()) : v;
    });
    const v = verdictFromRecord(rec);
    if (typeof v === 'string') skipped.push({ position, reason: v });
    else verdicts.push(v);
  });
  return { verdicts, skipped };
}
