/**
 * BaselineStore on Azure Table Storage (production) or Azurite (tests).
 *
 * Concurrency is optimistic and per row: updatePartition reads the partition with ETags, calls `apply`, and writes
 * the changed rows conditionally (update/delete with the ETag read, create failing if the row appeared). When a
 * concurrent writer got there first the service rejects the batch and we re-read and re-apply. Rows `apply` only
 * read are not checked (Table Storage has no partition-level ETag), so an apply should decide each row's new
 * value from that row's current value.
 *
 * Writes go out in entity-group transactions of at most 100 actions; each transaction is atomic, several are not
 * atomic together. Logical keys are encoded with {@link encodeKey}; the logical keys are also stored in the `_pk`
 * and `_rk` properties so that reads never decode (hashed long keys cannot be decoded).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { type NamedKeyCredential, odata, TableClient } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';

import { assertValidKeys, computeChanges } from './entity.js';
import { decodeKey, encodeKey } from './keys.js';
import {
  type BaselineStore,
  type Entity,
  keyTag,
  type PartitionUpdate,
  type Scalar,
  StoreConflictError,
  TABLE_NAMES,
  type TableName,
} from './store.js';
import { forEachProperty, queryRawPages } from './tableQuery.js';
import { type BatchOperation, type BatchValue, entityJson, submitBatch } from './tableTransaction.js';

export interface TableStorageStoreOptions {
  /** `https://{account}.table.core.windows.net`, or Azurite's `http://127.0.0.1:{port}/devstoreaccount1`. */
  endpoint: string;
  credential: TokenCredential | NamedKeyCredential;
  /** Physical tables are `${tablePrefix}Baselines`, `…Tenant`, `…Alerts`, `…State`, `…Outbox`. */
  tablePrefix: string;
  /** Needed for Azurite's plain-HTTP endpoint. */
  allowInsecureConnection?: boolean;
  /** Create missing tables on open (default true). Turn off when the identity may only read/write entities. */
  createTables?: boolean;
  /** Conflicts tolerated per update before StoreConflictError (default 8). */
  maxConflictRetries?: number;
  /** Fault injection for tests; never set in production. */
  testHooks?: TableStorageTestHooks;
}

export interface TableStorageTestHooks {
  /** Awaited before each transaction is sent; throwing simulates a crash between transactions. */
  beforeTransaction?(context: TransactionContext): void | Promise<void>;
}

export interface TransactionContext {
  table: TableName;
  partition: string;
  /** 0 for the first try, +1 per conflict retry. */
  attempt: number;
  /** 0-based index of the transaction within this attempt, out of `count`. */
  index: number;
  count: number;
  /** Actions in this transaction. */
  actions: number;
}

const TABLE_SUFFIXES: Readonly<Record<TableName, string>> = {
  baselines: 'Baselines',
  tenant: 'Tenant',
  alerts: 'Alerts',
  state: 'State',
  outbox: 'Outbox',
};
const LONGEST_SUFFIX = Math.max(...Object.values(TABLE_SUFFIXES).map((s) => s.length));

/** Table Storage's limit per entity-group transaction. */
export const MAX_TRANSACTION_ACTIONS = 100;
/** The service rejects transaction payloads over 4 MiB; stay well below with an estimate. */
const MAX_TRANSACTION_BYTES = 3.5 * 1024 * 1024;
/** Per-action multipart framing (boundaries, request line, headers) on top of the entity's JSON. */
const ACTION_OVERHEAD_BYTES = 600;
const DEFAULT_MAX_CONFLICT_RETRIES = 8;
const READ_CONCURRENCY = 16;

interface StoredRow {
  entity: Entity;
  /** The physical RowKey, as stored (rows written by other tools may not use our encoding). */
  rowKey: string;
  etag: string;
}

interface PlannedAction {
  action: BatchOperation;
  bytes: number;
}

type RawEntity = Record<string, unknown> & { etag: string; partitionKey?: string; rowKey?: string };
export class TableStorageStore implements BaselineStore {
  private conflicts = 0;
  private closed = false;
  /**
   * Inside `batch`: the partitions read so far (rows with ETags), by table and partition. The first update of a
   * partition starts from that read instead of reading it again.
   */
  private readonly reads = new AsyncLocalStorage<Map<string, Map<string, StoredRow>>>();

  private constructor(
    private readonly clients: Readonly<Record<TableName, TableClient>>,
    /** Physical table names, for tools and error messages. */
    readonly tableNames: Readonly<Record<TableName, string>>,
    private readonly maxConflictRetries: number,
    private readonly hooks: TableStorageTestHooks | undefined,
    private readonly allowInsecureConnection = false,
  ) {}

  /** Conflicts this instance has retried (re-read and re-applied) since it was opened. */
  get conflictRetries(): number {
    return this.conflicts;
  }

  static async open(options: TableStorageStoreOptions): Promise<TableStorageStore> {
    const { endpoint, credential, tablePrefix } = options;
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(tablePrefix) || tablePrefix.length + LONGEST_SUFFIX > 63) {
      throw new Error(
        `Invalid tablePrefix ${JSON.stringify(tablePrefix)}: Table names must be alphanumeric, start with a ` +
          `letter and be at most 63 characters, so the prefix must match [A-Za-z][A-Za-z0-9]* and be at most ` +
          `${63 - LONGEST_SUFFIX} characters long`,
      );
    }
    const maxConflictRetries = options.maxConflictRetries ?? DEFAULT_MAX_CONFLICT_RETRIES;
    if (!Number.isInteger(maxConflictRetries) || maxConflictRetries < 0) {
      throw new Error(`maxConflictRetries must be a non-negative integer, got ${maxConflictRetries}`);
    }
    try {
      new URL(endpoint);
    } catch {
      throw new Error(`Invalid Table Storage endpoint ${JSON.stringify(endpoint)}: not an absolute URL`);
    }

    const clientOptions = { allowInsecureConnection: options.allowInsecureConnection ?? false };
    const tableNames = {} as Record<TableName, string>;
    const clients = {} as Record<TableName, TableClient>;
    for (const table of TABLE_NAMES) {
      const name = tablePrefix + TABLE_SUFFIXES[table];
      // The constructor is overloaded per credential kind, so a union has to be narrowed first.
      const client =
        'getToken' in credential
          ? new TableClient(endpoint, name, credential, clientOptions)
          : new TableClient(endpoint, name, credential, clientOptions);
      tableNames[table] = name;
      clients[table] = client;
    }
    if (options.createTables ?? true) {
      await Promise.all(TABLE_NAMES.map((table) => createTable(clients[table], tableNames[table])));
    }
    return new TableStorageStore(
      clients,
      tableNames,
      maxConflictRetries,
      options.testHooks,
      clientOptions.allowInsecureConnection,
    );
  }

  async readPartition(table: TableName, partition: string): Promise<Map<string, Entity>> {
    const rows = await this.queryPartition(table, partition);
    this.reads.getStore()?.set(readKey(table, partition), rows);
    return toEntities(rows);
  }

  /**
   * See BaselineStore.batch: partitions read inside `fn` are remembered (with their ETags) for the first update
   * of each inside `fn`, which then needs no second read. A remembered read that has gone stale fails the
   * conditional write like any lost race, and that update re-reads and re-applies.
   */
  batch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.reads.getStore() !== undefined) return fn();
    return this.reads.run(new Map(), fn);
  }

  async readRows(
    table: TableName,
    partition: string,
    rowKeys: readonly string[],
  ): Promise<Map<string, Entity>> {
    return toEntities(await this.pointReads(table, partition, rowKeys));
  }

  updatePartition(table: TableName, partition: string, apply: PartitionUpdate): Promise<void> {
    const reads = this.reads.getStore();
    const key = readKey(table, partition);
    let remembered = reads?.get(key);
    // Used once: after this update the partition's ETags have changed.
    reads?.delete(key);
    return this.update(
      table,
      partition,
      () => {
        const rows = remembered;
        remembered = undefined;
        return rows !== undefined ? Promise.resolve(rows) : this.queryPartition(table, partition);
      },
      apply,
    );
  }

  updateRows(
    table: TableName,
    partition: string,
    rowKeys: readonly string[],
    apply: PartitionUpdate,
  ): Promise<void> {
    const allowed = new Set(rowKeys);
    return this.update(table, partition, () => this.pointReads(table, partition, rowKeys), apply, allowed);
  }

  async listPartitions(table: TableName): Promise<string[]> {
    this.assertOpen();
    const partitions = new Map<string, string>();
    try {
      const entities = this.clients[table].listEntities<Record<string, unknown>>({
        queryOptions: { select: ['PartitionKey', '_pk'] },
      });
      for await (const e of entities) {
        const physical = e.partitionKey ?? '';
        if (!partitions.has(physical)) partitions.set(physical, logicalKey(e._pk, physical));
      }
    } catch (err) {
      throw this.serviceError(err, 'list partitions of', table);
    }
    return [...partitions.values()];
  }

  close(): Promise<void> {
    // TableClient holds no resources that need releasing; refuse further use to surface lifecycle bugs.
    this.closed = true;
    return Promise.resolve();
  }

  private async update(
    table: TableName,
    partition: string,
    read: () => Promise<Map<string, StoredRow>>,
    apply: PartitionUpdate,
    allowed?: ReadonlySet<string>,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const current = await read();
      const changes = computeChanges(table, partition, toEntities(current), apply, allowed);
      const transactions = chunk(this.plan(partition, current, changes));
      try {
        for (const [index, actions] of transactions.entries()) {
          await this.hooks?.beforeTransaction?.({
            table,
            partition,
            attempt,
            index,
            count: transactions.length,
            actions: actions.length,
          });
          await this.submit(table, actions);
        }
        return;
      } catch (err) {
        if (!isConflict(err)) throw this.serviceError(err, 'update', table, partition);
        if (attempt >= this.maxConflictRetries) throw new StoreConflictError(table, partition, attempt + 1);
        this.conflicts++;
        // Full jitter: concurrent losers spread out instead of colliding again on the next round.
        await sleep(Math.random() * Math.min(1000, 10 * 2 ** attempt));
      }
    }
  }

  /**
   * Deletes and updates are conditioned on the ETags read; creates fail if the row appeared meanwhile. `bytes`
   * estimates each action's share of the transaction's payload (the entity's JSON as the SDK's TransactionAction
   * would stringify, plus framing), which decides where transactions are cut.
   */
  private plan(partition: string, current: Map<string, StoredRow>, changes: Map<string, Entity | null>) {
    const partitionKey = encodeKey(partition);
    const planned: PlannedAction[] = [];
    for (const [key, entity] of changes) {
      const existing = current.get(key);
      if (entity === null) {
        // Deleting a row that was absent when read: nothing to do (and nothing to condition the delete on).
        if (existing === undefined) continue;
        planned.push({
          action: { kind: 'delete', partitionKey, rowKey: existing.rowKey, etag: existing.etag },
          bytes: ACTION_OVERHEAD_BYTES + existing.etag.length,
        });
        continue;
      }
      const rowKey = existing?.rowKey ?? encodeKey(key);
      const { json, bytes } = toTableJson(partitionKey, rowKey, partition, key, entity);
      const row = { partitionKey, rowKey, json };
      planned.push({
        action: existing
          ? { kind: 'update', entity: row, mode: 'Replace', etag: existing.etag }
          : { kind: 'create', entity: row },
        bytes: ACTION_OVERHEAD_BYTES + bytes,
      });
    }
    return planned;
  }

  private async submit(table: TableName, actions: readonly PlannedAction[]): Promise<void> {
    await submitBatch(
      this.clients[table],
      actions.map((a) => a.action),
      this.allowInsecureConnection,
    );
  }

  private async queryPartition(table: TableName, partition: string): Promise<Map<string, StoredRow>> {
    this.assertOpen();
    assertValidKeys(table, partition, []);
    const rows = new Map<string, StoredRow>();
    try {
      // odata`` quotes and escapes the key; never paste keys into a filter string.
      const filter = odata`PartitionKey eq ${encodeKey(partition)}`;
      // The lean query: the SDK's request and pipeline, one JSON.parse (shared/baseline/tableQuery.ts).
      for await (const page of queryRawPages(this.clients[table], filter, this.allowInsecureConnection)) {
        for (const raw of page) {
          const row = storedRowFromRaw(raw);
          rows.set(logicalKey(raw._rk, row.rowKey), row);
        }
      }
    } catch (err) {
      throw this.serviceError(err, 'read', table, partition);
    }
    return rows;
  }

  private async pointReads(
    table: TableName,
    partition: string,
    rowKeys: readonly string[],
  ): Promise<Map<string, StoredRow>> {
    this.assertOpen();
    assertValidKeys(table, partition, rowKeys);
    const partitionKey = encodeKey(partition);
    const keys = [...new Set(rowKeys)];
    const found: (StoredRow | undefined)[] = new Array<StoredRow | undefined>(keys.length);
    let next = 0;
    // A few reads in flight hide latency to Azure without flooding it (Azurite gains nothing: it is CPU bound).
    const worker = async (): Promise<void> => {
      while (next < keys.length) {
        const i = next++;
        const rowKey = encodeKey(keys[i]!);
        try {
          found[i] = fromTableEntity(await this.clients[table].getEntity(partitionKey, rowKey), rowKey);
        } catch (err) {
          if (statusOf(err) === 404 && codeOf(err) !== 'TableNotFound') continue;
          throw this.serviceError(err, 'read', table, partition);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, keys.length) }, worker));
    const rows = new Map<string, StoredRow>();
    keys.forEach((key, i) => {
      const row = found[i];
      if (row !== undefined) rows.set(key, row);
    });
    return rows;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('TableStorageStore is closed');
  }

  private serviceError(err: unknown, what: string, table: TableName, partition?: string): unknown {
    if (statusOf(err) === undefined) return err; // not from the service (e.g. a test hook, a bug in apply)
    // Partitions by tag, never by key (callers are identities; this message reaches logs and telemetry).
    const where = `${this.tableNames[table]}${partition === undefined ? '' : `/${keyTag(partition)}`}`;
    const status = `HTTP ${statusOf(err)}${codeOf(err) === undefined ? '' : ` ${codeOf(err)}`}`;
    let message = err instanceof Error ? err.message : String(err);
    if (partition !== undefined) message = message.split(encodeKey(partition)).join(keyTag(partition));
    message = message.replace(/\b(PartitionKey|RowKey)\s*(=|eq)\s*'[^']*'/gi, "$1$2'…'");
    return new Error(`Table Storage failed to ${what} ${where} (${status}): ${message}`, { cause: err });
  }
}

async function createTable(client: TableClient, name: string): Promise<void> {
  try {
    // The SDK already ignores 409 TableAlreadyExists here; the catch keeps that true if it ever stops doing so.
    await client.createTable();
  } catch (err) {
    if (statusOf(err) === 409 && codeOf(err) === 'TableAlreadyExists') return;
    throw new Error(`Cannot create table ${name}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

const readKey = (table: TableName, partition: string): string => `${table}\u0000${partition}`;

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Batch errors carry the service's code in `code`; single operations only in `details.errorCode`. */
function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; details?: { errorCode?: unknown } } | null;
  const code = e?.code ?? e?.details?.errorCode;
  return typeof code === 'string' ? code : undefined;
}

/** Errors meaning "someone else changed these rows since we read them". */
function isConflict(err: unknown): boolean {
  switch (statusOf(err)) {
    case 412: // ETag mismatch on update/delete
      return true;
    case 409: // a row we meant to create was created concurrently
      return codeOf(err) === 'EntityAlreadyExists';
    case 404: // a row we meant to update/delete was deleted concurrently (but not: the table is missing)
      return codeOf(err) === 'ResourceNotFound';
    default:
      return false;
  }
}

function chunk(actions: readonly PlannedAction[]): PlannedAction[][] {
  const chunks: PlannedAction[][] = [];
  let current: PlannedAction[] = [];
  let bytes = 0;
  for (const action of actions) {
    if (
      current.length === MAX_TRANSACTION_ACTIONS ||
      (current.length > 0 && bytes + action.bytes > MAX_TRANSACTION_BYTES)
    ) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(action);
    bytes += action.bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Numbers are written as explicit Edm.Double. Sent untyped, the service infers the type from the JSON literal
 * (Int32 for 3, Double for 3.5), so a property's type would flip with its value and queries comparing it would
 * misbehave; and Int64, the other integer type, comes back from the SDK as bigint.
 *
 * `bytes` is the UTF-8 length of the row as JSON.stringify wrote it for the SDK's transaction API (each number
 * as `{"value":"3","type":"Double"}`: one character more than the wire's `"3","x@odata.type":"Edm.Double"`
 * less the name), so that transactions are cut where they always were.
 */
function toTableJson(partitionKey: string, rowKey: string, partition: string, key: string, entity: Entity) {
  const properties: Record<string, BatchValue> = { _pk: partition, _rk: key };
  let difference = 0;
  for (const name in entity) {
    const value = entity[name]!;
    if (typeof value === 'number') {
      properties[name] = { value: String(value), type: 'Double' };
      difference += name.length + 1;
    } else properties[name] = value;
  }
  const json = entityJson(partitionKey, rowKey, properties);
  return { json, bytes: Buffer.byteLength(json) - difference };
}

function fromTableEntity(raw: RawEntity, rowKey: string): StoredRow {
  const entity: Record<string, Scalar> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (SYSTEM_PROPERTIES.has(name) || name.startsWith('odata.')) continue;
    const scalar = toScalar(value);
    if (scalar !== undefined) entity[name] = scalar;
  }
  return { entity, rowKey, etag: raw.etag };
}

/**
 * fromTableEntity of what the lean query's toEntity makes of a raw entity, in one pass: the same properties, the
 * same conversions, no intermediate entity (a warm run reads tens of thousands of rows).
 */
function storedRowFromRaw(raw: Record<string, unknown>): StoredRow {
  const entity: Record<string, Scalar> = {};
  let rowKey = '';
  let etag = '';
  forEachProperty(raw, (name, value) => {
    if (name === 'rowKey') rowKey = typeof value === 'string' ? value : '';
    else if (name === 'etag') etag = value as string;
    if (SYSTEM_PROPERTIES.has(name) || name.startsWith('odata.')) return;
    const scalar = toScalar(value);
    if (scalar !== undefined) entity[name] = scalar;
  });
  return { entity, rowKey, etag };
}

const SYSTEM_PROPERTIES: ReadonlySet<string> = new Set([
  'etag',
  'partitionKey',
  'rowKey',
  'timestamp',
  '_pk',
  '_rk',
]);

/** Maps what the SDK deserialises (rows may have been written by other tools) onto the store's scalars. */
function toScalar(value: unknown): Scalar | undefined {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return value;
    case 'bigint': // Edm.Int64; beyond 2^53 this rounds, which counts and timestamps never reach
      return Number(value);
    case 'object':
      if (value === null) return undefined;
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
      if (value instanceof Uint8Array) return Buffer.from(value).toString('base64'); // Edm.Binary
      if ('value' in value) return String(value.value); // Edm.Guid arrives as { value, type }
      return JSON.stringify(value);
    default:
      return undefined;
  }
}

/** The logical key stored by this adapter, or the decoded physical key for rows written by other tools. */
function logicalKey(stored: unknown, physical: string): string {
  if (typeof stored === 'string') return stored;
  try {
    return decodeKey(physical);
  } catch {
    return physical; // not our encoding: the physical key is the best name we have
  }
}

function toEntities(rows: ReadonlyMap<string, StoredRow>): Map<string, Entity> {
  const entities = new Map<string, Entity>();
  for (const [key, row] of rows) entities.set(key, row.entity);
  return entities;
}
