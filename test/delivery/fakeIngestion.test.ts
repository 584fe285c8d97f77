import { request } from 'node:https';
import { gzipSync } from 'node:zlib';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ALERT_COLUMNS, ALERT_STREAM } from '../../shared/alerts/alert.js';
import { toRow } from '../../shared/alerts/sinks.js';
import { FAKE_DCR_ID, type FakeIngestion, rowProblem, startFakeIngestion } from '../support/fakeIngestion.js';
import { type FakeIdentity, startFakeIdentity } from '../support/identity.js';
import { ingestionClient, makeAlert } from './helpers.js';

const TOKEN = 'Bearer test-token:https://monitor.azure.com';

interface RawAnswer {
  status: number;
  body: string;
}

/** A request the way the SDK builds it, with any part overridden. */
function post(
  fake: FakeIngestion,
  rows: unknown,
  over: { path?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<RawAnswer> {
  const path =
    over.path ??
    `/dataCollectionRules/${FAKE_DCR_ID}/streams/${encodeURIComponent(ALERT_STREAM)}?api%2Dversion=2023-01-01`;
  const body = over.body ?? gzipSync(JSON.stringify(rows));
  const { port } = new URL(fake.endpoint);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        ca: fake.ca,
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          authorization: TOKEN,
          ...over.headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const errorCode = (answer: RawAnswer): unknown =>
  (JSON.parse(answer.body) as { error: { code: unknown } }).error.code;

describe('fake Logs Ingestion endpoint', () => {
  let fake: FakeIngestion;
  let identity: FakeIdentity;
  let restore: () => void;
  beforeAll(async () => {
    identity = await startFakeIdentity();
    restore = identity.install();
  });
  afterAll(async () => {
    restore();
    await identity.close();
  });
  beforeEach(async () => {
    fake = await startFakeIngestion();
    return () => fake.close();
  });

  it('accepts what the real SDK sends, with the real protocol details', async () => {
    const row = toRow(makeAlert(1));
    await ingestionClient(fake).upload(FAKE_DCR_ID, ALERT_STREAM, [row]);
    expect(fake.received).toStrictEqual([row]);
    expect(fake.requests).toMatchObject([
      {
        path: `/dataCollectionRules/${FAKE_DCR_ID}/streams/${ALERT_STREAM}`,
        dcr: FAKE_DCR_ID,
        stream: ALERT_STREAM,
        apiVersion: '2023-01-01',
        contentEncoding: 'gzip',
        authorization: TOKEN,
        status: 204,
        rows: 1,
      },
    ]);
    expect(identity.requests.at(-1)?.resource).toBe('https://monitor.azure.com');
  });

  it('answers 204 to a valid request and refuses what the service refuses', async () => {
    const row = toRow(makeAlert(1));
    expect((await post(fake, [row])).status).toBe(204);
    const cases: [string, Promise<RawAnswer>, number, string][] = [
      [
        'no api-version',
        post(fake, [row], { path: `/dataCollectionRules/${FAKE_DCR_ID}/streams/${ALERT_STREAM}` }),
        400,
        'InvalidApiVersion',
      ],
      ['no token', post(fake, [row], { headers: { authorization: '' } }), 401, 'InvalidToken'],
      [
        'token for another audience',
        post(fake, [row], { headers: { authorization: 'Bearer test-token:https://storage.azure.com' } }),
        401,
        'InvalidToken',
      ],
      [
        'unknown DCR',
        post(fake, [row], {
          path: `/dataCollectionRules/dcr-other/streams/${ALERT_STREAM}?api-version=2023-01-01`,
        }),
        404,
        'NotFound',
      ],
      [
        'undeclared stream',
        post(fake, [row], {
          path: `/dataCollectionRules/${FAKE_DCR_ID}/streams/Custom-Other_CL?api-version=2023-01-01`,
        }),
        400,
        'InvalidStream',
      ],
      [
        'not gzip',
        post(fake, [row], {
          headers: { 'content-encoding': 'identity' },
          body: Buffer.from(JSON.stringify([row])),
        }),
        400,
        'InvalidContentEncoding',
      ],
      [
        'gzip header, plain body',
        post(fake, [row], { body: Buffer.from(JSON.stringify([row])) }),
        400,
        'InvalidContent',
      ],
      ['not an array', post(fake, row), 400, 'InvalidContent'],
      [
        'over 1 MB',
        post(fake, [{ ...row, Description: 'x'.repeat(1_100_000) }]),
        413,
        'ContentLengthLimitExceeded',
      ],
      [
        'a bad row among good ones',
        post(fake, [row, { ...row, RiskScore: 1.5 }, row]),
        400,
        'InvalidContent',
      ],
    ];
    for (const [name, answer, status, code] of cases) {
      const a = await answer;
      expect([name, a.status, errorCode(a)]).toStrictEqual([name, status, code]);
    }
    expect(fake.received).toHaveLength(1); // only the first, valid request
  });

  it('checks every column: names (case included), presence and declared type', () => {
    const row = toRow(makeAlert(1));
    expect(rowProblem(row, ALERT_COLUMNS)).toBeUndefined();
    const { Caller: _caller, ...missing } = row;
    const bad: [string, unknown][] = [
      ['missing column', missing],
      ['extra column', { ...row, Extra: 1 }],
      [
        'wrong case',
        { ...Object.fromEntries(Object.entries(row).map(([k, v]) => [k === 'AlertId' ? 'alertId' : k, v])) },
      ],
      ['datetime not ISO', { ...row, TimeGenerated: 'March 10, 2025' }],
      ['datetime as number', { ...row, TimeGenerated: Date.now() }],
      ['int with a fraction', { ...row, RiskScore: 50.5 }],
      ['int as string', { ...row, EventCount: '3' }],
      ['int over 32 bits', { ...row, EventCount: 2 ** 31 }],
      ['real as string', { ...row, AnomalyScore: '87.5' }],
      ['string as number', { ...row, Caller: 42 }],
      ['dynamic as string', { ...row, Operations: 'a,b' }],
      ['null value', { ...row, SrcGeoCity: null }],
      ['not an object', [row]],
    ];
    for (const [name, value] of bad)
      expect([name, rowProblem(value, ALERT_COLUMNS)]).not.toStrictEqual([name, undefined]);
    expect(rowProblem({ ...row, Operations: [], Explanation: {} }, ALERT_COLUMNS)).toBeUndefined();
  });

  it('injects failures: 500 and 429 (retried by the SDK), partial, down', async () => {
    const row = toRow(makeAlert(1));
    fake.failNext(500);
    expect((await post(fake, [row])).status).toBe(500);
    expect((await post(fake, [row])).status).toBe(204);

    fake.failNext(429, 2);
    const throttled = await post(fake, [row]);
    expect(throttled.status).toBe(429);
    expect((await post(fake, [row])).status).toBe(429);
    expect((await post(fake, [row])).status).toBe(204);

    fake.failNext('partial');
    expect((await post(fake, [row])).status).toBe(204);
    expect((await post(fake, [row])).status).toBe(500);
    expect((await post(fake, [row])).status).toBe(204);

    fake.setDown(true);
    expect((await post(fake, [row])).status).toBe(503);
    fake.setDown(false);
    expect(fake.rejected).toHaveLength(5);
    expect(fake.received).toHaveLength(4);

    // The SDK retries a 429 after Retry-After (1 s by default here).
    fake.failNext(429);
    const started = Date.now();
    await ingestionClient(fake).upload(FAKE_DCR_ID, ALERT_STREAM, [row]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(fake.requests.slice(-2).map((r) => r.status)).toStrictEqual([429, 204]);
  });
});
