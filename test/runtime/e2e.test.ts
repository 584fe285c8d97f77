/**
 * The proof: the real timer handler, driven with an InvocationContext and a Timer, against the production
 * credential chain (DefaultAzureCredential → managed identity, answered by a local App Service MSI endpoint),
 * a local https Log Analytics query service, Azurite's Table service in-process, and a local https Logs
 * Ingestion service that checks every row against the alert-column file. Nothing leaves 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import type { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { loadSettings } from '../../shared/config/settings.js';
import { readCheckpoint } from '../../shared/pipeline/runState.js';
import { type Harness, startHarness, WORKSPACE } from '../support/e2eHarness.js';
import { ev, IP } from '../support/events.js';
import { FAKE_DCR_ID, type FakeIngestion } from '../support/fakeIngestion.js';
import type { FakeLogAnalytics } from '../support/fakeLogAnalytics.js';
import { tokenFor } from '../support/identity.js';
import { invocationContext, timer } from '../support/invocation.js';
import { LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5); // a Monday
const ATTACK = T0 + 10 * DAY + 3 * HOUR + 10 * MIN;

describe('detectUnusualCity end to end (real SDK clients, local services)', () => {
  let harness: Harness;
  let logs: FakeLogAnalytics;
  let ingestion: FakeIngestion;
  let env: Record<string, string>;
  const now = { ms: ATTACK + 5 * MIN + 12_000 };
  const logLines: string[] = [];
  let handler: ReturnType<typeof makeDetectHandler>;
  let store: TableStorageStore;
  // Ten days of a London team, then an admin's credentials used from Lagos.
  const events = londonTeam(10);

  const invoke = (isPastDue = false) =>
    handler(timer(isPastDue), invocationContext('detectUnusualCity', `inv-${now.ms}`, logLines));

  beforeAll(async () => {
    harness = await startHarness({ rows: events.map(toActivityRow) });
    ({ logs, ingestion } = harness);
    env = harness.env();
    const settings = loadSettings(env);
    store = await harness.tableStore(settings.UC_TABLE_PREFIX);
    // Baselines from the ten days of history (hourly runs to keep the set-up quick), the same store the
    // function uses: the checkpoint ends where the history ends.
    const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
    await replayInto(store, events, { settings: hourly, toMs: T0 + 10 * DAY });
    // The attack arrives in Log Analytics.
    logs.rows.push(
      toActivityRow(ev(ATTACK, LISTKEYS, 'admin@contoso.com', IP.lagos)),
      toActivityRow(
        ev(ATTACK + 3 * MIN, 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE', 'admin@contoso.com', IP.lagos),
      ),
    );
    handler = makeDetectHandler({ env, tlsCa: harness.ca, clock: () => now.ms });
  }, 120_000);

  afterAll(async () => {
    await harness.stop();
  });

  it('a normal run: catches up to its slot, raises the explained alert and delivers it', async () => {
    const checkpointBefore = await readCheckpoint(store);
    // The history replay checkpointed its last hourly run, after the last history event (day 9, 17:40).
    expect(checkpointBefore).toBe(T0 + 9 * DAY + 18 * HOUR);
    const report = await invoke();
    const slot = Math.floor(now.ms / (15 * MIN)) * 15 * MIN;
    expect(report.ticks.at(-1)).toBe(slot);
    expect(report.ticks[0]).toBe(checkpointBefore + 15 * MIN);
    expect(report.ticks).toHaveLength((slot - checkpointBefore) / (15 * MIN));
    expect(report.alerts).toBe(1);
    expect(report.delivered).toBe(1);
    expect(report.pendingOutbox).toBe(0);
    // The alert reached the ingestion service once, in the column file's shape (the fake validated every row).
    expect(ingestion.received).toHaveLength(1);
    expect(ingestion.rejected).toEqual([]);
    const row = ingestion.received[0]!;
    expect(row.Caller).toBe('admin@contoso.com');
    expect(row.SrcGeoCity).toBe('Lagos');
    expect(row.Operations).toEqual(expect.arrayContaining([LISTKEYS]));
    const upload = ingestion.requests.at(-1)!;
    expect(upload.stream).toBe('Custom-UnusualCityAlerts_CL');
    expect(upload.dcr).toBe(FAKE_DCR_ID);
    expect(upload.apiVersion).toBe('2023-01-01');
    expect(upload.contentEncoding).toBe('gzip');
    expect(upload.authorization).toBe(`Bearer ${tokenFor('https://monitor.azure.com')}`);
    // Log Analytics got one query per tick, for exactly that tick's window, with the managed identity's token.
    const queries = logs.requests.filter((r) => r.status === 200);
    expect(queries).toHaveLength(report.ticks.length);
    const last = queries.at(-1)!;
    expect(last.workspace).toBe(WORKSPACE);
    expect(last.timespan).toBe(`${new Date(slot - 2 * HOUR).toISOString()}/${new Date(slot).toISOString()}`);
    expect(last.authorization).toBe(`Bearer ${tokenFor('https://api.loganalytics.io')}`);
    expect(harness.identity.requests.map((r) => r.resource)).toEqual(
      expect.arrayContaining(['https://api.loganalytics.io', 'https://monitor.azure.com']),
    );
    expect(await readCheckpoint(store)).toBe(slot);
  });

  it('a second, overlapping run: no new alert and no double count', async () => {
    now.ms += 15 * MIN;
    const before = await store.readPartition('baselines', LISTKEYS.toLowerCase());
    const report = await invoke();
    expect(report.ticks).toHaveLength(1);
    expect(report.alerts).toBe(0);
    expect(ingestion.received).toHaveLength(1);
    const after = await store.readPartition('baselines', LISTKEYS.toLowerCase());
    expect(after.get('g:2332459')?.rawHours).toBe(1);
    expect(after.get('g:2332459')).toEqual(before.get('g:2332459'));
  });

  it('ingestion down for hours: alerts wait in the outbox, then arrive exactly once', async () => {
    ingestion.setDown(true);
    const t = now.ms + 10 * MIN;
    logs.rows.push(toActivityRow(ev(t, LISTKEYS, 'dev1@contoso.com', IP.newYork)));
    now.ms += 15 * MIN;
    const down1 = await invoke();
    expect(down1.alerts).toBe(1);
    expect(down1.delivered).toBe(0);
    expect(down1.pendingOutbox).toBe(1);
    now.ms += 15 * MIN;
    const down2 = await invoke();
    expect(down2.pendingOutbox).toBe(1);
    expect(ingestion.received).toHaveLength(1);
    ingestion.setDown(false);
    now.ms += 15 * MIN;
    const up = await invoke();
    expect(up.delivered).toBe(1);
    expect(up.pendingOutbox).toBe(0);
    expect(ingestion.received.map((r) => r.Caller)).toEqual(['admin@contoso.com', 'dev1@contoso.com']);
    now.ms += 15 * MIN;
    await invoke();
    expect(ingestion.received).toHaveLength(2);
  });

  it('a partial result from Log Analytics: the tick is not checkpointed and is redone next run', async () => {
    now.ms += 15 * MIN;
    const checkpoint = await readCheckpoint(store);
    logs.failNext('partial');
    const report = await invoke();
    expect(report.ticks).toEqual([]);
    expect(report.stoppedBecause).toBeDefined();
    expect(await readCheckpoint(store)).toBe(checkpoint);
    now.ms += 15 * MIN;
    const next = await invoke();
    expect(next.ticks).toEqual([checkpoint + 15 * MIN, checkpoint + 30 * MIN]);
  });

  it('a past-due timer after a two-hour outage runs every missed tick: no gap', async () => {
    const checkpoint = await readCheckpoint(store);
    logs.reset();
    now.ms += 2 * HOUR;
    const report = await invoke(true);
    expect(report.isPastDue).toBe(true);
    expect(report.ticks).toHaveLength(8);
    const windows = logs.requests
      .filter((r) => r.status === 200)
      .map((r) => (r.timespan ?? '').split('/').map((x) => Date.parse(x)) as [number, number]);
    expect(windows[0]![1]).toBe(checkpoint + 15 * MIN);
    for (let i = 1; i < windows.length; i++) expect(windows[i]![1] - windows[i - 1]![1]).toBe(15 * MIN);
    expect(logLines.some((l) => l.includes('Catching up 8 tick(s)'))).toBe(true);
  });
});
