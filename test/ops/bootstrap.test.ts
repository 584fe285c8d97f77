/**
 * The bootstrap on local state (SQLite): history counted exactly as the regular runs count it, no alert, resumable
 * after a crash at any write, idempotent with the timer runs that follow, the learning gate open, and the timer's
 * side of it (continuing an unfinished bootstrap, waiting for another worker, the empty-baseline message).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { runBootstrapCommand } from '../../shared/cli/bootstrap.js';
import { alertDefaults } from '../../shared/cli/runtime.js';
import { loadSettings, type Settings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator } from '../../shared/geo/types.js';
import { readAudit } from '../../shared/ops/audit.js';
import {
  BootstrapRefusedError,
  cancelBootstrap,
  runBootstrap,
  startBootstrap,
} from '../../shared/ops/bootstrap.js';
import { replay } from '../../shared/pipeline/replay.js';
import {
  BOOTSTRAP_PARTITION,
  BOOTSTRAP_ROW,
  commitCheckpoint,
  readBootstrap,
  readCheckpoint,
} from '../../shared/pipeline/runState.js';
import { TENANT_PARTITION, TENANT_SUMMARY_ROW } from '../../shared/pipeline/state.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import { type DetectorDeps, runScheduled } from '../../shared/runtime/detector.js';
import { makeTelemetry } from '../../shared/runtime/telemetry.js';
import { embeddedGeo, memoryOutbox } from '../support/detectorDeps.js';
import { ev, IP } from '../support/events.js';
import {
  BACKUP,
  Crash,
  crashingStore,
  DAY,
  DEPLOY,
  dump,
  GEONAME,
  history,
  HOUR,
  iterate,
  LISTKEYS,
  MIN,
  partitionsWithRows,
  T0,
} from './helpers.js';

const DAYS = 12;
const END = T0 + DAYS * DAY;
const events = history(DAYS);
const settings = loadSettings({});
const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
let geo: Geolocator;
const dirs: string[] = [];

beforeAll(async () => {
  geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
});
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

function aggregate(list: readonly ActivityEvent[], s: Settings = settings): AggregatedEvents {
  const agg = new AggregatedEvents(s.UC_TICK_INTERVAL, s.UC_LOOKBACK);
  for (const e of list) agg.add(e);
  return agg;
}

async function replayInto(store: BaselineStore, s: Settings, list: readonly ActivityEvent[], toMs: number) {
  const sink = new MemoryAlertSink();
  await replay({
    events: iterate(list),
    readStats: newReadStats(),
    store,
    geo,
    sink,
    settings: s,
    defaults: alertDefaults(s),
    toMs,
  });
  return sink;
}

/** Starts (or resumes) and runs a bootstrap of `days` days ending at END over `list`. */
async function bootstrap(
  store: BaselineStore,
  opts: { days?: number; replace?: boolean; owner?: string; list?: readonly ActivityEvent[] } = {},
) {
  const logs: string[] = [];
  await startBootstrap(store, {
    days: opts.days ?? DAYS,
    endMs: END,
    source: 'files',
    requestedBy: 'tester',
    reason: 'test',
    ...(opts.replace ? { replace: true } : {}),
    clock: () => END + 5 * MIN,
  });
  const r = await runBootstrap(
    {
      settings,
      store,
      source: aggregate(opts.list ?? events),
      geo,
      log: (l, m) => logs.push(`${l}: ${m}`),
      clock: () => END + 5 * MIN,
    },
    { owner: opts.owner ?? 'tester', takeOver: true },
  );
  return { ...r, logs };
}

describe('bootstrap from history', () => {
  let reference: Awaited<ReturnType<typeof dump>>;

  it('counts history exactly as hourly runs count it, with no alert and no ledger row', async () => {
    const ref = SqliteStore.open(':memory:');
    await replayInto(ref, hourly, events, END);
    const store = SqliteStore.open(':memory:');
    const r = await bootstrap(store);
    expect(r.outcome).toBe('done');
    reference = await dump(store);
    expect(Object.keys(reference).length).toBeGreaterThan(5);
    expect(reference).toEqual(await dump(ref));

    // Nothing of the alert path was touched: no ledger, no daily count, no outbox.
    expect(await partitionsWithRows(store, 'alerts')).toEqual([]);
    expect(await partitionsWithRows(store, 'outbox')).toEqual([]);
    expect(await partitionsWithRows(store, 'state')).toEqual(['audit', 'bootstrap', 'checkpoint']);
    // The timer continues from the end of history; the tenant's learning counts from its first hour.
    expect(await readCheckpoint(store)).toBe(END);
    const tenant = await store.readRows('tenant', TENANT_PARTITION, [TENANT_SUMMARY_ROW]);
    expect(tenant.get(TENANT_SUMMARY_ROW)?.firstSeenMs).toBe(T0);
    const st = (await readBootstrap(store))!;
    expect(st).toMatchObject({ state: 'done', windowsDone: DAYS, windowsTotal: DAYS, doneUntilMs: END });
    expect(st.events).toBe(events.length);
    expect(st.observations).toBeGreaterThan(100);
    expect((await readAudit(store)).map((a) => a.action)).toEqual(['bootstrap']);
    await Promise.all([ref.close(), store.close()]);
  });

  it('counts the same hours as the regular 15-minute runs (an hour seen in parts counts once)', async () => {
    const ref = SqliteStore.open(':memory:');
    await replayInto(ref, settings, events, END);
    const regular = await dump(ref);
    const counted = (d: typeof regular) =>
      Object.fromEntries(
        Object.entries(d).map(([p, rows]) => [
          p,
          Object.fromEntries(
            Object.entries(rows).map(([k, e]) => [
              k,
              [e.rawHours, e.days, e.firstSeenMs, e.lastSeenMs, e.activeHours, e.recentHours],
            ]),
          ),
        ]),
      );
    expect(counted(reference)).toEqual(counted(regular));
    await ref.close();
  });

  it('resumes after a crash at any write and ends in the same state', async () => {
    let seed = 20261105;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const dir = await mkdtemp(join(tmpdir(), 'uc-bootstrap-crash-'));
    dirs.push(dir);
    let crashes = 0;
    let done = false;
    for (let attempt = 0; attempt < 40 && !done; attempt++) {
      const inner = SqliteStore.openDirectory(dir);
      // The first attempts die somewhere in the ~100 writes of a bootstrap; later ones are left to finish.
      const store = attempt < 10 ? crashingStore(inner, 1 + Math.floor(rand() * 90), rand() < 0.5) : inner;
      try {
        const r = await bootstrap(store, { owner: `cli:attempt-${attempt}` });
        done = r.outcome === 'done';
      } catch (e) {
        if (!(e instanceof Crash)) throw e;
        crashes += 1;
      } finally {
        await inner.close();
      }
    }
    expect(done).toBe(true);
    expect(crashes).toBeGreaterThanOrEqual(6);
    const final = SqliteStore.openDirectory(dir);
    expect(await dump(final)).toEqual(reference);
    expect(await readCheckpoint(final)).toBe(END);
    expect(await partitionsWithRows(final, 'alerts')).toEqual([]);
    expect((await readBootstrap(final))?.state).toBe('done');
    await final.close();
  });
});

/** Detector dependencies over local state, with a clock and a telemetry spy. */
function detectorDeps(store: BaselineStore, list: readonly ActivityEvent[], now: { ms: number }) {
  const sink = new MemoryAlertSink();
  const logs: string[] = [];
  const runs: Record<string, unknown>[] = [];
  const agg = aggregate(list);
  const d: DetectorDeps = {
    settings: loadSettings({ UC_RUN_BUDGET: '1h' }),
    store,
    source: agg,
    geo: embeddedGeo(geo, { ageDays: 0, stale: false }),
    outbox: memoryOutbox(sink),
    deliver: () => Promise.resolve({ delivered: 0, failed: 0, pending: 0 }),
    telemetry: makeTelemetry(
      {
        trackEvent: (t) => {
          if (t.name === 'UnusualCityRun') runs.push({ ...t.properties, ...t.measurements });
        },
        trackMetric: () => undefined,
        trackException: () => undefined,
        flush: () => undefined,
      },
      false,
    ),
    log: (l, m) => logs.push(`${l}: ${m}`),
    clock: () => now.ms,
  };
  return { d, sink, logs, runs };
}

/** The present, right after history: the team goes on, and an admin's key is used from Lagos. */
const ATTACK = END + 40 * MIN;
const present = [
  ...history(1, END).filter((e) => e.timeMs < END + 3 * HOUR),
  ev(ATTACK, LISTKEYS, 'admin@contoso.com', IP.lagos),
  ev(ATTACK + 2 * MIN, 'Microsoft.Authorization/roleAssignments/write', 'admin@contoso.com', IP.lagos),
];

describe('the timer after a bootstrap', () => {
  it('continues from the end of history, counts no hour twice, and scores with the learning gate open', async () => {
    const store = SqliteStore.open(':memory:');
    await bootstrap(store);
    const before = await dump(store);
    const now = { ms: END + 2 * HOUR + 4 * MIN };
    const { d, sink, runs } = detectorDeps(store, [...events, ...present], now);
    const r = await runScheduled(d, { invocationId: 'after', isPastDue: false });
    expect(r.baseline).toBe('ready');
    expect(runs[0]?.baseline).toBe('ready');
    expect(r.ticks[0]).toBe(END + 15 * MIN);
    expect(r.ticks.at(-1)).toBe(END + 2 * HOUR);
    // The first windows overlap history's last two hours: nothing there was counted again.
    const after = await dump(store);
    let overlapRows = 0;
    for (const [p, rows] of Object.entries(before)) {
      for (const [k, e] of Object.entries(rows)) {
        const later = after[p]?.[k];
        expect(later, `${p}/${k}`).toBeDefined();
        if (typeof later?.lastSeenMs !== 'number' || later.lastSeenMs >= END) continue; // seen again after history
        expect(later, `${p}/${k} unchanged`).toEqual(e);
        if (Number(e.lastSeenMs) >= END - 2 * HOUR) overlapRows += 1;
      }
    }
    // The nightly job's rows were last counted in the hours the first runs read again.
    expect(overlapRows).toBeGreaterThanOrEqual(4);
    expect(after[`baselines/${BACKUP.toLowerCase()}`]).toEqual(before[`baselines/${BACKUP.toLowerCase()}`]);
    // The London deploy row gained exactly the new hours after history (00:00, 01:00, 02:00 are night: none).
    const deploy = `baselines/${DEPLOY.toLowerCase()}`;
    expect(after[deploy]?.[`g:${GEONAME.london}`]?.rawHours).toBe(
      before[deploy]?.[`g:${GEONAME.london}`]?.rawHours,
    );
    const listKeys = `baselines/${LISTKEYS.toLowerCase()}`;
    expect(after[listKeys]?.[`g:${GEONAME.london}`]?.rawHours).toBe(
      Number(before[listKeys]?.[`g:${GEONAME.london}`]?.rawHours) + 1, // 00:40 of the new day
    );
    // The attack alerts at full strength: 12 days of tenant history, the learning factor is 1.
    expect(sink.alerts.map((a) => [a.Caller, a.SrcGeoCity])).toEqual([['admin@contoso.com', 'Lagos']]);
    const factors = sink.alerts[0]!.Explanation.operations[0]!.factors;
    expect(factors.learningFactor).toBe(1);
    expect(factors.tenantDays).toBeGreaterThanOrEqual(DAYS);
    await store.close();
  });

  it('without a bootstrap, the first run says the baselines are empty (log and telemetry) and cannot alert', async () => {
    const store = SqliteStore.open(':memory:');
    const now = { ms: END + 2 * HOUR + 4 * MIN };
    const { d, sink, logs, runs } = detectorDeps(store, [...events, ...present], now);
    const r = await runScheduled(d, { invocationId: 'first', isPastDue: false });
    expect(r.baseline).toBe('empty');
    expect(runs[0]?.baseline).toBe('empty');
    expect(
      logs.some((l) => l.startsWith('warn: Empty baselines') && l.includes('unusual-city bootstrap')),
    ).toBe(true);
    expect(sink.alerts).toEqual([]);
    // The second run has a checkpoint: no message.
    now.ms += 15 * MIN;
    logs.length = 0;
    const again = await runScheduled(d, { invocationId: 'second', isPastDue: false });
    expect(again.baseline).toBe('ready');
    expect(logs.some((l) => l.includes('Empty baselines'))).toBe(false);
    await store.close();
  });

  it('an unfinished bootstrap: the timer waits while another worker holds it, then continues it itself', async () => {
    const store = SqliteStore.open(':memory:');
    const now = { ms: END + 10 * MIN };
    await startBootstrap(store, {
      days: DAYS,
      endMs: END,
      source: 'log-analytics',
      requestedBy: 'tester',
      clock: () => now.ms,
    });
    // Another worker (the HTTP function's background work) holds the lease.
    await store.updateRows('state', BOOTSTRAP_PARTITION, [BOOTSTRAP_ROW], (cur) => {
      const row = cur.get(BOOTSTRAP_ROW)!;
      return new Map([[BOOTSTRAP_ROW, { ...row, owner: 'http:elsewhere', leaseUntilMs: now.ms + 4 * MIN }]]);
    });
    const { d, logs, runs, sink } = detectorDeps(store, [...events, ...present], now);
    const waiting = await runScheduled(d, { invocationId: 't1', isPastDue: false });
    expect(waiting.baseline).toBe('bootstrapping');
    expect(runs[0]?.baseline).toBe('bootstrapping');
    expect(waiting.ticks).toEqual([]);
    expect(waiting.stoppedBecause).toBe('bootstrap in progress');
    expect(await readCheckpoint(store)).toBe(0);
    expect(logs.some((l) => l.includes('Bootstrap in progress') && l.includes('http:elsewhere'))).toBe(true);

    // The worker went away: its lease expires, and the next timer run finishes the bootstrap, then detects.
    now.ms = END + 2 * HOUR + 4 * MIN;
    const r = await runScheduled(d, { invocationId: 't2', isPastDue: false });
    expect(r.baseline).toBe('ready');
    expect((await readBootstrap(store))?.state).toBe('done');
    expect(r.ticks[0]).toBe(END + 15 * MIN);
    expect(sink.alerts.map((a) => a.SrcGeoCity)).toEqual(['Lagos']);
    await store.close();
  });

  it('a bootstrap started while the timer catches up stops it before its next tick', async () => {
    const store = SqliteStore.open(':memory:');
    await commitCheckpoint(store, END - 2 * HOUR);
    const now = { ms: END };
    const { d } = detectorDeps(store, events, now);
    let reads = 0;
    const inner = d.source;
    d.source = {
      read: async (s, e) => {
        if (++reads === 2)
          await startBootstrap(store, {
            days: 3,
            endMs: END,
            source: 'files',
            requestedBy: 't',
            clock: () => END,
          });
        return inner.read(s, e);
      },
    };
    const r = await runScheduled(d, { invocationId: 't', isPastDue: true });
    expect(r.ticks).toHaveLength(2);
    expect(r.stoppedBecause).toBe('a bootstrap started');
    expect(r.ticksLeft).toBe(6);
    await store.close();
  });
});

describe('existing state, cancel', () => {
  it('replacing learned baselines needs who and why (CLI and store), and records them in the audit table', async () => {
    const io = { env: {}, stdout: () => undefined, stderr: () => undefined };
    for (const args of [
      ['--replace'],
      ['--replace', '--by', 'ann'],
      ['--replace', '--reason', 'x', '--by', ' '],
    ]) {
      await expect(runBootstrapCommand(args, io)).rejects.toThrow(/bootstrap --replace needs --(by|reason)/);
    }
    const store = SqliteStore.open(':memory:');
    await replayInto(store, settings, events, END);
    const replace = (reason?: string) =>
      startBootstrap(store, {
        days: 5,
        endMs: END,
        source: 'files',
        requestedBy: 'ann',
        replace: true,
        ...(reason === undefined ? {} : { reason }),
      });
    await expect(replace()).rejects.toThrow(/replacing learned baselines needs --reason/);
    await expect(replace('  ')).rejects.toThrow(BootstrapRefusedError);
    expect(await readBootstrap(store)).toBeUndefined();
    await replace('baselines poisoned by the October incident');
    expect((await readAudit(store)).at(-1)).toMatchObject({
      action: 'bootstrap',
      by: 'ann',
      reason: 'baselines poisoned by the October incident',
    });
    await store.close();
  });

  it('refuses to replace history learned before the period, unless asked; rebuilds what lies inside it', async () => {
    const store = SqliteStore.open(':memory:');
    await replayInto(store, settings, events, END);
    await expect(
      startBootstrap(store, { days: 5, endMs: END, source: 'files', requestedBy: 't' }),
    ).rejects.toThrow(BootstrapRefusedError);
    await expect(
      startBootstrap(store, { days: 5, endMs: END, source: 'files', requestedBy: 't' }),
    ).rejects.toThrow(/learned since 2026-10-05T00:00:00.000Z.*--replace/);
    expect(await readBootstrap(store)).toBeUndefined();

    const r = await bootstrap(store, { days: 5, replace: true });
    expect(r.outcome).toBe('done');
    expect((await readBootstrap(store))?.rebuild).toBe(true);
    expect(r.logs.some((l) => l.includes('cleared the learned state'))).toBe(true);
    const fresh = SqliteStore.open(':memory:');
    await bootstrap(fresh, { days: 5 });
    expect(await dump(store)).toEqual(await dump(fresh));

    // A timer that ran for a while inside the period: rebuilt without --replace, the result is the same.
    const young = SqliteStore.open(':memory:');
    await replayInto(
      young,
      settings,
      events.filter((e) => e.timeMs >= END - 6 * HOUR),
      END,
    );
    const again = await bootstrap(young, { days: 5 });
    expect(again.outcome).toBe('done');
    expect(await dump(young)).toEqual(await dump(fresh));
    await Promise.all([store.close(), fresh.close(), young.close()]);
  });

  it('cancel stops it where it is: the baselines stay as far as they got and detection resumes', async () => {
    const store = SqliteStore.open(':memory:');
    await startBootstrap(store, {
      days: DAYS,
      endMs: END,
      source: 'files',
      requestedBy: 't',
      clock: () => END,
    });
    let cancelling: Promise<unknown> | undefined;
    const r = await runBootstrap(
      { settings, store, source: aggregate(events), geo, log: () => undefined, clock: () => END },
      {
        owner: 'worker',
        onProgress: (s) => {
          if (s.windowsDone === 3)
            cancelling = cancelBootstrap(store, { by: 'alice', reason: 'wrong workspace', atMs: END + MIN });
        },
      },
    );
    await cancelling;
    expect(r.outcome).toBe('cancelled');
    const st = (await readBootstrap(store))!;
    expect(st.state).toBe('cancelled');
    expect(st.windowsDone).toBeGreaterThanOrEqual(3);
    expect(st.windowsDone).toBeLessThan(DAYS);
    expect(await readCheckpoint(store)).toBe(0);
    expect((await readAudit(store)).map((a) => [a.action, a.by])).toEqual([
      ['bootstrap', 't'],
      ['bootstrap-cancel', 'alice'],
    ]);
    const now = { ms: END + 2 * HOUR };
    const { d } = detectorDeps(store, events, now);
    const run = await runScheduled(d, { invocationId: 'x', isPastDue: false });
    expect(run.baseline).toBe('ready');
    expect(run.ticks).toEqual([END + 2 * HOUR]);
    await store.close();
  });
});
