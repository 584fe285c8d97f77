/**
 * The bootstrap against the local end-to-end harness: the real SDK clients with the production credential chain
 * (a local managed-identity endpoint), a local https Log Analytics that evaluates the query over generated
 * history rows, Azurite's Table service in-process, and the local Logs Ingestion service. Covers the CLI in
 * Azure mode, the HTTP function (started, crashed, resumed), the timer after a bootstrap (continuing from its
 * end, no double count, the learning gate open), the timer continuing an unfinished bootstrap, and the
 * empty-baseline message. Every scenario has its own table prefix in the same Azurite.
 */
import { fileURLToPath } from 'node:url';

import { HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeBootstrapHandler } from '../../functions/bootstrapBaselines.js';
import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { runBaselineCommand } from '../../shared/cli/baseline.js';
import { runBootstrapCommand } from '../../shared/cli/bootstrap.js';
import { loadSettings } from '../../shared/config/settings.js';
import { startBootstrap } from '../../shared/ops/bootstrap.js';
import { openAzureOps } from '../../shared/ops/clients.js';
import { readBootstrap, readCheckpoint } from '../../shared/pipeline/runState.js';
import { runTick } from '../../shared/pipeline/tick.js';
import { type Harness, startHarness } from '../support/e2eHarness.js';
import { ev, IP } from '../support/events.js';
import type { FakeIngestion } from '../support/fakeIngestion.js';
import type { FakeLogAnalytics } from '../support/fakeLogAnalytics.js';
import { invocationContext as context, timer } from '../support/invocation.js';
import {
  BACKUP,
  crashingStore,
  DAY,
  dump,
  history,
  HOUR,
  LISTKEYS,
  MIN,
  partitionsWithRows,
  T0,
} from './helpers.js';

const DAYS = 12;
const END = T0 + DAYS * DAY;
const ATTACK = END + 40 * MIN;
const events = history(DAYS);

describe('bootstrap end to end (real SDK clients, local services)', () => {
  let harness: Harness;
  let logs: FakeLogAnalytics;
  let ingestion: FakeIngestion;
  let ca: string;
  let base: Record<string, string>;
  let reference: Awaited<ReturnType<typeof dump>>;
  const envFor = (prefix: string) => ({ ...base, UC_TABLE_PREFIX: prefix });
  const storeFor = (prefix: string) => harness.tableStore(prefix);

  beforeAll(async () => {
    harness = await startHarness({ rows: events.map(toActivityRow) });
    ({ logs, ingestion, ca } = harness);
    base = harness.env({ UC_BOOTSTRAP_DAYS: String(DAYS) });
    // What regular hourly runs over the same period learn, reading the same Log Analytics (into SQLite): the
    // bootstrap must learn exactly this. (Same source: the order in which groups arrive decides, e.g., which of
    // two IPs of one city gives the city row its coordinates.)
    const ref = SqliteStore.open(':memory:');
    const hourly = loadSettings({ ...base, UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
    const ops = await openAzureOps(hourly, base, () => undefined, { tlsCa: ca });
    const source = ops.source;
    // The GeoIP and network databases as the runs have them (the embedded City database and ASN tables).
    const { geo, networks } = await ops.geo.current();
    for (let t = T0 + HOUR; t <= END; t += HOUR) {
      await runTick(
        {
          store: ref,
          geo,
          ...(networks ? { networks } : {}),
          settings: hourly,
          sink: new MemoryAlertSink(),
          defaults: alertDefaults(hourly),
        },
        t,
        await source.read(t - 2 * HOUR, t),
      );
    }
    reference = await dump(ref);
    await ref.close();
  }, 120_000);

  afterAll(async () => {
    await harness.stop();
  });

  it('CLI, Azure mode: one query per day of history, the baselines of regular runs, no alert', async () => {
    const out: string[] = [];
    const err: string[] = [];
    logs.reset();
    const code = await runBootstrapCommand(['--by', 'alice', '--reason', 'first deployment'], {
      env: envFor('ucboot'),
      stdout: (s) => out.push(s),
      stderr: (s) => err.push(s),
      tlsCa: ca,
      clock: () => END + 7 * MIN,
    });
    expect(err.join('')).not.toContain('error');
    expect(code).toBe(0);
    expect(out.join('')).toMatch(
      /^bootstrap done: 12 day\(s\) of history, 2026-10-05T00:00:00.000Z to 2026-10-17T00:00:00.000Z/,
    );
    expect(err.join('')).toContain('bootstrap: 12/12 window(s) (100%)');
    const windows = logs.requests.filter((r) => r.status === 200).map((r) => r.timespan);
    expect(windows).toEqual(
      Array.from(
        { length: DAYS },
        (_, d) => `${new Date(T0 + d * DAY).toISOString()}/${new Date(T0 + (d + 1) * DAY).toISOString()}`,
      ),
    );
    const store = await storeFor('ucboot');
    expect(await dump(store)).toEqual(reference);
    expect(await readCheckpoint(store)).toBe(END);
    expect(await partitionsWithRows(store, 'alerts')).toEqual([]);
    expect(await partitionsWithRows(store, 'outbox')).toEqual([]);
    expect(ingestion.requests).toHaveLength(0);
    expect(await readBootstrap(store)).toMatchObject({
      state: 'done',
      requestedBy: 'alice',
      reason: 'first deployment',
    });

    // --status reads it back.
    const status: string[] = [];
    expect(
      await runBootstrapCommand(['--status', '--json'], {
        env: envFor('ucboot'),
        stdout: (s) => status.push(s),
        stderr: () => undefined,
      }),
    ).toBe(0);
    expect(JSON.parse(status.join(''))).toMatchObject({ state: 'done', percent: 100, windowsDone: DAYS });
  });

  it('the timer afterwards: continues from the end of history, counts nothing twice, alerts at full strength', async () => {
    logs.rows.push(
      toActivityRow(ev(ATTACK, LISTKEYS, 'admin@contoso.com', IP.lagos)),
      toActivityRow(
        ev(ATTACK + 3 * MIN, 'Microsoft.Authorization/roleAssignments/write', 'admin@contoso.com', IP.lagos),
      ),
    );
    const store = await storeFor('ucboot');
    const before = await dump(store);
    const lines: string[] = [];
    const now = END + HOUR + 5 * MIN;
    const handler = makeDetectHandler({ env: envFor('ucboot'), tlsCa: ca, clock: () => now });
    const report = await handler(timer(), context('detectUnusualCity', 'after-bootstrap', lines));
    expect(report.baseline).toBe('ready');
    expect(report.ticks[0]).toBe(END + 15 * MIN);
    expect(report.ticks.at(-1)).toBe(END + HOUR);
    expect(report.alerts).toBe(1);
    expect(report.delivered).toBe(1);
    const row = ingestion.received.at(-1)!;
    expect([row.Caller, row.SrcGeoCity]).toEqual(['admin@contoso.com', 'Lagos']);
    const factors = (row.Explanation as { operations: { factors: { learningFactor: number } }[] })
      .operations[0]!.factors;
    expect(factors.learningFactor).toBe(1);
    // The nightly job ran in the last two hours of history, which the first windows read again: unchanged.
    const after = await dump(store);
    expect(after[`baselines/${BACKUP.toLowerCase()}`]).toEqual(before[`baselines/${BACKUP.toLowerCase()}`]);
    expect(lines.some((l) => l.includes('Empty baselines'))).toBe(false);
  });

  it('HTTP function: 202 with a status URL, a crash mid-way, resumed by a second request to the same state', async () => {
    const prefix = 'uchttp';
    const settings = loadSettings(envFor(prefix));
    const url = 'https://unusual-city.azurewebsites.net/api/bootstrapBaselines';
    const lines: string[] = [];
    const background: string[] = [];
    const open = async (crashAt?: number) => {
      const clients = await openAzureOps(settings, envFor(prefix), () => undefined, { tlsCa: ca });
      const store = crashAt === undefined ? clients.store : crashingStore(clients.store, crashAt, true);
      return { settings, ...clients, store };
    };
    const first = makeBootstrapHandler({
      deps: () => open(40),
      clock: () => END + 7 * MIN,
      log: (l, m) => background.push(`${l}: ${m}`),
    });
    const none = await first(
      new HttpRequest({ method: 'GET', url }),
      context('bootstrapBaselines', 'g0', lines),
    );
    expect(none.status).toBe(404);
    const bad = await first(
      new HttpRequest({ method: 'POST', url, query: { days: 'lots' } }),
      context('bootstrapBaselines', 'p0', lines),
    );
    expect(bad.status).toBe(400);

    const started = await first(
      new HttpRequest({
        method: 'POST',
        url: `${url}?days=12`,
        query: { days: '12' },
        body: { string: '{"by":"bob"}' },
      }),
      context('bootstrapBaselines', 'p1', lines),
    );
    expect(started.status).toBe(202);
    const body = started.jsonBody as {
      bootstrap: Record<string, unknown>;
      statusUrl: string;
      created: boolean;
    };
    expect(body.created).toBe(true);
    expect(body.statusUrl).toBe(url);
    expect((started.headers as Record<string, string>).Location).toBe(url);
    expect(body.bootstrap).toMatchObject({
      state: 'running',
      days: 12,
      requestedBy: 'bob',
      windowsTotal: DAYS,
    });
    await first.idle();
    // The worker "died" at its 40th write, somewhere in the middle: the status says running, partly done.
    expect(background.some((l) => l.startsWith('error: bootstrapBaselines: crash after write 40'))).toBe(
      true,
    );
    const mid = await first(
      new HttpRequest({ method: 'GET', url }),
      context('bootstrapBaselines', 'g1', lines),
    );
    expect(mid.status).toBe(200);
    const midStatus = (mid.jsonBody as { bootstrap: { state: string; windowsDone: number } }).bootstrap;
    expect(midStatus.state).toBe('running');
    expect(midStatus.windowsDone).toBeGreaterThan(0);
    expect(midStatus.windowsDone).toBeLessThan(DAYS);

    // A new instance after the dead worker's lease expired: POST resumes the same bootstrap.
    const second = makeBootstrapHandler({
      deps: () => open(),
      clock: () => END + 15 * MIN,
      log: () => undefined,
    });
    const resumed = await second(
      new HttpRequest({ method: 'POST', url }),
      context('bootstrapBaselines', 'p2', lines),
    );
    expect(resumed.status).toBe(202);
    expect((resumed.jsonBody as { created: boolean }).created).toBe(false);
    await second.idle();
    const done = await second(
      new HttpRequest({ method: 'GET', url }),
      context('bootstrapBaselines', 'g2', lines),
    );
    expect((done.jsonBody as { bootstrap: Record<string, unknown> }).bootstrap).toMatchObject({
      state: 'done',
      windowsDone: DAYS,
      end: new Date(END).toISOString(),
    });
    const store = await storeFor(prefix);
    expect(await dump(store)).toEqual(reference);
    expect(await readCheckpoint(store)).toBe(END);

    // Done and learned: a second bootstrap of an older period is refused (409), cancelling has nothing to stop.
    const again = await second(
      new HttpRequest({ method: 'POST', url, query: { days: '3' } }),
      context('bootstrapBaselines', 'p3', lines),
    );
    expect(again.status).toBe(409);
    expect((again.jsonBody as { error: string }).error).toContain('replace=true');
    // Replacing is destructive: without who and why it is a bad request, before anything else is checked.
    const queries: Record<string, string>[] = [
      { days: '3', replace: 'true' },
      { days: '3', replace: 'true', by: 'bob' },
    ];
    for (const query of queries) {
      const unexplained = await second(
        new HttpRequest({ method: 'POST', url, query }),
        context('bootstrapBaselines', 'p4', lines),
      );
      expect(unexplained.status).toBe(400);
      expect((unexplained.jsonBody as { error: string }).error).toMatch(/replace needs (by|reason)/);
    }
    const cancel = await second(
      new HttpRequest({ method: 'DELETE', url, query: { by: 'bob', reason: 'oops' } }),
      context('bootstrapBaselines', 'd1', lines),
    );
    expect(cancel.status).toBe(409);
    const noWho = await second(
      new HttpRequest({ method: 'DELETE', url }),
      context('bootstrapBaselines', 'd2', lines),
    );
    expect(noWho.status).toBe(400);
  });

  it('the timer continues an unfinished bootstrap itself, then detects: the same state as CLI + timer', async () => {
    const prefix = 'uctimer';
    const store = await storeFor(prefix);
    await startBootstrap(store, {
      days: DAYS,
      endMs: END,
      source: 'log-analytics',
      requestedBy: 'http',
      clock: () => END + 7 * MIN,
    });
    const lines: string[] = [];
    const now = END + HOUR + 5 * MIN;
    const handler = makeDetectHandler({ env: envFor(prefix), tlsCa: ca, clock: () => now });
    const report = await handler(timer(), context('detectUnusualCity', 'continue', lines));
    expect(report.baseline).toBe('ready');
    expect((await readBootstrap(store))?.state).toBe('done');
    expect(report.ticks[0]).toBe(END + 15 * MIN);
    expect(
      lines.some((l) => l.includes('Bootstrap done: 12 day(s) of history')),
      lines.join('\n'),
    ).toBe(true);
    // Same history, same runs after it: the same baselines as the CLI bootstrap followed by the timer.
    expect(await dump(store)).toEqual(await dump(await storeFor('ucboot')));
  });

  it('an allow rule added with the CLI is honoured by the next timer run (allow table, service tags)', async () => {
    const out: string[] = [];
    const code = await runBaselineCommand(
      ['allow', 'caller', 'admin@contoso.com', '--by', 'alice', '--reason', 'travelling admin'],
      { env: envFor('ucboot'), stdout: (s) => out.push(s), stderr: (s) => out.push(s) },
    );
    expect(code, out.join('')).toBe(0);
    const t = END + HOUR + 20 * MIN;
    logs.rows.push(
      toActivityRow(ev(t, LISTKEYS, 'admin@contoso.com', IP.newYork)),
      toActivityRow(ev(t + MIN, LISTKEYS, 'ops1@contoso.com', IP.newYork)),
    );
    // Control: the same state without any allowlist (the twin of the CLI bootstrap) alerts on both callers.
    const control = makeDetectHandler({
      env: envFor('uctimer'),
      tlsCa: ca,
      clock: () => END + HOUR + 35 * MIN,
    });
    const plain = await control(timer(), context('detectUnusualCity', 'control', []));
    expect(plain.alerts).toBe(2);
    expect(plain.allowlisted).toBe(0);
    const lines: string[] = [];
    const delivered = ingestion.received.length;
    const handler = makeDetectHandler({
      env: {
        ...envFor('ucboot'),
        UC_SERVICE_TAGS_FILE: fileURLToPath(new URL('./fixtures/ServiceTags_Public.json', import.meta.url)),
        UC_ALLOW_SERVICE_TAGS: 'AzureCloud.eastus',
      },
      tlsCa: ca,
      clock: () => END + HOUR + 35 * MIN,
    });
    const report = await handler(timer(), context('detectUnusualCity', 'allowed', lines));
    expect(report.ticks).toEqual([END + HOUR + 15 * MIN, END + HOUR + 30 * MIN]);
    expect(report.alerts).toBe(0);
    expect(report.allowlisted).toBe(2);
    expect(ingestion.received).toHaveLength(delivered);
    const line = lines.find((l) => l.includes('Allowlisted 2 rare finding(s)'));
    expect(line).toContain('1× caller admin@contoso.com (allow table: alice, 2026-');
    expect(line).toContain('1× service tag AzureCloud.eastus (UC_ALLOW_SERVICE_TAGS)');
  });

  it('a first run with nothing learned says so, pointing at the bootstrap', async () => {
    const lines: string[] = [];
    const handler = makeDetectHandler({
      env: envFor('ucempty'),
      tlsCa: ca,
      clock: () => END + 2 * HOUR + MIN,
    });
    const report = await handler(timer(), context('detectUnusualCity', 'first', lines));
    expect(report.baseline).toBe('empty');
    const warning = lines.find((l) => l.includes('Empty baselines'));
    expect(warning).toMatch(/^warning: .*unusual-city bootstrap.*POST \/api\/bootstrapBaselines/);
  });
});
