/** `--verdicts FILE` and `--analyst-hours` through the compiled CLI (built by test/support/build.ts). */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { type Verdict, verdictToRecord } from '../../shared/pipeline/verdicts.js';
import { killRunningClis, spawnCli } from '../support/builtCli.js';
import { ev, IP } from '../support/events.js';
import { DEPLOY, LISTKEYS, londonTeam } from '../support/londonTeam.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TRIP = Date.UTC(2026, 9, 5) + 10 * DAY + 3 * HOUR + 10 * 60_000;
let dir: string;
const run = (args: string[]) => spawnCli(args, { cwd: dir, timeoutMs: 170_000 }).result;
const settings = ['--tick', '1h', '--set', 'UC_ALERT_COOLDOWN=1h'];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uc-verdicts-cli-'));
  // dev1 travels to New York: a deployment, then three hours later listing keys (an update alert without verdict).
  const events = [
    ...londonTeam(10),
    ev(TRIP, DEPLOY, 'dev1@contoso.com', IP.newYork),
    ev(TRIP + 3 * HOUR, LISTKEYS, 'dev1@contoso.com', IP.newYork),
  ];
  await writeJsonLines(events, join(dir, 'activity.jsonl'));
});
afterAll(async () => {
  killRunningClis();
  await rm(dir, { recursive: true, force: true });
});

const alertsOf = async (file: string) =>
  (await readFile(join(dir, file), 'utf8'))
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { AlertId: string; Caller: string });

describe('replay --verdicts', () => {
  it(
    'applies a benign verdict at its closedTime: the trip alerts once instead of twice',
    { timeout: 180_000 },
    async () => {
      const plain = await run(['replay', 'activity.jsonl', '--out', 'plain.jsonl', '--quiet', ...settings]);
      expect(plain.code).toBe(0);
      const before = await alertsOf('plain.jsonl');
      expect(before.map((a) => a.Caller)).toEqual(['dev1@contoso.com', 'dev1@contoso.com']);
      const verdict: Verdict = {
        incidentNumber: 7,
        incidentName: '',
        classification: 'BenignPositive',
        reason: 'SuspiciousButExpected',
        comment: 'New York office',
        owner: 'ana@contoso.com',
        modifiedBy: '',
        closedTimeMs: TRIP + HOUR,
        alertId: before[0]!.AlertId,
      };
      await writeFile(join(dir, 'verdicts.jsonl'), `${JSON.stringify(verdictToRecord(verdict))}\nnot json\n`);
      const r = await run([
        'replay',
        'activity.jsonl',
        '--out',
        'fed.jsonl',
        '--quiet',
        '--verdicts',
        'verdicts.jsonl',
        ...settings,
      ]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('warning: verdicts.jsonl: 1 verdict record(s) skipped (line 2: not JSON)');
      expect(r.stderr).toMatch(/verdicts: +1 applied \(1 benign, 0 true positive\)/);
      expect((await alertsOf('fed.jsonl')).map((a) => a.AlertId)).toEqual([before[0]!.AlertId]);
    },
  );

  it('backtest --verdicts decides as replay --verdicts does', { timeout: 180_000 }, async () => {
    // The verdicts file of the test above (it runs first): the trip's first alert closed as benign.
    const common = [
      'backtest',
      'activity.jsonl',
      '--set',
      'UC_TICK_INTERVAL=1h',
      '--set',
      'UC_ALERT_COOLDOWN=1h',
    ];
    const args = [...common, '--thresholds', '50', '--quiet'];
    const plain = await run([...args, '--alerts', 'bt-plain']);
    expect(plain.code).toBe(0);
    const fed = await run([...args, '--alerts', 'bt-fed', '--verdicts', 'verdicts.jsonl']);
    expect(fed.code).toBe(0);
    expect(fed.stderr).toContain('1 verdict record(s) skipped (line 2: not JSON)');
    expect((await alertsOf('bt-plain/alerts-50.jsonl')).map((a) => a.AlertId)).toEqual(
      (await alertsOf('plain.jsonl')).map((a) => a.AlertId),
    );
    expect((await alertsOf('bt-fed/alerts-50.jsonl')).map((a) => a.AlertId)).toEqual(
      (await alertsOf('fed.jsonl')).map((a) => a.AlertId),
    );
  });

  it('a missing verdicts file and a bad --analyst-hours are usage errors', async () => {
    const missing = await run(['replay', 'activity.jsonl', '--out', 'x.jsonl', '--verdicts', 'nope.jsonl']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('nope.jsonl');
    const hours = await run(['evaluate', '--suite', '--analyst-hours', 'soon']);
    expect(hours.code).toBe(64);
    expect(hours.stderr).toContain('--analyst-hours expects a number of hours');
  });
});
