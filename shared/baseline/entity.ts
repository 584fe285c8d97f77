/**
 * Validation shared by every adapter. The rules are Table Storage's (the strictest backend), enforced by SQLite
 * too, so code that works locally cannot fail in production on a property name, a value or a size.
 */
import { isWellFormed } from './keys.js';
import { type Entity, InvalidEntityError, type PartitionUpdate, type TableName } from './store.js';

/**
 * Property names the adapters use themselves: Table Storage's system properties, the names the Azure SDK maps
 * them to, and the properties in which the Table Storage adapter keeps the logical keys.
 */
export const RESERVED_PROPERTY_NAMES: ReadonlySet<string> = new Set([
  'PartitionKey',
  'RowKey',
  'Timestamp',
  'ETag',
  'partitionKey',
  'rowKey',
  'timestamp',
  'etag',
  '_pk',
  '_rk',
]);

/** Table Storage: property names follow C# identifier rules (ASCII subset here), at most 255 characters. */
const PROPERTY_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;
/** Table Storage allows 252 custom properties; the Table Storage adapter uses two of them (`_pk`, `_rk`). */
export const MAX_PROPERTIES = 250;
/** Table Storage strings are UTF-16 and at most 64 KiB. */
export const MAX_STRING_LENGTH = 32 * 1024;
/** Table Storage's entity limit, estimated with the service's published size formula. */
export const MAX_ENTITY_BYTES = 1024 * 1024;

function problemWithEntity(entity: unknown): string | undefined {
  if (typeof entity !== 'object' || entity === null || Array.isArray(entity)) {
    return `a row must be a plain object, got ${Array.isArray(entity) ? 'an array' : typeof entity}`;
  }
  const props = Object.entries(entity);
  if (props.length > MAX_PROPERTIES)
    return `${props.length} properties exceed the limit of ${MAX_PROPERTIES}`;
  let bytes = 0;
  for (const [name, value] of props) {
    if (!PROPERTY_NAME.test(name)) {
      return `property name ${JSON.stringify(name)} is not an identifier ([A-Za-z_][A-Za-z0-9_]*, ≤ 255 chars)`;
    }
    if (RESERVED_PROPERTY_NAMES.has(name)) return `property name ${JSON.stringify(name)} is reserved`;
    // Size formula of the Table service: 8 bytes + 2 per name character + the value's size.
    bytes += 8 + 2 * name.length;
    if (typeof value === 'string') {
      if (value.length > MAX_STRING_LENGTH) {
        return `property ${name} has ${value.length} characters, more than ${MAX_STRING_LENGTH}`;
      }
      if (!isWellFormed(value)) return `property ${name} contains a lone UTF-16 surrogate`;
      bytes += 4 + 2 * value.length;
    } else if (typeof value === 'number') {
      // NaN and ±Infinity have no JSON form, and Table Storage returns them as strings: reject both ways.
      if (!Number.isFinite(value)) return `property ${name} is ${value}; only finite numbers can be stored`;
      bytes += 8;
    } else if (typeof value === 'boolean') {
      bytes += 1;
    } else {
      return `property ${name} has type ${value === null ? 'null' : typeof value}; only string, number and boolean are stored`;
    }
  }
  if (bytes > MAX_ENTITY_BYTES)
    return `the row is about ${bytes} bytes, over the limit of ${MAX_ENTITY_BYTES}`;
  return undefined;
}

/** @throws InvalidEntityError when a logical key cannot be stored by every backend. */
export function assertValidKeys(table: TableName, partition: string, rowKeys: Iterable<string>): void {
  if (typeof partition !== 'string' || !isWellFormed(partition)) {
    throw new InvalidEntityError(
      table,
      String(partition),
      undefined,
      'partition key must be a well-formed string',
    );
  }
  for (const rowKey of rowKeys) {
    if (typeof rowKey !== 'string' || !isWellFormed(rowKey)) {
      throw new InvalidEntityError(table, partition, String(rowKey), 'row key must be a well-formed string');
    }
  }
}

/**
 * Runs `apply` and checks its result before anything is written.
 * @param allowed when given (updateRows), the only row keys apply may write.
 */
export function computeChanges(
  table: TableName,
  partition: string,
  current: ReadonlyMap<string, Entity>,
  apply: PartitionUpdate,
  allowed?: ReadonlySet<string>,
): Map<string, Entity | null> {
  const changes = apply(current);
  if (!(changes instanceof Map)) {
    throw new TypeError(`apply for ${table}/${partition} must return a Map, got ${typeof changes}`);
  }
  for (const [rowKey, entity] of changes) {
    assertValidKeys(table, partition, [rowKey]);
    if (allowed !== undefined && !allowed.has(rowKey)) {
      throw new InvalidEntityError(table, partition, rowKey, 'updateRows apply wrote a row it was not given');
    }
    if (entity === null) continue;
    const problem = problemWithEntity(entity);
    if (problem !== undefined) throw new InvalidEntityError(table, partition, rowKey, problem);
  }
  return changes;
}
