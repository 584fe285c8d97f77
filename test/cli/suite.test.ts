/** `unusual-city evaluate --suite` through the compiled CLI (built by test/support/build.ts). */
import { tmpdir } from 'node:os';

import { afterAll, describe, expect, it } from 'vitest';

import { ATTACK_CLASSES } from '../../shared/demo/suite/attacks.js';
import { BENIGN_CLASSES } from '../../shared/demo/suite/benign.js';
import { killRunningClis, spawnCli } from '../support/builtCli.js';

const run = (args: string[]) => spawnCli(args, { cwd: tmpdir(), timeoutMs: 170_000 }).result;
afterAll(killRunningClis);

describe('evaluate --suite', () => {
  it(
    'replays a small seed and prints the per-class table for the seed and in total',
    { timeout: 180_000 },
    async () => {
      const r = await run(['evaluate', '--suite', '--seeds', '1', '--days', '10']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /^seed 1: 10 days, [\d,]+ Activity Log rows, 36 people, 9 automation and platform identities/,
      );
      expect(r.stdout).toContain('total over seeds 1 (10 days each)');
      const total = r.stdout.slice(r.stdout.indexOf('total over seeds'));
      for (const cls of ATTACK_CLASSES) expect(total).toMatch(new RegExp(`\\n  ${cls} +\\d+/\\d+ `));
      for (const cls of [...BENIGN_CLASSES, 'other'])
        expect(total).toMatch(new RegExp(`\\n  ${cls} +\\d+\\n`));
      expect(total).toMatch(/\n {2}total +\d+\/12 .* \d+ in 10 days = \d+\.\d\d\/day\n$/);
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
    expect(small.stderr).toContain('--days expects a whole number of days from 10 to 365, got "3"');
  });
});
