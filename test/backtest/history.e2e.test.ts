/**
 * `backtest --days N` against the local end-to-end harness: the production credential chain (a local
 * managed-identity endpoint) and the real LogsQueryClient against a local https Log Analytics that evaluates
 * activity.kql over the demo tenant's rows. The period is read once, one query per day in the timer's 15-minute
 * slots, and the backtest must give exactly the numbers and alerts of a backtest of the same events from files.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { toActivityRow, writeJsonLines } from '../../shared/activity/formats.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { BacktestResults } from '../../shared/backtest/types.js';
import { runBacktestCommand } from '../../shared/cli/backtest.js';
import { labelsToJson } from '../../shared/demo/evaluate.js';
import { DEMO_START, generateTenant } from '../../shared/demo/tenant.js';
import { azureEnv } from '../support/e2eHarness.js';
import { type FakeLogAnalytics, startFakeLogAnalytics } from '../support/fakeLogAnalytics.js';
import { type FakeIdentity, startFakeIdentity } from '../support/identity.js';

const DAYS = 21;
const DAY = 86_400_000;
const MIN = 60_000;
const WORKSPACE = '6d3f1c7a-2b4e-4f8a-9c1d-0e5b7a9c3f21';
const END = DEMO_START + DAYS * DAY;

interface Run {
  code: number;
  out: string;
  err: string;
}

describe('backtest --days: the period from Log Analytics (real SDK client, local service)', () => {
  let identity: FakeIdentity;
  let restoreEnv: () => void;
  let logs: FakeLogAnalytics;
  let tmp: string;
  let env: Record<string, string>;
  let labelsPath: string;
  let filePath: string;
  let events: ActivityEvent[];

  const backtest = async (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runBacktestCommand(args, {
      env: { ...env, ...extraEnv },
      stdout: (s) => out.push(s),
      stderr: (s) => err.push(s),
      tlsCa: logs.ca,
      // Ten minutes into the slot after the demo's last day: the period is exactly the demo's days.
      clock: () => END + 10 * MIN,
    });
    return { code, out: out.join(''), err: err.join('') };
  };

  /** The results without what says where they came from and how long it took. */
  const comparable = (r: BacktestResults) => ({
    ...r,
    generatedAt: undefined,
    files: undefined,
    logAnalytics: undefined,
    variants: r.variants.map((v) => ({
      ...v,
      replay: { ...v.replay, seconds: undefined, events: undefined, internalEvents: undefined },
    })),
  });

  beforeAll(async () => {
    const data = generateTenant(DAYS);
    events = data.events;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-history-'));
    filePath = path.join(tmp, 'activity.jsonl');
    labelsPath = path.join(tmp, 'labels.json');
    await writeJsonLines(data.events, filePath);
    await writeFile(labelsPath, JSON.stringify(labelsToJson(data.labels)));
    identity = await startFakeIdentity();
    restoreEnv = identity.install();
    logs = await startFakeLogAnalytics({ rows: data.events.map(toActivityRow) });
    env = azureEnv({ identity, logs }, { UC_WORKSPACE_ID: WORKSPACE });
  }, 60_000);

  afterAll(async () => {
    restoreEnv();
    await Promise.all([logs.close(), identity.close(), rm(tmp, { recursive: true, force: true })]);
  });

  it('reads each day once in 15-minute slots and gives exactly the backtest of the same events from files', async () => {
    logs.reset();
    const fromLa = path.join(tmp, 'la.json');
    const fromFiles = path.join(tmp, 'files.json');
    const reportPath = path.join(tmp, 'report.html');
    const common = [
      '--labels',
      labelsPath,
      '--thresholds',
      '30,50,70',
      '--vary',
      'UC_ESTABLISH_HOURS=2',
      '--vary',
      'UC_TICK_INTERVAL=30m',
    ];
    const la = await backtest(['--days', String(DAYS), ...common, '--json', fromLa, '--report', reportPath]);
    expect(la.err).not.toMatch(/^error/m);
    expect(la.code).toBe(0);

    // One query per day, for that day, in 15-minute slots (the fake checks the query is activity.kql).
    const ok = logs.requests.filter((r) => r.status === 200);
    expect(ok.map((r) => r.timespan)).toEqual(
      Array.from(
        { length: DAYS },
        (_, d) =>
          `${new Date(DEMO_START + d * DAY).toISOString()}/${new Date(DEMO_START + (d + 1) * DAY).toISOString()}`,
      ),
    );
    for (const r of ok) expect(r.query).toContain('let slotSize = 15m;');
    expect(
      logs.requests.every((r) => r.authorization === 'Bearer test-token:https://api.loganalytics.io'),
    ).toBe(true);

    const files = await backtest([filePath, ...common, '--json', fromFiles]);
    expect(files.code).toBe(0);
    const a = JSON.parse(await readFile(fromLa, 'utf8')) as BacktestResults;
    const b = JSON.parse(await readFile(fromFiles, 'utf8')) as BacktestResults;
    expect(a.logAnalytics).toMatchObject({
      workspace: WORKSPACE,
      days: DAYS,
      queries: DAYS,
      slotMinutes: 15,
    });
    expect(a.logAnalytics!.groups).toBeGreaterThan(1000);
    expect(a.files).toEqual([]);
    expect(a.period).toEqual({
      start: new Date(DEMO_START).toISOString(),
      end: new Date(END).toISOString(),
      days: DAYS,
    });
    // Same runs, same findings, same alerts at every threshold and in every variant. The only difference: the
    // query leaves out events without a caller IP (Azure Policy's own evaluations), which the file reader
    // counts as internal — they never reach scoring either way.
    const noIp = events.filter((e) => e.callerIp === '').length;
    expect(noIp).toBeGreaterThan(0);
    for (const [i, v] of a.variants.entries()) {
      const f = b.variants[i]!.replay;
      expect([v.replay.events, v.replay.internalEvents]).toEqual([f.events - noIp, f.internalEvents - noIp]);
    }
    expect(comparable(a)).toEqual(comparable(b));
    const base = a.variants[0]!;
    expect(base.replay.events).toBeGreaterThan(5000);
    expect(base.results.find((r) => r.current)!.evaluation!.detected).toBeGreaterThan(0);
    expect(a.replays).toBe(3);

    // The stdout table says where the period came from.
    expect(la.out).toContain(
      `Read from Log Analytics workspace ${WORKSPACE}, last ${DAYS} day(s): ${DAYS} queries`,
    );
    expect(la.err).toContain(`read ${DAYS}/${DAYS} day(s)`);
    const html = await readFile(reportPath, 'utf8');
    expect(html).toContain(
      `Read from Log Analytics workspace ${WORKSPACE}, last ${DAYS} day(s) (${DAYS} queries`,
    );
    expect(html).not.toContain('Files:');
  }, 240_000);

  it('a day Log Analytics answers only partly stops the backtest, naming the window: no numbers from a period with a hole', async () => {
    logs.reset();
    logs.failNext('partial');
    await expect(backtest(['--days', '2', '--quiet'])).rejects.toThrow(
      new RegExp(`${WORKSPACE}.*${new Date(END - 2 * DAY).toISOString().slice(0, 16)}`),
    );
  });

  it('refuses what it cannot do honestly, before reading anything', async () => {
    logs.reset();
    await expect(
      backtest(['--days', '3', '--vary', 'UC_CATEGORIES=Administrative,Security']),
    ).rejects.toThrow(/--vary UC_CATEGORIES with --days.*--set UC_CATEGORIES=/);
    await expect(backtest(['--days', '3', 'activity.jsonl'])).rejects.toThrow(/files or --days N .*not both/);
    await expect(backtest(['--days', '0'])).rejects.toThrow(
      /--days expects a whole number of days from 1 to 730/,
    );
    await expect(backtest([])).rejects.toThrow(/input files, or --days N/);
    await expect(backtest(['--days', '3'], { UC_WORKSPACE_ID: '' })).rejects.toThrow(/UC_WORKSPACE_ID/);
    expect(logs.requests).toHaveLength(0);
  });
});
