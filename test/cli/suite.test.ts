/** `unusual-city evaluate --suite` through the compiled CLI (built by test/support/build.ts). */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { type ClassReport, formatClassTable } from '../../shared/demo/classes.js';
import { ATTACK_CLASSES } from '../../shared/demo/suite/attacks.js';
import { BENIGN_CLASSES } from '../../shared/demo/suite/benign.js';
import { killRunningClis, spawnCli } from '../support/builtCli.js';

const run = (args: string[]) => spawnCli(args, { cwd: tmpdir(), timeoutMs: 170_000 }).result;
const dirs: string[] = [];
afterAll(async () => {
  killRunningClis();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('evaluate --suite', () => {
  it(
    'replays a small seed and prints the per-class table for the seed and in total',
    { timeout: 180_000 },
    async () => {
      const r = await run(['evaluate', '--suite', '--seeds', '1', '--days', '12']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /^seed 1: 12 days, [\d,]+ Activity Log rows, 36 people, 9 automation and platform identities/,
      );
      expect(r.stdout).toContain('total over seeds 1 (12 days each)');
      const total = r.stdout.slice(r.stdout.indexOf('total over seeds'));
      for (const cls of ATTACK_CLASSES) expect(total).toMatch(new RegExp(`\\n  ${cls} +\\d+/\\d+ `));
      for (const cls of [...BENIGN_CLASSES, 'other'])
        expect(total).toMatch(new RegExp(`\\n  ${cls} +\\d+\\n`));
      expect(total).toMatch(
        /\n {2}total +\d+\/12 .* \d+ in 12 days = \d+\.\d\d\/day\nfalse alerts per day without the analyst: \d+\.\d\d overall, \d+\.\d\d from day 8\n$/,
      );
    },
  );

  it(
    '--json --out keeps a data set that `evaluate <file> --labels` replays to the same per-class table',
    { timeout: 240_000 },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'uc-suite-cli-'));
      dirs.push(dir);
      const r = await run(['evaluate', '--suite', '--seeds', '2', '--days', '12', '--json', '--out', dir]);
      expect(r.code).toBe(0);
      const json = JSON.parse(r.stdout) as {
        seeds: { seed: number; alerts: number; report: ClassReport }[];
        total: ClassReport;
      };
      expect(json.seeds.map((s) => s.seed)).toEqual([2]);
      expect(json.total).toEqual(json.seeds[0]!.report);
      expect(json.total.attacks).toBe(12);
      const alerts = (await readFile(join(dir, 'alerts-seed-2.jsonl'), 'utf8')).trim().split('\n');
      expect(alerts).toHaveLength(json.seeds[0]!.alerts);
      const again = await run([
        'evaluate',
        join(dir, 'activity-seed-2.jsonl'),
        '--labels',
        join(dir, 'labels-seed-2.json'),
        '--quiet',
      ]);
      expect(again.code).toBe(0);
      const table = again.stdout.slice(again.stdout.indexOf('Per class'));
      expect(table).toBe(formatClassTable(json.total, 'Per class'));
    },
  );

  it('has its own help with examples, and rejects bad seeds and sizes naming the value', async () => {
    const help = await run(['evaluate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('unusual-city evaluate --suite --seeds 4,5 --days 21');
    const bad = await run(['evaluate', '--suite', '--seeds', '1,x']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--seeds expects comma-separated whole numbers such as 1,2,3, got "1,x"');
    const small = await run(['evaluate', '--suite', '--days', '3']);
    expect(small.code).toBe(64);
    expect(small.stderr).toContain('--days expects a whole number of days from 12 to 365, got "3"');
  });
});
