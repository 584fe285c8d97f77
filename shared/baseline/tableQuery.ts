/**
 * A lean entity query: the request TableClient.listEntities sends (same URL, headers and paging), sent through
 * the TableClient's own pipeline — so its authentication, retries and request ids apply unchanged — but the
 * answer is parsed once with JSON.parse and mapped to entities directly. The SDK's generic deserialisation (its
 * response body mapper, then its entity mapping, about 30 µs an entity) dominated the warm run's reads.
 *
 * The entities are what listEntities yields, property for property (test/baseline/tableQuery.test.ts compares
 * both on rows of every Edm type): ETags are the service's, so optimistic concurrency is unchanged.
 */
import {
  createDefaultHttpClient,
  createPipelineRequest,
  type HttpClient,
  type PipelineResponse,
  RestError,
} from '@azure/core-rest-pipeline';
import type { TableClient } from '@azure/data-tables';

/** An entity as listEntities yields it: system properties renamed, typed values converted. */
export type QueriedEntity = Record<string, unknown> & {
  etag: string;
  partitionKey?: string;
  rowKey?: string;
};

/** The request headers of the SDK's queryEntities operation (API version 2019-02-02, OData 3.0). */
const HEADERS = {
  Accept: 'application/json;odata=minimalmetadata',
  'x-ms-version': '2019-02-02',
  DataServiceVersion: '3.0',
};
/** The service's system properties, named as the SDK names them. */
const RENAMED: ReadonlyMap<string, string> = new Map([
  ['PartitionKey', 'partitionKey'],
  ['RowKey', 'rowKey'],
  ['odata.etag', 'etag'],
  ['Timestamp', 'timestamp'],
]);
const TYPE_SUFFIX = '@odata.type';

let http: HttpClient | undefined;

/** One HTTP client (one connection pool) for the lean reads and writes of every table. */
export function tableHttpClient(): HttpClient {
  http ??= createDefaultHttpClient();
  return http;
}

/** The entities of `table` matching `filter` (an OData filter built with the SDK's `odata` template). */
export async function* queryEntities(
  client: TableClient,
  filter: string,
  allowInsecureConnection: boolean,
): AsyncGenerator<QueriedEntity> {
  for await (const page of queryRawPages(client, filter, allowInsecureConnection)) {
    for (const raw of page) yield toEntity(raw);
  }
}

/**
 * The same query, a page at a time, each entity as the service sent it (JSON, `@odata.type` annotations beside
 * typed values): for a reader that maps it to its own form in one pass (the store's rows,
 * shared/baseline/tableStorage.ts). Pages, not entities, so that a reader of thousands of rows does not pay an
 * async generator's promises per row.
 */
export async function* queryRawPages(
  client: TableClient,
  filter: string,
  allowInsecureConnection: boolean,
): AsyncGenerator<Record<string, unknown>[]> {
  const http = tableHttpClient();
  const base = `${client.url.replace(/\/+$/, '')}/${client.tableName}()`;
  let next: { partition?: string; row?: string } = {};
  do {
    const url = new URL(base);
    url.searchParams.set('$filter', filter);
    if (next.partition !== undefined) url.searchParams.set('NextPartitionKey', next.partition);
    if (next.row !== undefined) url.searchParams.set('NextRowKey', next.row);
    const request = createPipelineRequest({ url: url.toString(), method: 'GET', allowInsecureConnection });
    for (const [name, value] of Object.entries(HEADERS)) request.headers.set(name, value);
    const response = await client.pipeline.sendRequest(http, request);
    const body = response.bodyAsText ?? '';
    if (response.status !== 200) throw serviceError(response.status, body, response);
    // The pipeline's deserialization policy (core-client) has already JSON-parsed the answer: parse it once.
    const parsed = (response as { parsedBody?: unknown }).parsedBody;
    const page = (parsed ?? JSON.parse(body)) as { value?: Record<string, unknown>[] };
    yield page.value ?? [];
    next = {
      partition: response.headers.get('x-ms-continuation-NextPartitionKey'),
      row: response.headers.get('x-ms-continuation-NextRowKey'),
    };
  } while (next.partition !== undefined || next.row !== undefined);
}

/** What the SDK's deserialize makes of one entity of the answer (@azure/data-tables serialization.ts). */
export function toEntity(raw: Record<string, unknown>): QueriedEntity {
  const out: Record<string, unknown> = {};
  forEachProperty(raw, (name, value) => {
    out[name] = value;
  });
  return out as QueriedEntity;
}

/**
 * Calls `use` with each property of a raw entity as toEntity names and converts it (system properties renamed,
 * typed values converted), in the answer's order, without building the SDK's entity.
 */
export function forEachProperty(
  raw: Record<string, unknown>,
  use: (name: string, value: unknown) => void,
): void {
  for (const key in raw) {
    if (key.includes(TYPE_SUFFIX)) continue;
    const type = raw[annotationOf(key)];
    const value = raw[key];
    use(RENAMED.get(key) ?? key, type === undefined ? value : typed(value, type));
  }
}

/**
 * `key@odata.type`, the same string object each time for a property name: concatenating it for every property of
 * every row made V8 hash and look up a fresh string each time (the largest self time of a warm run's reads).
 * Property names are few; the cache stops growing at a bound in case another tool wrote many.
 */
const annotations = new Map<string, string>();
const MAX_ANNOTATIONS = 10_000;

function annotationOf(key: string): string {
  let annotation = annotations.get(key);
  if (annotation === undefined) {
    annotation = key + TYPE_SUFFIX;
    if (annotations.size < MAX_ANNOTATIONS) annotations.set(key, annotation);
  }
  return annotation;
}

function typed(value: unknown, type: unknown): unknown {
  switch (type) {
    case 'Edm.Boolean':
    case 'Edm.Double':
    case 'Edm.Int32':
    case 'Edm.String':
      return value;
    case 'Edm.DateTime':
      return new Date(value as string);
    case 'Edm.Int64':
      return BigInt(value as string);
    case 'Edm.Guid':
      return { value, type: 'Guid' };
    case 'Edm.Binary':
      return Buffer.from(value as string, 'base64');
    default:
      throw new Error(`Unknown EDM type ${String(type)}`);
  }
}

/** The RestError the SDK throws for a failed query: the service's code in `code` and `details.errorCode`. */
function serviceError(status: number, body: string, response: PipelineResponse): RestError {
  let code: string | undefined;
  let message = `Table Storage query failed with status ${status}`;
  try {
    const e = (JSON.parse(body) as { 'odata.error'?: { code?: string; message?: { value?: string } } })[
      'odata.error'
    ];
    code = e?.code;
    if (e?.message?.value) message = e.message.value;
  } catch {
    // not JSON: keep the status
  }
  const error = new RestError(message, { statusCode: status, code, response });
  Object.assign(error, { details: { errorCode: code } });
  return error;
}
