/**
 * A local Logs Ingestion API endpoint (a DCR's or DCE's ingestion URL), answering the way the real service does
 * for the requests @azure/monitor-ingestion sends:
 *
 *   POST /dataCollectionRules/{dcrImmutableId}/streams/{stream}?api-version=2023-01-01
 *   Authorization: Bearer <token for https://monitor.azure.com>, Content-Encoding: gzip, body: a JSON array
 *
 * and 204 on success. It checks what the real service would refuse, with the real status codes: the api-version,
 * the token's audience (tokens of test/support/identity.ts are `test-token:<resource>`), the DCR, the stream, the
 * encoding, the size (1 MB), and every row against the stream declaration (shared/alerts/columns.json): exactly
 * the declared columns, names case-sensitive, each value of its declared type. A bad row fails the whole request
 * with 400 and an error body, as the service does.
 *
 * Served over https with the self-signed test certificate: the SDK refuses to send bearer tokens over http. Pass
 * `tlsOptions: { ca }` in the client's options.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

import { ALERT_COLUMNS, ALERT_STREAM, type ColumnSpec } from '../../shared/alerts/alert.js';
import { tokenFor } from './identity.js';
import { testCertificate } from './tls.js';

export const FAKE_DCR_ID = 'dcr-00000000000000000000000000000000';
export const INGESTION_API_VERSION = '2023-01-01';
/** The service's limit on one request's (uncompressed) body. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface FakeIngestionOptions {
  /** The DCR immutable id the fake serves (default FAKE_DCR_ID); other ids get 404. */
  dcrImmutableId?: string;
  /** The stream declared in the DCR (default ALERT_STREAM). */
  stream?: string;
  /** The stream's columns (default the column file's). */
  columns?: readonly ColumnSpec[];
  /** Retry-After (seconds) sent with an injected 429 (default 1). */
  retryAfterSeconds?: number;
  /** Called for every request before it is answered (e.g. to advance a test clock). */
  onRequest?(request: IngestionRequest): void;
}

export interface IngestionRequest {
  path: string;
  stream: string;
  dcr: string;
  apiVersion: string | null;
  contentEncoding: string | undefined;
  authorization: string | undefined;
  /** Answer given. */
  status: number;
  /** Rows in the body (0 when it could not be read). */
  rows: number;
  /** sha256 of the uncompressed body, to tell a retried request from a new one. */
  bodyHash: string;
}

export type FailureKind = 500 | 429 | 'partial';

export interface FakeIngestion {
  /** `https://127.0.0.1:{port}`: the ingestion endpoint (DCE or DCR endpoint) to give the client. */
  endpoint: string;
  /** PEM of the server's certificate, for `tlsOptions: { ca }`. */
  ca: string;
  /** Rows accepted (answered 204), in the order the requests were answered. */
  received: Record<string, unknown>[];
  /** Every POST, in order of arrival (status filled in when answered). */
  requests: IngestionRequest[];
  /** Rows of requests failed on purpose (failNext, setDown). */
  rejected: Record<string, unknown>[];
  /**
   * Fails the next requests with an injected fault:
   * - 500: the next `times` requests get 500 InternalServerError (the SDK retries these unless told not to);
   * - 429: the next `times` requests get 429 with Retry-After (the SDK waits and retries);
   * - 'partial': one request is let through, then the following `times` requests get 500: with a client that
   *   does not retry, an upload of several chunks then sees one of them (the second to arrive) fail.
   */
  failNext(kind: FailureKind, times?: number): void;
  /** While down, every request gets 503 ServiceUnavailable. */
  setDown(down: boolean): void;
  /** Delays every answer by this many ms (0: none). */
  setDelay(ms: number): void;
  close(): Promise<void>;
}

interface Fault {
  status: 500 | 429;
  /** Requests to let through first. */
  pass: number;
  times: number;
}

export async function startFakeIngestion(opts: FakeIngestionOptions = {}): Promise<FakeIngestion> {
  const { cert, key } = await testCertificate();
  const dcrId = opts.dcrImmutableId ?? FAKE_DCR_ID;
  const streamName = opts.stream ?? ALERT_STREAM;
  const columns = opts.columns ?? ALERT_COLUMNS;
  const expectedAuthorization = `Bearer ${tokenFor('https://monitor.azure.com')}`;
  const received: Record<string, unknown>[] = [];
  const requests: IngestionRequest[] = [];
  const rejected: Record<string, unknown>[] = [];
  const faults: Fault[] = [];
  let down = false;
  let delayMs = 0;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();

  const server: Server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      const match = /^\/dataCollectionRules\/([^/]+)\/streams\/([^/]+)$/.exec(url.pathname);
      const contentEncoding = req.headers['content-encoding'];
      const entry: IngestionRequest = {
        path: url.pathname,
        dcr: match ? decodeURIComponent(match[1]!) : '',
        stream: match ? decodeURIComponent(match[2]!) : '',
        // The SDK sends `api%2Dversion`: URLSearchParams decodes the name as the service does.
        apiVersion: url.searchParams.get('api-version'),
        contentEncoding,
        authorization: req.headers.authorization,
        status: 0,
        rows: 0,
        bodyHash: '',
      };
      requests.push(entry);

      let rows: unknown[] | undefined;
      const answer = (
        status: number,
        code?: string,
        message?: string,
        headers: Record<string, string> = {},
      ) => {
        entry.status = status;
        const send = () => {
          timers.delete(timer);
          if (status === 204 && rows !== undefined) received.push(...(rows as Record<string, unknown>[]));
          else if ((status === 500 || status === 429 || status === 503) && rows !== undefined) {
            rejected.push(...(rows as Record<string, unknown>[]));
          }
          if (code === undefined) {
            res.writeHead(status, headers).end();
          } else {
            res.writeHead(status, { 'content-type': 'application/json', ...headers });
            res.end(JSON.stringify({ error: { code, message } }));
          }
        };
        const timer = setTimeout(send, delayMs);
        timers.add(timer);
      };

      // Checked in the order the service does: availability, route, api-version, token, then the body.
      let body: Buffer | undefined;
      try {
        body = contentEncoding === 'gzip' ? gunzipSync(Buffer.concat(chunks)) : Buffer.concat(chunks);
      } catch {
        body = undefined;
      }
      if (body !== undefined) {
        entry.bodyHash = createHash('sha256').update(body).digest('hex');
        try {
          const parsed: unknown = JSON.parse(body.toString('utf8'));
          if (Array.isArray(parsed)) rows = parsed;
        } catch {
          // reported below
        }
        entry.rows = rows?.length ?? 0;
      }
      opts.onRequest?.(entry);

      if (down) return answer(503, 'ServiceUnavailable', 'The service is temporarily unavailable.');
      if (req.method !== 'POST' || !match) return answer(404, 'NotFound', 'No such route.');
      if (entry.apiVersion !== INGESTION_API_VERSION) {
        return answer(400, 'InvalidApiVersion', `api-version must be ${INGESTION_API_VERSION}.`);
      }
      if (req.headers.authorization === undefined) {
        return answer(401, 'InvalidToken', 'Bearer token missing.');
      }
      if (req.headers.authorization !== expectedAuthorization) {
        return answer(401, 'InvalidToken', 'The token is not valid for https://monitor.azure.com.');
      }
      if (entry.dcr !== dcrId) return answer(404, 'NotFound', `Data collection rule ${entry.dcr} not found.`);
      if (entry.stream !== streamName) {
        return answer(
          400,
          'InvalidStream',
          `Stream ${entry.stream} is not declared in the data collection rule.`,
        );
      }
      if (!String(req.headers['content-type']).startsWith('application/json')) {
        return answer(415, 'UnsupportedMediaType', 'Content-Type must be application/json.');
      }
      if (contentEncoding !== 'gzip') return answer(400, 'InvalidContentEncoding', 'Expected gzip.');
      if (body === undefined) return answer(400, 'InvalidContent', 'The body is not valid gzip.');
      if (body.length > MAX_BODY_BYTES) {
        return answer(413, 'ContentLengthLimitExceeded', `The body is over ${MAX_BODY_BYTES} bytes.`);
      }
      if (rows === undefined) return answer(400, 'InvalidContent', 'The body must be a JSON array.');

      const fault = faults[0];
      if (fault !== undefined) {
        if (fault.pass > 0) {
          fault.pass--;
        } else {
          if (--fault.times <= 0) faults.shift();
          if (fault.status === 429) {
            const retryAfter = String(opts.retryAfterSeconds ?? 1);
            return answer(429, 'TooManyRequests', 'Throttled.', { 'retry-after': retryAfter });
          }
          return answer(500, 'InternalServerError', 'Injected failure.');
        }
      }

      for (const [i, row] of rows.entries()) {
        const problem = rowProblem(row, columns);
        if (problem !== undefined) return answer(400, 'InvalidContent', `Row ${i}: ${problem}`);
      }
      return answer(204);
    });
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `https://127.0.0.1:${port}`,
    ca: cert,
    received,
    requests,
    rejected,
    failNext(kind, times = 1) {
      if (!Number.isInteger(times) || times < 1) throw new RangeError('times must be a positive integer');
      faults.push(kind === 'partial' ? { status: 500, pass: 1, times } : { status: kind, pass: 0, times });
    },
    setDown(value) {
      down = value;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Why a row does not match the stream declaration, or undefined when it does. */
export function rowProblem(row: unknown, columns: readonly ColumnSpec[]): string | undefined {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return 'a row must be a JSON object';
  const record = row as Record<string, unknown>;
  const declared = new Set(columns.map((c) => c.name));
  for (const name of Object.keys(record)) {
    if (!declared.has(name)) return `column ${JSON.stringify(name)} is not declared in the stream`;
  }
  for (const { name, type } of columns) {
    if (!(name in record)) return `column ${name} is missing`;
    const value = record[name];
    const ok = ((): boolean => {
      switch (type) {
        case 'string':
          return typeof value === 'string';
        case 'int':
          return Number.isInteger(value) && (value as number) >= -(2 ** 31) && (value as number) < 2 ** 31;
        case 'long':
          return Number.isSafeInteger(value);
        case 'real':
          return typeof value === 'number' && Number.isFinite(value);
        case 'bool':
          return typeof value === 'boolean';
        case 'datetime':
          return typeof value === 'string' && ISO_DATETIME.test(value) && Number.isFinite(Date.parse(value));
        case 'dynamic':
          return typeof value === 'object' && value !== null;
        default:
          return false;
      }
    })();
    if (!ok) return `column ${name} must be of type ${type}`;
  }
  return undefined;
}
