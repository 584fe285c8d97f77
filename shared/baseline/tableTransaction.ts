/**
 * A lean entity-group transaction: the OData `$batch` request TableClient.submitTransaction sends (the same
 * multipart body, byte for byte but for the random boundaries, and the same headers), sent through the
 * TableClient's own pipeline — so its authentication, retries and request ids apply unchanged — without the SDK's
 * per-operation machinery (an intercepted request, a serialisation pass and a tracing span per entity, a fresh
 * TableClient per transaction). The answer is parsed as the SDK parses it: the first failing operation's status,
 * service code and message surface as the same RestError (the store's conflict handling reads `statusCode` and
 * `code`), with the operation's index added; on success each operation's status and ETag.
 *
 * test/baseline/tableTransaction.test.ts compares the bodies and the errors with the SDK's on Azurite.
 */
import { randomUUID } from 'node:crypto';

import { createPipelineRequest, type PipelineResponse, RestError } from '@azure/core-rest-pipeline';
import type { TableClient } from '@azure/data-tables';

import { tableHttpClient } from './tableQuery.js';

/** A property value as the SDK's serialiser takes it; numbers wrapped to fix their Edm type. */
export type BatchValue = string | number | boolean | { value: string; type: 'Double' | 'Int32' | 'Int64' };

/** The JSON of one entity, from {@link entityJson}. */
export interface BatchEntity {
  partitionKey: string;
  rowKey: string;
  json: string;
}

export type BatchOperation =
  | { kind: 'create'; entity: BatchEntity }
  /** Fails with 412 unless the stored row still has `etag` ('*': any version). */
  | { kind: 'update'; entity: BatchEntity; mode: 'Replace' | 'Merge'; etag: string }
  | { kind: 'upsert'; entity: BatchEntity; mode: 'Replace' | 'Merge' }
  | { kind: 'delete'; partitionKey: string; rowKey: string; etag: string };

export interface BatchResult {
  status: number;
  /** One per operation, in order: its status and, for writes, the new ETag. */
  operations: { status: number; etag?: string }[];
}

const CRLF = '\r\n';
/** The `$batch` request headers of the SDK (utils/transactionHeaders.ts), before the pipeline adds its own. */
const BATCH_HEADERS: Readonly<Record<string, string>> = {
  accept: 'application/json',
  'x-ms-version': '2019-02-02',
  DataServiceVersion: '3.0;',
  MaxDataServiceVersion: '3.0;NetFx',
  'Accept-Charset': 'UTF-8',
  Connection: 'Keep-Alive',
};
/** Each sub-request's headers, as the SDK's generated operations set them (x-ms-version removed). */
const CREATE_HEADERS = [
  'Content-Type: application/json;odata=nometadata',
  'Accept: application/json;odata=minimalmetadata',
  'DataServiceVersion: 3.0',
  'Prefer: return-no-content',
].join(CRLF);
const WRITE_HEADERS = [
  'Content-Type: application/json',
  'DataServiceVersion: 3.0',
  'Accept: application/json',
].join(CRLF);
const DELETE_HEADERS = ['Accept: application/json;odata=minimalmetadata', 'DataServiceVersion: 3.0'].join(
  CRLF,
);

/**
 * The entity's JSON as the SDK serialises it: `partitionKey`/`rowKey` renamed, a wrapped number as its text and
 * an `@odata.type` annotation, properties in their order.
 */
export function entityJson(
  partitionKey: string,
  rowKey: string,
  properties: Record<string, BatchValue>,
): string {
  let json = `{"PartitionKey":${JSON.stringify(partitionKey)},"RowKey":${JSON.stringify(rowKey)}`;
  for (const name in properties) {
    const value = properties[name]!;
    const key = JSON.stringify(name);
    if (typeof value === 'object') {
      json += `,${key}:${JSON.stringify(value.value)},${JSON.stringify(`${name}@odata.type`)}:"Edm.${value.type}"`;
    } else json += `,${key}:${JSON.stringify(value)}`;
  }
  return `${json}}`;
}

/** Sends `operations` (one partition, at most 100) as one atomic transaction; throws as submitTransaction does. */
export async function submitBatch(
  client: TableClient,
  operations: readonly BatchOperation[],
  allowInsecureConnection: boolean,
): Promise<BatchResult> {
  const batchId = randomUUID();
  const changesetId = randomUUID();
  const base = client.url.endsWith('/') ? client.url : `${client.url}/`;
  const request = createPipelineRequest({
    url: `${base}$batch`,
    method: 'POST',
    body: batchBody(`${base}${encodeURIComponent(client.tableName)}`, operations, batchId, changesetId),
    allowInsecureConnection,
  });
  for (const [name, value] of Object.entries(BATCH_HEADERS)) request.headers.set(name, value);
  request.headers.set('Content-Type', `multipart/mixed; boundary=batch_${batchId}`);
  const response = await client.pipeline.sendRequest(tableHttpClient(), request);
  return parseBatchResponse(response, operations.length);
}

/** The multipart body: one changeset holding a sub-request per operation (data-tables' TablePolicies.ts). */
export function batchBody(
  tableUrl: string,
  operations: readonly BatchOperation[],
  batchId: string,
  changesetId: string,
): string {
  const changeset = `--changeset_${changesetId}`;
  const parts = [
    `--batch_${batchId}${CRLF}content-type: multipart/mixed; boundary=changeset_${changesetId}${CRLF}${CRLF}`,
  ];
  const prefix = `${changeset}${CRLF}content-type: application/http${CRLF}content-transfer-encoding: binary${CRLF}${CRLF}`;
  for (const op of operations) parts.push(prefix + subRequest(tableUrl, op));
  return `${parts.join(CRLF)}${CRLF}${changeset}--${CRLF}--batch_${batchId}--${CRLF}`;
}

/** Request line, headers, the SDK's blank lines (one fewer without a body), and the entity's JSON. */
function subRequest(tableUrl: string, op: BatchOperation): string {
  const end = `${CRLF}${CRLF}${CRLF}`;
  switch (op.kind) {
    case 'create':
      return `POST ${tableUrl} HTTP/1.1${CRLF}${CREATE_HEADERS}${end}${op.entity.json}`;
    case 'update':
      return `${method(op.mode)} ${entityUrl(tableUrl, op.entity)} HTTP/1.1${CRLF}${WRITE_HEADERS}${CRLF}If-Match: ${op.etag}${end}${op.entity.json}`;
    case 'upsert':
      return `${method(op.mode)} ${entityUrl(tableUrl, op.entity)} HTTP/1.1${CRLF}${WRITE_HEADERS}${end}${op.entity.json}`;
    case 'delete':
      return `DELETE ${entityUrl(tableUrl, op)} HTTP/1.1${CRLF}${DELETE_HEADERS}${CRLF}If-Match: ${op.etag}${CRLF}${CRLF}`;
  }
}

const method = (mode: 'Replace' | 'Merge'): string => (mode === 'Replace' ? 'PUT' : 'PATCH');

/** `table(PartitionKey='…',RowKey='…')`: quotes doubled (OData), then URL-encoded, as the SDK's path template. */
function entityUrl(tableUrl: string, keys: { partitionKey: string; rowKey: string }): string {
  const literal = (key: string): string => encodeURIComponent(key.replace(/'/g, "''"));
  return `${tableUrl}(PartitionKey='${literal(keys.partitionKey)}',RowKey='${literal(keys.rowKey)}')`;
}

/**
 * The SDK's parseTransactionResponse: a failed batch, or a failed operation (the service answers a failed
 * changeset with that one operation's response), throws a RestError with the service's status, code and message.
 */
export function parseBatchResponse(response: PipelineResponse, count: number): BatchResult {
  const body = response.bodyAsText ?? '';
  if (response.status < 200 || response.status >= 300) throw batchError(body, response.status, response);
  const parts = body.split('--changesetresponse_').slice(1, -1);
  const operations = parts.map((part) => {
    const status = /HTTP\/1\.1 (\d+)/.exec(part);
    if (status === null) throw new Error(`Couldn't extract status from sub-response:\n ${part}`);
    const code = Number(status[1]);
    const json = /\{(.*)\}/.exec(part);
    if (json !== null || code >= 300) throw batchError(json?.[0] ?? '', code, response, operationIndex(part));
    const etag = /ETag: (.*)/.exec(part)?.[1];
    return etag === undefined ? { status: code } : { status: code, etag };
  });
  if (operations.length !== count) {
    // Not a changeset answer (a malformed batch is answered outside the changeset): fail instead of reporting success.
    const status = /HTTP\/1\.1 (\d+)/.exec(body);
    throw batchError(
      /\{(.*)\}/.exec(body)?.[0] ?? '',
      status === null ? response.status : Number(status[1]),
      response,
    );
  }
  return { status: response.status, operations };
}

/** The 0-based index of the failed operation: the service prefixes its message with it (`1:The update …`). */
function operationIndex(part: string): number | undefined {
  const prefixed = /"value":"(\d+):/.exec(part);
  if (prefixed !== null) return Number(prefixed[1]);
  const contentId = /Content-ID: (\d+)/.exec(part);
  return contentId === null ? undefined : Number(contentId[1]) - 1;
}

function batchError(json: string, status: number, response: PipelineResponse, index?: number): RestError {
  let message = 'Transaction Failed';
  let code: string | undefined;
  try {
    const e = (JSON.parse(json) as { 'odata.error'?: { code?: string; message?: { value?: string } } })[
      'odata.error'
    ];
    if (e !== undefined) {
      message = e.message?.value ?? message;
      code = e.code;
    }
  } catch {
    // not JSON: keep the status
  }
  const error = new RestError(message, { code, statusCode: status, request: response.request, response });
  return index === undefined ? error : Object.assign(error, { operationIndex: index });
}
