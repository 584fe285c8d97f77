/**
 * Delivery of alerts from the outbox to the Sentinel table through the Logs Ingestion API.
 *
 * Delivery is at-least-once. An alert leaves the outbox only after the service acknowledged it (HTTP 204), and
 * is marked delivered after the upload returns: a crash (or a store error) between the two, or a run whose
 * budget ran out while a request was in flight, sends the alert again on the next run. Each copy carries the
 * same deterministic AlertId, so Sentinel rules and workbooks dedupe on it
 * (`UnusualCityAlerts_CL | summarize arg_min(TimeGenerated, *) by AlertId`).
 */
import type { LogsIngestionClient } from '@azure/monitor-ingestion';
import { isAggregateLogsUploadError } from '@azure/monitor-ingestion';

import type { Alert } from '../alerts/alert.js';
import { reducedAlert } from '../alerts/fit.js';
import { toRow } from '../alerts/sinks.js';
import type { RunBudget } from '../run/budget.js';
import type { LogFn } from '../run/log.js';
import type { AlertOutbox } from './outbox.js';

export interface UploadResult {
  /** AlertIds the service acknowledged. */
  delivered: string[];
  /** AlertIds not (or not provably) delivered, with a short reason: status and error code, no alert content. */
  failed: { id: string; error: string }[];
}

export interface AlertUploaderOptions {
  /** Chunks (of just under 1 MB each) sent at once (default 5, as the SDK). */
  maxConcurrency?: number;
  /**
   * Extra requests one upload may spend isolating the rows of a rejected chunk (HTTP 400/413: the service refused
   * the content). Halving the chunk until the bad rows are alone costs about 2·log2(rows) requests per bad row and
   * keeps one malformed alert from holding back the others sent with it. Default 32; 0 turns it off.
   */
  maxIsolationRequests?: number;
}

export interface UploadOptions {
  /** Stops the upload; alerts whose delivery was not confirmed are reported failed (they are re-sent later). */
  abortSignal?: AbortSignal;
  log?: LogFn;
}

/** The rows of one failed request, with why it failed. */
interface Failure {
  rows: Record<string, unknown>[];
  cause: unknown;
  /** Overrides the description of `cause`. */
  reason?: string;
}

const DEFAULT_MAX_ISOLATION_REQUESTS = 32;
const DEFAULT_MAX_CONCURRENCY = 5;
/**
 * Bytes of JSON per chunk. The SDK cuts its input into chunks of under 1,000,000 bytes (the service takes 1 MB per
 * request); staying below that means the SDK never cuts ours again, so one SDK call is one request.
 */
export const MAX_CHUNK_BYTES = 950_000;

/** Consecutive rows of at most MAX_CHUNK_BYTES of JSON together (a row larger than that goes alone). */
function chunkRows(rows: Record<string, unknown>[]): Record<string, unknown>[][] {
  const chunks: Record<string, unknown>[][] = [];
  let current: Record<string, unknown>[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = Buffer.byteLength(JSON.stringify(row));
    if (current.length > 0 && bytes + size > MAX_CHUNK_BYTES) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class AlertUploader {
  private readonly maxConcurrency: number;
  private readonly maxIsolationRequests: number;

  constructor(
    private readonly client: LogsIngestionClient,
    /** The DCR's immutable id (`dcr-…`), not its resource id. */
    private readonly dcrImmutableId: string,
    /** The DCR stream declaration, `Custom-<Table>_CL` (ALERT_STREAM). */
    private readonly stream: string,
    options: AlertUploaderOptions = {},
  ) {
    this.maxConcurrency = Math.max(1, options.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY);
    this.maxIsolationRequests = options.maxIsolationRequests ?? DEFAULT_MAX_ISOLATION_REQUESTS;
  }

  /**
   * Sends the alerts as rows of the column file's shape (`toRow`). Never throws for a delivery failure: every
   * alert ends up in `delivered` or `failed` (an alert appearing twice in the input is sent once).
   *
   * The rows are cut into chunks here, below the SDK's own chunk size, so that each SDK call is exactly one
   * request and its outcome is known per chunk. (Given several chunks and an abort, the SDK stops starting new
   * ones without reporting them: they would look delivered.) Chunks still unsent when the signal aborts are
   * reported failed without being sent.
   */
  async upload(alerts: readonly Alert[], options: UploadOptions = {}): Promise<UploadResult> {
    const { abortSignal, log } = options;
    const ids = new Map<Record<string, unknown>, string>();
    const alertOf = new Map<Record<string, unknown>, Alert>();
    const rows: Record<string, unknown>[] = [];
    const seen = new Set<string>();
    for (const alert of alerts) {
      if (seen.has(alert.AlertId)) continue;
      seen.add(alert.AlertId);
      const row = toRow(alert);
      ids.set(row, alert.AlertId);
      alertOf.set(row, alert);
      rows.push(row);
    }
    if (rows.length === 0) return { delivered: [], failed: [] };

    const chunks = chunkRows(rows);
    const budget = { requests: this.maxIsolationRequests };
    const failures: Failure[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < chunks.length) {
        const chunk = chunks[next++]!;
        if (abortSignal?.aborted === true) {
          failures.push({ rows: chunk, cause: undefined, reason: 'not sent (aborted)' });
          continue;
        }
        for (const failure of await this.send(chunk, abortSignal)) {
          const alone =
            isRejectedContent(failure.cause) && failure.rows.length > 1
              ? await this.isolate(failure, budget, abortSignal)
              : [failure];
          for (const f of alone) failures.push(...(await this.resendReduced(f, alertOf, ids, abortSignal)));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.maxConcurrency, chunks.length) }, worker));

    // The SDK hands back the row objects it was given; fall back on the column for safety.
    const idOf = (row: Record<string, unknown>): string => ids.get(row) ?? String(row.AlertId);
    const failed = new Map<string, string>();
    const byReason = new Map<string, { alerts: number; cause: unknown }>();
    for (const f of failures) {
      const reason = f.reason ?? describeError(f.cause);
      for (const row of f.rows) failed.set(idOf(row), reason);
      const entry = byReason.get(reason) ?? { alerts: 0, cause: f.cause };
      entry.alerts += f.rows.length;
      byReason.set(reason, entry);
    }
    for (const [reason, { alerts: count, cause }] of byReason) {
      log?.(
        isRejectedContent(cause) ? 'error' : 'warn',
        `Logs Ingestion did not accept ${count} alert(s): ${reason}${hint(cause)}${detail(cause)}`,
      );
    }
    return {
      delivered: rows.map(idOf).filter((id) => !failed.has(id)),
      failed: rows.map(idOf).flatMap((id) => {
        const error = failed.get(id);
        return error === undefined ? [] : [{ id, error }];
      }),
    };
  }

  /** One SDK upload (one request); the rows that failed, with why (all of them for an error outside the SDK). */
  private async send(rows: Record<string, unknown>[], abortSignal?: AbortSignal): Promise<Failure[]> {
    try {
      await this.client.upload(
        this.dcrImmutableId,
        this.stream,
        rows,
        abortSignal === undefined ? {} : { abortSignal },
      );
      return [];
    } catch (error) {
      // The aggregate's message is useless ("undefined\n}"); its errors say which chunks failed and why.
      if (isAggregateLogsUploadError(error)) {
        return error.errors.map((e) => ({ rows: e.failedLogs, cause: e.cause }));
      }
      return [{ rows, cause: error }];
    }
  }

  /**
   * An alert refused alone as too large (HTTP 413) is sent once more in its reduced form (shared/alerts/fit.ts:
   * the same AlertId, lists cut short) instead of being retried unchanged forever. Other failures are kept.
   */
  private async resendReduced(
    failure: Failure,
    alertOf: ReadonlyMap<Record<string, unknown>, Alert>,
    ids: Map<Record<string, unknown>, string>,
    abortSignal?: AbortSignal,
  ): Promise<Failure[]> {
    const row = failure.rows[0];
    const alert = row === undefined ? undefined : alertOf.get(row);
    if (failure.rows.length !== 1 || statusOf(failure.cause) !== 413 || alert === undefined) return [failure];
    const reduced = toRow(reducedAlert(alert));
    ids.set(reduced, alert.AlertId);
    const again = await this.send([reduced], abortSignal);
    return again.map((f) => ({ ...f, reason: `${describeError(f.cause)} (also in reduced form)` }));
  }

  /** Halves a rejected chunk until the rejected rows are alone (or the request budget is spent). */
  private async isolate(
    failure: Failure,
    budget: { requests: number },
    abortSignal?: AbortSignal,
  ): Promise<Failure[]> {
    const { rows } = failure;
    if (rows.length <= 1 || budget.requests < 2 || abortSignal?.aborted === true) return [failure];
    const middle = Math.ceil(rows.length / 2);
    const failures: Failure[] = [];
    for (const half of [rows.slice(0, middle), rows.slice(middle)]) {
      budget.requests--;
      for (const f of await this.send(half, abortSignal)) {
        failures.push(...(isRejectedContent(f.cause) ? await this.isolate(f, budget, abortSignal) : [f]));
      }
    }
    // Both halves accepted (the chunk was refused as a whole, e.g. for its size): every row is delivered.
    return failures;
  }
}

export interface DeliverOptions {
  /** Stops between batches, and aborts an upload in flight, when spent. */
  budget?: RunBudget;
  /** Alerts per upload (default 200). */
  batchSize?: number;
  log?: LogFn;
}

export interface DeliverResult {
  /** Alerts delivered in this call. */
  delivered: number;
  /** Failed delivery attempts in this call (each alert is tried at most once per call). */
  failed: number;
  /** Alerts still pending afterwards. */
  pending: number;
}

export const DEFAULT_BATCH_SIZE = 200;

/**
 * Sends pending alerts, oldest first, in batches until none are left, the budget is spent, or a batch delivers
 * nothing (the endpoint is down, the identity lacks the role, …: later batches would fail the same way, so the
 * next run tries again). Alerts that fail stay pending with their attempt count bumped and are not tried again
 * in this call; those that succeed are marked delivered. Never throws for delivery failures; store errors
 * propagate (anything already sent is then re-sent next time: at-least-once, deduped by AlertId downstream).
 */
export async function deliverPending(
  outbox: AlertOutbox,
  uploader: AlertUploader,
  options: DeliverOptions = {},
): Promise<DeliverResult> {
  const { budget, log } = options;
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  let delivered = 0;
  let failed = 0;
  let outOfBudget = false;
  const triedAndFailed = new Set<string>();
  for (;;) {
    if (budget?.expired() === true) {
      outOfBudget = true;
      break;
    }
    const batch = await outbox.pending(batchSize, triedAndFailed);
    if (batch.length === 0) break;
    const abortSignal = budget === undefined ? undefined : AbortSignal.timeout(budget.remainingMs());
    const result = await uploader.upload(batch, {
      ...(abortSignal === undefined ? {} : { abortSignal }),
      log,
    });
    // Upload done, not yet recorded: a crash here re-sends this batch next time (at-least-once; the AlertId
    // lets Sentinel dedupe the copies).
    await outbox.markDelivered(result.delivered);
    await outbox.recordFailures(result.failed);
    delivered += result.delivered.length;
    failed += result.failed.length;
    for (const f of result.failed) triedAndFailed.add(f.id);
    if (result.delivered.length === 0) break;
  }
  const pending = await outbox.countPending();
  if (outOfBudget && pending > 0) {
    log?.('warn', 'Run budget spent: alert delivery stopped, the rest stays pending for the next run');
  }
  if (delivered > 0 || failed > 0) {
    log?.(
      failed > 0 ? 'warn' : 'info',
      `Alert delivery: ${delivered} delivered, ${failed} failed, ${pending} pending`,
    );
  }
  return { delivered, failed, pending };
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The service refused the content itself: sending the same rows again cannot succeed. */
function isRejectedContent(error: unknown): boolean {
  const status = statusOf(error);
  return status === 400 || status === 413;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[\w.-]{1,64}$/.test(code) ? code : undefined;
}

/** Status and error code only: stored with the alert and logged, so it must never carry alert content. */
export function describeError(error: unknown): string {
  const status = statusOf(error);
  const code = codeOf(error);
  if (status !== undefined) return `HTTP ${status}${code === undefined ? '' : ` ${code}`}`;
  const name = error instanceof Error ? error.name : typeof error;
  if (name === 'AbortError' || name === 'TimeoutError') return 'aborted';
  return code === undefined ? name : `${name} ${code}`;
}

function hint(error: unknown): string {
  switch (statusOf(error)) {
    case 401:
    case 403:
      return ' (the identity needs the Monitoring Metrics Publisher role on the DCR)';
    case 404:
      return ' (check the DCR immutable id and the endpoint)';
    case 400:
      return ' (rows must match the DCR stream declaration, column names and types included)';
    default:
      return '';
  }
}

/** The service's message, shortened (it describes the problem; it is not stored with the alert). */
function detail(error: unknown): string {
  const message = error instanceof Error ? error.message.replace(/\s+/g, ' ').trim() : '';
  if (message === '') return '';
  return `: ${message.length > 300 ? `${message.slice(0, 299)}…` : message}`;
}
