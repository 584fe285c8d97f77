import { request } from 'node:https';

import type { LogsQueryClient } from '@azure/monitor-query-logs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { CLAIM } from '../../shared/activity/normalise.js';
import { DEMO_START } from '../../shared/demo/tenant.js';
import { shardOf } from '../../shared/pipeline/shard.js';
import { BudgetExceededError, RunBudget } from '../../shared/runtime/budget.js';
import {
  buildQuery,
  IncompleteWindowError,
  loadActivityQuery,
  LogAnalyticsQueryError,
  LogAnalyticsSource,
  type LogAnalyticsSourceOptions,
} from '../../shared/source/logAnalytics.js';
import {
  type AzureActivityRow,
  type FakeLogAnalytics,
  LOG_ANALYTICS_AUDIENCE,
  startFakeLogAnalytics,
} from '../support/fakeLogAnalytics.js';
import type { FakeIdentity } from '../support/identity.js';
import { logsQueryClient, startLogAnalyticsClient } from '../support/logsQueryClient.js';
import { DAY, differences, HOUR, reference, tenantRows } from './reference.js';

const WS = '0b9f3c2e-1d4a-4c6b-9e8f-7a6b5c4d3e2f';
const WS2 = '5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716';
const iso = (ms: number): string => new Date(ms).toISOString();
/** Day 11 of the demo tenant: working day, automation, and a 10,000-event runaway deployment loop. */
const D11 = DEMO_START + 11 * DAY;

describe('LogAnalyticsSource: the real LogsQueryClient and credential chain against a local query API', () => {
  let identity: FakeIdentity;
  let fake: FakeLogAnalytics;
  let client: LogsQueryClient;
  let close: () => Promise<void>;
  const rows = tenantRows(14);

  const source = (o: Partial<LogAnalyticsSourceOptions> = {}): LogAnalyticsSource =>
    new LogAnalyticsSource({ client, workspaceId: WS, retryBaseMs: 5, ...o });

  beforeAll(async () => {
    // The client's own retries are off so the source's retries are what is tested; one test turns them on.
    ({ identity, fake, client, close } = await startLogAnalyticsClient(rows));
  });
  afterAll(() => close());
  beforeEach(() => {
    fake.reset();
    fake.rows = rows;
  });

  it('a day of a generated tenant comes back exactly as the file pipeline aggregates it', async () => {
    const src = source();
    const groups = await src.read(D11, D11 + DAY);
    const ref = await reference(rows, D11, D11 + DAY);
    expect(ref.groups.length).toBeGreaterThan(100);
    expect(differences(groups, ref)).toEqual([]);
    expect(new Set(groups.map((g) => g.callerType))).toEqual(
      new Set(['user', 'servicePrincipal', 'managedIdentity']),
    );
    // The runaway loop: 10,000 events of one caller in one hour are one group, lists bounded to 20.
    const biggest = groups.reduce((a, b) => (b.count > a.count ? b : a));
    expect(biggest.count).toBeGreaterThanOrEqual(10_000);
    expect(biggest.correlationIds).toHaveLength(20);
    expect(src.lastRead).toMatchObject({ queries: 1, rows: groups.length, splits: 0, retries: 0 });
    expect(src.lastRead.durationMs).toBeGreaterThan(0);
  });

  it('sends the window as an explicit timespan, the additional workspaces, and a token for Log Analytics', async () => {
    const start = D11 + 12 * HOUR + 7 * 60_000 + 30_250;
    const end = D11 + 12 * HOUR + 52 * 60_000;
    await source({ additionalWorkspaces: [WS2] }).read(start, end);
    expect(fake.requests).toHaveLength(1);
    const r = fake.requests[0]!;
    expect(r.workspace).toBe(WS);
    expect(r.timespan).toBe(`${iso(start)}/${iso(end)}`);
    expect(r.workspaces).toEqual([WS2]);
    expect(r.authorization).toBe(`Bearer test-token:${LOG_ANALYTICS_AUDIENCE}`);
    expect(r.prefer).toMatch(/^wait=\d+$/);
    expect(r.query).toBe(buildQuery(await loadActivityQuery(), { startMs: start, endMs: end }));
    expect(r.status).toBe(200);
    expect(identity.requests.map((x) => x.resource)).toContain(LOG_ANALYTICS_AUDIENCE);
    // Without additional workspaces, none are sent.
    await source().read(start, end);
    expect(fake.requests[1]!.workspaces).toBeUndefined();
  });

  it('an empty window makes no query', async () => {
    const src = source();
    expect(await src.read(D11, D11)).toEqual([]);
    expect(fake.requests).toHaveLength(0);
    expect(src.lastRead.queries).toBe(0);
  });

  it('a window includes its start and excludes its end', async () => {
    const at = (ms: number, ip: string): AzureActivityRow => ({
      TimeGenerated: iso(ms),
      OperationNameValue: 'MICROSOFT.WEB/SITES/WRITE',
      CallerIpAddress: ip,
      Caller: 'ann@contoso.com',
      CategoryValue: 'Administrative',
      ActivityStatusValue: 'Success',
    });
    fake.rows = [
      at(D11 - 1, '1.1.1.1'),
      at(D11, '2.2.2.2'),
      at(D11 + HOUR - 1, '3.3.3.3'),
      at(D11 + HOUR, '4.4.4.4'),
    ];
    const groups = await source().read(D11, D11 + HOUR);
    expect(groups.map((g) => g.callerIp)).toEqual(['2.2.2.2', '3.3.3.3']);
  });

  it('filters categories and statuses in both status vocabularies', async () => {
    // Current AzureActivity rows say Success/Start, older ones Succeeded/Started: give the day both.
    const mixed = rows.map((r, i) =>
      i % 2 === 0 && r.ActivityStatusValue === 'Succeeded' ? { ...r, ActivityStatusValue: 'Success' } : r,
    );
    // And a Security event that the category filter must drop.
    mixed.push({
      ...rows.find((r) => Date.parse(r.TimeGenerated as string) >= D11 + 10 * HOUR && r.CallerIpAddress)!,
      CategoryValue: 'Security',
      CorrelationId: 'security-event',
    });
    fake.rows = mixed;
    const filter = { categories: ['administrative'], statuses: ['Succeeded'] };
    const groups = await source(filter).read(D11, D11 + DAY);
    const ref = await reference(mixed, D11, D11 + DAY, filter);
    expect(differences(groups, ref)).toEqual([]);
    expect(groups.some((g) => g.correlationIds.includes('security-event'))).toBe(false);
    const all = await source().read(D11, D11 + DAY);
    const total = (gs: { count: number }[]) => gs.reduce((n, g) => n + g.count, 0);
    // Started rows and the Security event are gone; Success and Succeeded rows both stay.
    expect(total(groups)).toBeLessThan(total(all) / 2 + 100);
    expect(total(groups)).toBeGreaterThan(total(all) / 3);
    expect(fake.requests[0]!.query).toContain('let statuses = dynamic(["Succeeded","Success"]);');
  });

  it('classifies callers from claims, takes the caller from claims when Caller is empty, merges casings and ports', async () => {
    const base = {
      OperationNameValue: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
      CategoryValue: 'Administrative',
      ActivityStatusValue: 'Success',
      SubscriptionId: '6F1C2A9E-3B7D-4E21-9C58-0D4F7A1B2C3D',
      ResourceGroup: 'rg-data',
      _ResourceId:
        '/subscriptions/6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d/resourcegroups/rg-data/providers/x/y/z',
    };
    const t = (min: number) => iso(D11 + 9 * HOUR + min * 60_000);
    const sp = '3c9e1f52-8a47-4d6b-b0e3-5f2a7c91d604';
    const mi = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
    const unknown = '11111111-2222-4333-8444-555555555555';
    fake.rows = [
      // A user known only by the upn claim (no idtyp), and a later event spelled in lower case.
      {
        ...base,
        TimeGenerated: t(5),
        CallerIpAddress: '5.10.99.10',
        Caller: 'ann@contoso.com',
        Claims_d: { [CLAIM.upn]: 'ann@contoso.com' },
      },
      {
        ...base,
        TimeGenerated: t(6),
        CallerIpAddress: '5.10.99.10',
        Caller: 'ann@contoso.com',
        OperationNameValue: 'microsoft.storage/storageaccounts/listkeys/action',
      },
      // The same user's IP once with a port: one group of two events.
      { ...base, TimeGenerated: t(7), CallerIpAddress: '5.10.99.11:51234', Caller: 'ann@contoso.com' },
      { ...base, TimeGenerated: t(8), CallerIpAddress: '5.10.99.11', Caller: 'ann@contoso.com' },
      // A service principal by its appid claim and Authorization evidence, Claims_d given as JSON text.
      {
        ...base,
        TimeGenerated: t(9),
        CallerIpAddress: '37.58.99.10',
        Caller: sp,
        Claims_d: JSON.stringify({ appid: sp }),
        Authorization_d: { evidence: { principalType: 'ServicePrincipal' } },
      },
      // A managed identity (xms_mirid), even though idtyp says app.
      {
        ...base,
        TimeGenerated: t(10),
        CallerIpAddress: '37.58.99.11',
        Caller: mi,
        Claims_d: {
          appid: mi,
          idtyp: 'app',
          xms_mirid:
            '/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z',
        },
      },
      // A GUID caller with nothing else known.
      { ...base, TimeGenerated: t(11), CallerIpAddress: '37.58.99.12', Caller: unknown },
      // No Caller column value: the caller comes from the upn claim.
      {
        ...base,
        TimeGenerated: t(12),
        CallerIpAddress: '37.58.99.13',
        Caller: '',
        Claims_d: { [CLAIM.upn]: 'bob@contoso.com', idtyp: 'user' },
      },
      // Azure-internal (no caller IP): not returned.
      { ...base, TimeGenerated: t(13), CallerIpAddress: '', Caller: 'ann@contoso.com' },
    ];
    const groups = await source().read(D11, D11 + DAY);
    const byIp = new Map(groups.map((g) => [g.callerIp, g]));
    expect(groups).toHaveLength(6);
    expect(byIp.get('5.10.99.10')).toMatchObject({
      caller: 'ann@contoso.com',
      callerType: 'user',
      count: 2,
      operation: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
      operationKey: 'microsoft.storage/storageaccounts/listkeys/action',
      subscriptionId: '6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d',
      resourceGroup: 'rg-data',
      hourMs: D11 + 9 * HOUR,
      firstMs: D11 + 9 * HOUR + 5 * 60_000,
      lastMs: D11 + 9 * HOUR + 6 * 60_000,
      resourceIds: [base._ResourceId],
    });
    expect(byIp.get('5.10.99.11')).toMatchObject({ count: 2, callerType: 'user' });
    expect(byIp.get('37.58.99.10')).toMatchObject({ caller: sp, callerType: 'servicePrincipal' });
    expect(byIp.get('37.58.99.11')).toMatchObject({ caller: mi, callerType: 'managedIdentity' });
    expect(byIp.get('37.58.99.12')).toMatchObject({ caller: unknown, callerType: 'unknown' });
    expect(byIp.get('37.58.99.13')).toMatchObject({ caller: 'bob@contoso.com', callerType: 'user' });
  });

  it('a partial failure is an IncompleteWindowError naming the workspace, the window and the service error', async () => {
    fake.failNext('partial');
    const src = source({ additionalWorkspaces: [WS2] });
    const error = await src.read(D11, D11 + DAY).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompleteWindowError);
    const e = error as IncompleteWindowError;
    expect(e.name).toBe('IncompleteWindowError');
    expect(e.message).toContain(WS);
    expect(e.message).toContain(`${iso(D11)} to ${iso(D11 + DAY)}`);
    expect(e.message).toContain('PartialError');
    expect(e.message).toContain('InsufficientAccessError');
    expect(e.code).toBe('PartialError');
    expect(fake.requests).toHaveLength(1);
    expect(src.lastRead.splits).toBe(0);
  });

  it('more groups than maxRowsPerQuery: the reader reads on after the last group received; same result', async () => {
    const logs: string[] = [];
    const whole = source();
    const all = await whole.read(D11, D11 + DAY);
    fake.reset();
    const src = source({ maxRowsPerQuery: 40, log: (level, msg) => logs.push(`${level} ${msg}`) });
    const groups = await src.read(D11, D11 + DAY);
    expect(logs[0]).toMatch(
      new RegExp(
        `^warn Log Analytics: more than 40 groups; kept 40 groups, reading on from slot \\S+ key \\d+ to ${iso(D11 + DAY)}$`,
      ),
    );
    expect(logs.at(-1)).toMatch(
      /^info Log Analytics: \d+ groups for .* \(\d+ queries, \d+ rows, \d+ splits, 0 retries\)$/,
    );
    expect(differences(groups, await reference(rows, D11, D11 + DAY))).toEqual([]);
    expect(groups).toEqual(all);
    expect(src.lastRead.splits).toBeGreaterThan(3);
    expect(src.lastRead.queries).toBe(src.lastRead.splits + 1);
    // Nothing is read twice but the one group at each cut (the look-ahead row past maxRows), and every request
    // after the first carries the cursor and starts at its slot, never before the previous one.
    expect(src.lastRead.rows).toBe(whole.lastRead.rows + src.lastRead.splits);
    const spans = fake.requests.map((r) => r.timespan!.split('/').map(Date.parse) as [number, number]);
    expect(fake.requests[0]!.query).toContain('let resume = false;');
    for (let i = 1; i < spans.length; i++) {
      expect(fake.requests[i]!.query).toContain('let resume = true;');
      expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![0]);
      expect(spans[i]![1]).toBe(D11 + DAY);
    }
  });

  it('a queue-mode shard downloads its share only: the shares are disjoint and make up the window', async () => {
    const whole = source();
    const all = await whole.read(D11, D11 + DAY);
    const shares = [];
    for (let index = 0; index < 3; index++) {
      const src = source();
      const share = await src.read(D11, D11 + DAY, { index, count: 3 });
      expect(share.length).toBeGreaterThan(0);
      expect(share.every((g) => shardOf(g.operationKey, 3) === index)).toBe(true);
      expect(src.lastRead.rows).toBe(share.length);
      expect(src.lastRead.rows).toBeLessThan(whole.lastRead.rows);
      shares.push(...share);
    }
    expect(shares.length).toBe(all.length);
    expect(new Set(shares.map((g) => JSON.stringify(g)))).toEqual(new Set(all.map((g) => JSON.stringify(g))));
    expect(fake.requests.at(-1)!.query).toContain('let shardCount = 3;\nlet shardIndex = 2;');
  });

  it('more than maxBytesPerQuery (estimated): split as well; same result', async () => {
    const src = source({ maxBytesPerQuery: 30_000 });
    const groups = await src.read(D11, D11 + DAY);
    expect(differences(groups, await reference(rows, D11, D11 + DAY))).toEqual([]);
    expect(src.lastRead.splits).toBeGreaterThan(0);
  });

  it('a cut inside one hour reads on inside it; a split inside one hour merges the halves of each group', async () => {
    const hour = D11 + 14 * HOUR; // the runaway loop's hour: one group spans 50 minutes of it
    const ref = await reference(rows, hour, hour + HOUR);
    const src = source({ maxRowsPerQuery: ref.groups.length - 1 });
    expect(differences(await src.read(hour, hour + HOUR), ref)).toEqual([]);
    expect(src.lastRead).toMatchObject({ splits: 1, queries: 2 });
    // The service's own truncation bisects the hour: its groups come in halves, merged.
    fake.reset();
    fake.failNext('truncate');
    const halves = source();
    expect(differences(await halves.read(hour, hour + HOUR), ref)).toEqual([]);
    expect(halves.lastRead.splits).toBeGreaterThan(0);
    const spans = fake.requests.map((r) => r.timespan!.split('/').map(Date.parse));
    expect(spans.some(([s, e]) => s! % HOUR !== 0 || e! % HOUR !== 0)).toBe(true);
  });

  it("the service's own truncation (partial error of its result limits) is split and read again", async () => {
    fake.failNext('truncate');
    const src = source();
    const groups = await src.read(D11, D11 + DAY);
    expect(differences(groups, await reference(rows, D11, D11 + DAY))).toEqual([]);
    expect(src.lastRead).toMatchObject({ splits: 1, queries: 3 });
  });

  it('a window still truncated at the smallest size is incomplete, not silently short', async () => {
    fake.failNext('truncate');
    const start = D11 + 14 * HOUR;
    const error = await source()
      .read(start, start + 90_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompleteWindowError);
    expect((error as IncompleteWindowError).code).toBe('ResultTooLarge');
  });

  it('429 and 500 are retried with backoff, then the read succeeds', async () => {
    fake.failNext(429, 2);
    fake.failNext(500);
    const src = source();
    const groups = await src.read(D11, D11 + DAY);
    expect(differences(groups, await reference(rows, D11, D11 + DAY))).toEqual([]);
    expect(src.lastRead).toMatchObject({ queries: 4, retries: 3, splits: 0 });
    expect(fake.requests.map((r) => r.status)).toEqual([429, 429, 500, 200]);
  });

  it('gives up after maxAttempts with the last service error', async () => {
    fake.failNext(500, 3);
    const error = await source({ maxAttempts: 3 })
      .read(D11, D11 + HOUR)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LogAnalyticsQueryError);
    expect((error as Error).message).toMatch(/failed 3 times \(last: 500 InternalServerError/);
    expect(fake.requests).toHaveLength(3);
  });

  it('a spent budget stops the retries with BudgetExceededError', async () => {
    fake.failNext(429, 50);
    const error = await source({ budget: () => new RunBudget(1_000), retryBaseMs: 300, maxAttempts: 50 })
      .read(D11, D11 + HOUR)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(fake.requests.length).toBeGreaterThan(1);
    expect(fake.requests.length).toBeLessThan(6);
    // An already spent budget sends nothing.
    fake.requests.length = 0;
    await expect(source({ budget: () => new RunBudget(0) }).read(D11, D11 + HOUR)).rejects.toBeInstanceOf(
      BudgetExceededError,
    );
    expect(fake.requests).toHaveLength(0);
  });

  it('403 is not retried and says which role the identity lacks', async () => {
    fake.failNext(403);
    const error = await source({ additionalWorkspaces: [WS2] })
      .read(D11, D11 + HOUR)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LogAnalyticsQueryError);
    expect((error as LogAnalyticsQueryError).statusCode).toBe(403);
    expect((error as Error).message).toContain('Log Analytics Reader');
    expect((error as Error).message).toContain(WS);
    expect((error as Error).message).toContain(WS2);
    expect((error as Error).message).toContain('InsufficientAccessError');
    expect(fake.requests).toHaveLength(1);
  });

  it("the client's own retry honours Retry-After before the source sees anything", async () => {
    const retrying = logsQueryClient(fake, { maxRetries: 2, retryDelayInMs: 10 });
    fake.failNext(429);
    const src = new LogAnalyticsSource({ client: retrying, workspaceId: WS });
    await src.read(D11, D11 + HOUR);
    expect(fake.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(src.lastRead).toMatchObject({ queries: 1, retries: 0 });
  });
});

describe('the fake query API is strict', () => {
  let fake: FakeLogAnalytics;
  let template: string;
  beforeAll(async () => {
    fake = await startFakeLogAnalytics({ rows: tenantRows(8) });
    template = await loadActivityQuery();
  });
  afterAll(() => fake.close());

  const post = (body: unknown, token = `test-token:${LOG_ANALYTICS_AUDIENCE}`) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(`${fake.endpoint}/workspaces/${WS}/query`);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          ca: fake.ca,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        },
        (res) => {
          let s = '';
          res.on('data', (c: Buffer) => (s += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  const window = { startMs: DEMO_START + DAY, endMs: DEMO_START + 2 * DAY };
  const span = `${iso(window.startMs)}/${iso(window.endMs)}`;

  it('answers the activity query with typed columns', async () => {
    const r = await post({ query: buildQuery(template, window), timespan: span });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body) as {
      tables: { columns: { name: string; type: string }[]; rows: unknown[][] }[];
    };
    expect(body.tables[0]!.columns.slice(0, 4)).toEqual([
      { name: 'Hour', type: 'datetime' },
      { name: 'Slot', type: 'datetime' },
      { name: 'OperationKey', type: 'string' },
      { name: 'Operation', type: 'string' },
    ]);
    expect(body.tables[0]!.rows.length).toBeGreaterThan(10);
  });

  it('rejects a request without timespan, or with one that is not the query window', async () => {
    expect((await post({ query: buildQuery(template, window) })).status).toBe(400);
    const shifted = `${iso(window.startMs)}/${iso(window.endMs + 1)}`;
    const r = await post({ query: buildQuery(template, window), timespan: shifted });
    expect(r.status).toBe(400);
    expect(r.body).toContain('is not the query');
  });

  it('rejects a token for another audience, and any other query text', async () => {
    expect(
      (
        await post(
          { query: buildQuery(template, window), timespan: span },
          'test-token:https://management.azure.com',
        )
      ).status,
    ).toBe(401);
    expect((await post({ query: `${buildQuery(template, window)}\n| take 1`, timespan: span })).status).toBe(
      400,
    );
    expect(
      (await post({ query: buildQuery(template, window).replace('"', ''), timespan: span })).status,
    ).toBe(400);
  });
});
