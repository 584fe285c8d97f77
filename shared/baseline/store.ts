/**
 * Persistence for baselines, tenant city counts, the alert ledger and the run checkpoint.
 *
 * The model is Table Storage's: tables of partitions of rows, each row a flat record of scalars.
 * Numbers are always JavaScript numbers (never bigint) and strings are strings; adapters own the mapping.
 * Keys given to the store are *logical* keys (any string); adapters encode them as their backend requires.
 */
import { createHash } from 'node:crypto';

export type Scalar = string | number | boolean;
export type Entity = Readonly<Record<string, Scalar>>;

/**
 * The tables of the detector. Adapters map them to physical names (with a configurable prefix).
 * `outbox` holds alerts waiting for delivery to Sentinel (shared/delivery/outbox.ts).
 */
export type TableName = 'baselines' | 'tenant' | 'alerts' | 'state' | 'outbox';
export const TABLE_NAMES: readonly TableName[] = ['baselines', 'tenant', 'alerts', 'state', 'outbox'];

/**
 * Computes the rows to write from the current rows. Returns only changed rows: a value of `null`
 * deletes the row. It may be called more than once when a concurrent writer wins the race (optimistic
 * concurrency: on an ETag conflict the store re-reads and calls `apply` again), so it must be a pure
 * function of its input. Returning an empty map writes nothing.
 */
export type PartitionUpdate = (current: ReadonlyMap<string, Entity>) => Map<string, Entity | null>;

export interface BaselineStore {
  /** All rows of one partition (one query). */
  readPartition(table: TableName, partition: string): Promise<Map<string, Entity>>;
  /** Some rows of one partition (point reads); missing rows are absent from the result. */
  readRows(table: TableName, partition: string, rowKeys: readonly string[]): Promise<Map<string, Entity>>;
  /**
   * Read-modify-write of a whole partition with optimistic concurrency.
   * Rows are written in transactions of at most 100 (Table Storage's limit). If more than 100 rows change,
   * the chunks are not atomic together; `apply` being idempotent makes a re-run after a crash converge.
   * Gives up after a bounded number of conflicts with an error naming the table and partition.
   */
  updatePartition(table: TableName, partition: string, apply: PartitionUpdate): Promise<void>;
  /** Like updatePartition but only reads (and passes to `apply`) the listed rows; apply may only write those rows. */
  updateRows(
    table: TableName,
    partition: string,
    rowKeys: readonly string[],
    apply: PartitionUpdate,
  ): Promise<void>;
  /** Every partition key of a table, in any order (for tools; not used on the hot path). */
  listPartitions(table: TableName): Promise<string[]>;
  close(): Promise<void>;
  /**
   * Optional: runs `fn` (one detection run's reads and writes) with the backend's grouping, and resolves with its
   * result. Callers must be correct without it (`store.batch?.(fn) ?? fn()`); it only saves work:
   * - SQLite makes all of `fn` one transaction: one commit and one fsync instead of one per update. A failure
   *   inside `fn` rolls every write of `fn` back, which leaves the store as a crash before `fn` would have —
   *   callers already converge from that state (updates are idempotent and re-applied on the next run).
   * - Table Storage has no multi-partition transaction; it remembers each partition `fn` reads (with the ETags)
   *   and lets the first update of that partition start from that read instead of reading it again: one read per
   *   partition per run. Optimistic concurrency is unchanged: a row changed since the read fails the conditional
   *   write, and the update re-reads and re-applies, as it would after any other race.
   * Nested calls run inside the outer one.
   */
  batch?<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * A short, stable name for a logical key in messages: keys are callers and operations (identities), and error
 * messages travel to logs and telemetry. The same key always gives the same tag, so repeats can be told apart.
 */
export const keyTag = (key: string): string =>
  `#${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;

/** Raised when optimistic concurrency keeps losing. */
export class StoreConflictError extends Error {
  constructor(
    readonly table: TableName,
    readonly partition: string,
    readonly attempts: number,
  ) {
    super(
      `Gave up writing ${table}/${keyTag(partition)} after ${attempts} ETag conflicts with concurrent writers`,
    );
    this.name = 'StoreConflictError';
  }
}

/**
 * Raised before anything is written when a key or row cannot be stored faithfully by *every* adapter
 * (e.g. a property name Table Storage rejects). Both adapters enforce the same rules so that SQLite,
 * used locally and in tests, fails exactly where production would.
 */
export class InvalidEntityError extends Error {
  constructor(
    readonly table: TableName,
    readonly partition: string,
    readonly rowKey: string | undefined,
    reason: string,
  ) {
    // Keys by tag: they may be callers (identities), and this message reaches logs and telemetry.
    const where = [partition, ...(rowKey === undefined ? [] : [rowKey])].map(keyTag).join('/');
    super(`Cannot store ${table}/${where}: ${reason}`);
    this.name = 'InvalidEntityError';
  }
}
