/**
 * BaselineStore on a local SQLite file, for the CLI, local runs and tests.
 *
 * Every updatePartition is one `BEGIN IMMEDIATE` transaction (read, apply, write), so it is atomic and
 * serialised against every other connection to the file, including other processes; inside `batch` it is a
 * savepoint of the batch's one transaction. That is stronger than
 * Table Storage (optimistic, per row, chunks of 100), which is fine: callers must be written for the weaker one.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

import { assertValidKeys, computeChanges } from './entity.js';
import type { BaselineStore, Entity, PartitionUpdate, TableName } from './store.js';

/** How long a writer waits for another connection's transaction before failing with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/**
 * Connection settings, applied in this order on every open.
 * - busy_timeout first, so the following statements wait for a concurrent opener instead of failing;
 * - WAL: readers never block the writer and a commit is one append to the log;
 * - synchronous = FULL: in WAL mode the log is fsynced at every commit, so a committed update survives a power
 *   loss or OS crash, not only a process crash (NORMAL may lose the last commits on power loss).
 */
export const SQLITE_PRAGMAS: readonly string[] = [
  `busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`,
  'journal_mode = WAL',
  'synchronous = FULL',
];

/** WITHOUT ROWID: rows are clustered by (tbl, pk, rk), so a partition is one contiguous range of the B-tree. */
export const SQLITE_SCHEMA = `CREATE TABLE IF NOT EXISTS rows (
  tbl TEXT NOT NULL,
  pk TEXT NOT NULL,
  rk TEXT NOT NULL,
  data TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (tbl, pk, rk)
) WITHOUT ROWID`;

/** What the connection actually runs with (PRAGMA answers), for diagnostics and tests. */
export interface SqliteDurability {
  journalMode: string;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA */
  synchronous: number;
  busyTimeoutMs: number;
}

interface DataRow {
  rk: string;
  data: string;
}

export class SqliteStore implements BaselineStore {
  private readonly selectPartition: Database.Statement<[string, string], DataRow>;
  private readonly selectRow: Database.Statement<[string, string, string], DataRow>;
  private readonly upsertRow: Database.Statement<[string, string, string, string]>;
  private readonly deleteRow: Database.Statement<[string, string, string]>;
  private readonly selectPartitions: Database.Statement<[string], { pk: string }>;

  private constructor(private readonly db: Database.Database) {
    this.selectPartition = db.prepare('SELECT rk, data FROM rows WHERE tbl = ? AND pk = ?');
    this.selectRow = db.prepare('SELECT rk, data FROM rows WHERE tbl = ? AND pk = ? AND rk = ?');
    // version counts writes of a row; nothing relies on it for concurrency (transactions do that), it only
    // makes "was this row rewritten?" answerable when debugging a local state file.
    this.upsertRow = db.prepare(
      `INSERT INTO rows (tbl, pk, rk, data, version) VALUES (?, ?, ?, ?, 1)
       ON CONFLICT (tbl, pk, rk) DO UPDATE SET data = excluded.data, version = rows.version + 1`,
    );
    this.deleteRow = db.prepare('DELETE FROM rows WHERE tbl = ? AND pk = ? AND rk = ?');
    this.selectPartitions = db.prepare('SELECT DISTINCT pk FROM rows WHERE tbl = ?');
  }

  /**
   * Opens (creating if needed, parent directories included) a state file, or `':memory:'`.
   * Synchronous because better-sqlite3 is; a busy file makes it wait up to SQLITE_BUSY_TIMEOUT_MS.
   */
  static open(file: string): SqliteStore {
    if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const db = new Database(file);
    try {
      for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
      db.exec(SQLITE_SCHEMA);
      return new SqliteStore(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Opens `${dir}/state.sqlite`, creating the directory. */
  static openDirectory(dir: string): SqliteStore {
    return SqliteStore.open(path.join(dir, 'state.sqlite'));
  }

  durability(): SqliteDurability {
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
      busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
    };
  }

  readPartition(table: TableName, partition: string): Promise<Map<string, Entity>> {
    return run(() => {
      assertValidKeys(table, partition, []);
      return this.readAll(table, partition);
    });
  }

  readRows(table: TableName, partition: string, rowKeys: readonly string[]): Promise<Map<string, Entity>> {
    return run(() => {
      assertValidKeys(table, partition, rowKeys);
      return this.readSome(table, partition, rowKeys);
    });
  }

  updatePartition(table: TableName, partition: string, apply: PartitionUpdate): Promise<void> {
    return run(() => {
      assertValidKeys(table, partition, []);
      this.transact(table, partition, () => this.readAll(table, partition), apply);
    });
  }

  updateRows(
    table: TableName,
    partition: string,
    rowKeys: readonly string[],
    apply: PartitionUpdate,
  ): Promise<void> {
    return run(() => {
      assertValidKeys(table, partition, rowKeys);
      this.transact(
        table,
        partition,
        () => this.readSome(table, partition, rowKeys),
        apply,
        new Set(rowKeys),
      );
    });
  }

  listPartitions(table: TableName): Promise<string[]> {
    return run(() => this.selectPartitions.all(table).map((r) => r.pk));
  }

  /**
   * One `BEGIN IMMEDIATE` transaction around all of `fn` (see BaselineStore.batch): each update inside runs in a
   * savepoint, and only the final COMMIT is made durable (one fsync instead of one per update). A rejection of
   * `fn` rolls everything back. The write lock is held until `fn` settles: other connections wait (up to
   * SQLITE_BUSY_TIMEOUT_MS), so `fn` should be one run, not a long-lived task.
   */
  async batch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.db.inTransaction) return fn();
    this.db.prepare('BEGIN IMMEDIATE').run();
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (this.db.inTransaction) this.db.prepare('ROLLBACK').run();
      throw err;
    }
    if (this.db.inTransaction) this.db.prepare('COMMIT').run();
    return result;
  }

  close(): Promise<void> {
    return run(() => {
      // better-sqlite3's close is idempotent; on the last connection SQLite checkpoints and removes the WAL.
      this.db.close();
    });
  }

  private transact(
    table: TableName,
    partition: string,
    read: () => Map<string, Entity>,
    apply: PartitionUpdate,
    allowed?: ReadonlySet<string>,
  ): void {
    const body = this.db.transaction(() => {
      const changes = computeChanges(table, partition, read(), apply, allowed);
      for (const [rowKey, entity] of changes) {
        if (entity === null) this.deleteRow.run(table, partition, rowKey);
        else this.upsertRow.run(table, partition, rowKey, JSON.stringify(entity));
      }
    });
    try {
      // IMMEDIATE takes the write lock before reading: two processes can never both read the old value.
      body.immediate();
    } catch (err) {
      if (err instanceof Database.SqliteError) {
        throw new Error(`SQLite update of ${table}/${JSON.stringify(partition)} failed: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  private readAll(table: TableName, partition: string): Map<string, Entity> {
    return toMap(this.selectPartition.all(table, partition));
  }

  private readSome(table: TableName, partition: string, rowKeys: readonly string[]): Map<string, Entity> {
    const found: DataRow[] = [];
    for (const rowKey of new Set(rowKeys)) {
      const row = this.selectRow.get(table, partition, rowKey);
      if (row !== undefined) found.push(row);
    }
    return toMap(found);
  }
}

function toMap(rows: readonly DataRow[]): Map<string, Entity> {
  return new Map(rows.map((r) => [r.rk, JSON.parse(r.data) as Entity]));
}

/** Runs synchronous work behind the async interface, turning a throw into a rejection. */
function run<T>(work: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(work()));
}
