/**
 * Isolation: a row the store refuses (our own validation, or the service answering 400/413 for its size or
 * content) is logged, counted and skipped, and the run goes on — one value from the logs must never stop
 * detection for everyone else (the checkpoint moves, the next run does not meet the same wall).
 * Anything else (the service unreachable, throttling, ETag races lost for good) still fails the run: those are
 * transient, and the run is retried from its checkpoint.
 */
import {
  type BaselineStore,
  type Entity,
  InvalidEntityError,
  keyTag,
  type PartitionUpdate,
  type TableName,
} from '../baseline/store.js';

export type RejectLog = (level: 'info' | 'warn' | 'error', message: string) => void;
export interface RejectHandler {
  log?: RejectLog | undefined;
  /** Called once per row (or write) skipped. */
  count: () => void;
}

/** Rejections of one partition in this process after which the warning says it fails repeatedly. */
export const REPEATED_REJECTIONS = 3;
const rejectionsByPartition = new Map<string, number>();

function statusOf(error: unknown): number | undefined {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const status = (e as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return status;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True for a write the store or the service refuses for what it holds (retrying it unchanged fails again). */
export function isRejectedRow(error: unknown): boolean {
  if (error instanceof InvalidEntityError) return true;
  const status = statusOf(error);
  return status === 400 || status === 413;
}

/** A short, stable name for a partition that does not reveal its key (partition keys may be callers). */
export const partitionTag = (table: TableName, partition: string): string => `${table}/${keyTag(partition)}`;

/**
 * Runs one write; when the store refuses it as a rejected row, logs, counts and returns false instead of
 * throwing. Other errors propagate.
 */
export async function isolateWrite(
  table: TableName,
  partition: string,
  write: () => Promise<void>,
  onReject: RejectHandler,
): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (!isRejectedRow(error)) throw error;
    onReject.count();
    const tag = partitionTag(table, partition);
    const times = (rejectionsByPartition.get(tag) ?? 0) + 1;
    rejectionsByPartition.set(tag, times);
    const status = statusOf(error);
    const why =
      error instanceof InvalidEntityError
        ? 'a row the store cannot hold'
        : `HTTP ${status ?? '?'} from the service`;
    onReject.log?.(
      times >= REPEATED_REJECTIONS ? 'error' : 'warn',
      `Skipped a write to ${tag} (${why}); detection goes on without it` +
        (times >= REPEATED_REJECTIONS ? `. This partition failed ${times} times: it fails repeatedly` : ''),
    );
    return false;
  }
}

/**
 * updatePartition (or updateRows, given `rowKeys`) that never fails for a rejected row: when the store refuses
 * the write, each row `apply` changes is written alone, and only the rows refused are skipped (logged and
 * counted). Returns the row keys skipped. `apply` must be pure, as for the store itself.
 */
export async function updateIsolated(
  store: BaselineStore,
  table: TableName,
  partition: string,
  apply: PartitionUpdate,
  onReject: RejectHandler,
  rowKeys?: readonly string[],
): Promise<Set<string>> {
  const update = (fn: PartitionUpdate): Promise<void> =>
    rowKeys === undefined
      ? store.updatePartition(table, partition, fn)
      : store.updateRows(table, partition, rowKeys, fn);
  try {
    await update(apply);
    return new Set();
  } catch (error) {
    if (!isRejectedRow(error)) throw error;
  }
  // One row at a time, each from the partition as stored then: only the rows refused are left out.
  let keys: string[] = [];
  try {
    const current =
      rowKeys === undefined
        ? await store.readPartition(table, partition)
        : await store.readRows(table, partition, rowKeys);
    keys = [...apply(current).keys()];
  } catch (error) {
    if (!isRejectedRow(error)) throw error;
  }
  const skipped = new Set<string>();
  for (const key of keys) {
    const one: PartitionUpdate = (cur) => {
      const changes = apply(cur);
      const out = new Map<string, Entity | null>();
      if (changes.has(key)) out.set(key, changes.get(key) ?? null);
      return out;
    };
    if (!(await isolateWrite(table, partition, () => update(one), onReject))) skipped.add(key);
  }
  if (keys.length === 0) {
    // A partition key no store can hold: the whole write is skipped.
    await isolateWrite(table, partition, () => update(apply), onReject);
  }
  return skipped;
}
