/**
 * The compiled CLI as a new user meets it (issue 15, "The command line"): files that cannot be another run's,
 * one clear line and exit code per mistake (never a stack trace, never the whole usage text), per-command help,
 * what --from means for the baselines, Ctrl-C, an empty input, and warnings that --quiet does not hide.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { labelsToJson } from '../../shared/demo/evaluate.js';
import { DEMO_START, generateTenant } from '../../shared/demo/tenant.js';
import { type CliResult, killRunningClis, spawnCli } from '../support/builtCli.js';

const DAY_MS = 86_400_000;
let tmp = '';
let input = '';
const run = (args: readonly string[]): Promise<CliResult> =>
  spawnCli(args, { cwd: tmp, timeoutMs: 170_000 }).result; // a loaded 2-core machine

function expectOneLine(r: CliResult, code: number, pattern: RegExp, what: string): void {
  const how = r.timedOut ? 'timed out' : `exited ${r.code}`;
  expect(r.code, `${what}: ${how}\n${r.stderr}`).toBe(code);
  const errors = r.stderr.split('\n').filter((l) => !l.startsWith('warning: ') && l.trim() !== '');
  expect(errors[0], what).toMatch(pattern);
  expect(
    errors.length,
    `${what}: one line, or two with the pointer to --help\n${r.stderr}`,
  ).toBeLessThanOrEqual(2);
  expect(r.stderr, `${what}: a stack trace`).not.toMatch(/\n\s+at /);
  expect(r.stderr, `${what}: the general usage text`).not.toContain('Usage:');
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-cli-usage-'));
  input = path.join(tmp, 'activity.jsonl');
  await writeJsonLines(generateTenant(14).events, input);
});
afterAll(async () => {
  killRunningClis();
  await rm(tmp, { recursive: true, force: true });
});

describe.concurrent('unusual-city as a new user meets it (compiled CLI)', () => {
  test('--out is never an input, another run alerts need --append, --from after --to is refused', async () => {
    const before = await readFile(input);
    const intoInput = await run(['replay', input, '--out', input, '--quiet']);
    expectOneLine(intoInput, 64, /^error: --out .*activity\.jsonl is the input file/, '--out = input');
    expect((await readFile(input)).equals(before), 'the export was changed').toBe(true);

    const out = path.join(tmp, 'first.jsonl');
    expect((await run(['replay', input, '--out', out, '--quiet'])).code).toBe(0);
    const first = await readFile(out, 'utf8');
    const again = await run(['replay', input, '--out', out, '--quiet', '--set', 'UC_ALERT_THRESHOLD=30']);
    expectOneLine(
      again,
      64,
      /^error: --out .* already holds alerts of another run: .*--append/,
      'second run',
    );
    expect(await readFile(out, 'utf8')).toBe(first);
    const appended = await run([
      'replay',
      input,
      '--out',
      out,
      '--append',
      '--quiet',
      '--set',
      'UC_ALERT_THRESHOLD=5',
    ]);
    expect(appended.code, appended.stderr).toBe(0);
    expect((await readFile(out, 'utf8')).length).toBeGreaterThan(first.length);

    const reversed = await run([
      'replay',
      input,
      '--out',
      path.join(tmp, 'rev.jsonl'),
      '--from',
      '2026-02-01T00:00:00Z',
      '--to',
      '2026-01-01T00:00:00Z',
    ]);
    expectOneLine(
      reversed,
      64,
      /^error: --from 2026-02-01T00:00:00Z is later than --to 2026-01-01T00:00:00Z$/,
      '--from > --to',
    );
    expect(existsSync(path.join(tmp, 'rev.jsonl'))).toBe(false);
  }, 300_000);

  test('changing a setting on an existing --state is refused, naming the setting and both values', async () => {
    const state = path.join(tmp, 'set-state');
    const out = path.join(tmp, 'set.jsonl');
    const first = await run(['replay', input, '--out', out, '--state', state, '--quiet']);
    expect(first.code, first.stderr).toBe(0);
    const before = await readFile(out, 'utf8');
    const changed = await run([
      ...['replay', input, '--out', out, '--state', state, '--quiet'],
      ...['--set', 'UC_ALERT_THRESHOLD=30'],
    ]);
    expectOneLine(
      changed,
      64,
      /^error: --state .*set-state was built with other settings \(UC_ALERT_THRESHOLD \d+ -> 30\)/,
      '--set on an existing --state',
    );
    expect(await readFile(out, 'utf8')).toBe(before);
    const same = await run(['replay', input, '--out', out, '--state', state, '--quiet']);
    expect(same.code, same.stderr).toBe(0);
  }, 300_000);

  test('--from says the runs start from empty baselines and how to learn the history first', async () => {
    const from = new Date(DEMO_START + 7 * DAY_MS).toISOString();
    const r = await run([
      'replay',
      input,
      '--out',
      path.join(tmp, 'window.jsonl'),
      '--from',
      from,
      '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `runs window:         ${from} .. end of input (the lines above describe the whole input)`,
    );
    expect(r.stderr).toContain(`began at --from ${from} with empty baselines`);
    expect(r.stderr).toContain(`unusual-city bootstrap --from-files <file>... --to ${from} --state DIR`);
    const help = await run(['replay', '--help']);
    expect(help.stdout).toContain('bootstrap --from-files');
  }, 300_000);

  test('ordinary mistakes: one line each, with its exit code', async () => {
    const dir = path.join(tmp, 'mistakes');
    await mkdir(dir);
    const stateFile = path.join(dir, 'state-file');
    await writeFile(stateFile, 'x');
    const readOnly = path.join(dir, 'ro');
    await mkdir(readOnly);
    await chmod(readOnly, 0o500);
    const out = path.join(dir, 'a.jsonl');
    const cases: [string[], number, RegExp][] = [
      [
        ['replay', path.join(dir, 'missing.jsonl'), '--out', out],
        66,
        /^error: .*missing\.jsonl: no such file$/,
      ],
      [['replay', dir, '--out', out], 66, /^error: .*mistakes is a folder/],
      [
        ['replay', input, '--out', path.join(dir, 'no', 'such', 'a.jsonl')],
        73,
        /^error: --out .*: cannot write there/,
      ],
      [['replay', input, '--out', dir], 73, /^error: --out .* is a folder; --out takes a file$/],
      [
        ['evaluate', input, '--labels', path.join(dir, 'labels.json')],
        66,
        /^error: --labels .*labels\.json: no such file$/,
      ],
      [
        ['replay', input, '--out', out, '--state', stateFile],
        73,
        /^error: --state .* is a file; --state takes a folder/,
      ],
      [['replay', input, '--bogus'], 64, /^error: Unknown option '--bogus'/],
      [['replay', input], 64, /^error: replay needs --out/],
      [['frobnicate'], 64, /^error: unknown command "frobnicate"/],
      [['backtest', path.join(dir, 'missing.jsonl'), '--quiet'], 1, /^error: Activity log file not found/],
    ];
    if (process.getuid?.() !== 0)
      cases.push([
        ['replay', input, '--out', path.join(readOnly, 'a.jsonl')],
        73,
        /^error: --out .*: cannot write there/,
      ]);
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => expectOneLine(r, cases[i]![1], cases[i]![2], cases[i]![0].join(' ')));
    expect(existsSync(out), 'a failed command created --out').toBe(false);
  }, 300_000);

  test('replay, evaluate and demo --help: their own options and examples', async () => {
    const [general, replay, evaluate, demo] = await Promise.all([
      run(['--help']),
      run(['replay', '--help']),
      run(['evaluate', '--help']),
      run(['demo', '--help']),
    ]);
    for (const [name, r] of [
      ['replay', replay],
      ['evaluate', evaluate],
      ['demo', demo],
    ] as const) {
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toMatch(new RegExp(`^Usage: unusual-city ${name} `));
      expect(r.stdout, name).toContain(`Examples:\n  unusual-city ${name}`);
      expect(r.stdout, name).not.toBe(general.stdout);
    }
    expect(replay.stdout).toContain('--append');
  }, 300_000);

  test('--state under /proc fails at once, not spinning', async () => {
    const args = ['replay', input, '--out', path.join(tmp, 'proc.jsonl'), '--state', '/proc/nope/state'];
    const r = await spawnCli(args, { cwd: tmp, timeoutMs: 20_000 }).result; // before the fix: spun until killed
    expectOneLine(
      r,
      73,
      /^error: --state \/proc\/nope\/state: cannot create \/proc\/nope/,
      '--state /proc/nope',
    );
    expect(r.ms).toBeLessThan(20_000);
  }, 300_000);

  test('an empty input: exit 65, no alerts file announced or left; --quiet still shows the GeoIP warning', async () => {
    const empty = path.join(tmp, 'empty.jsonl');
    await writeFile(empty, '');
    const out = path.join(tmp, 'empty-alerts.jsonl');
    const r = await run(['replay', empty, '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(65); // after the summary, which says what was skipped and why
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).toContain('error: no Activity Log records in');
    expect(r.stderr).not.toContain('alerts file:');
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toMatch(/^warning: Using the embedded GeoLite2-City database/m);
  }, 300_000);

  test('backtest --alerts FILE writes the alerts evaluate --alerts reads; --alerts DIR (the old form) and --alerts-dir one file per threshold; --quiet keeps the GeoIP warning', async () => {
    const dir = path.join(tmp, 'backtest-alerts');
    await mkdir(dir);
    const file = path.join(dir, 'alerts.jsonl');
    const [both, old] = await Promise.all([
      run([
        ...['backtest', input, '--thresholds', '40,50', '--quiet'],
        ...['--alerts', file, '--alerts-dir', path.join(dir, 'per')],
      ]),
      run(['backtest', input, '--thresholds', '50', '--alerts', path.join(dir, 'old'), '--quiet']),
    ]);
    for (const r of [old, both]) {
      expect(r.code, r.stderr).toBe(0);
      // Before: --quiet dropped every warning of the backtest, the stale (embedded 2019) GeoIP database's too.
      expect(r.stderr).toMatch(/^warning: Using the embedded GeoLite2-City database .* days old/m);
    }
    const current = await readFile(file, 'utf8'); // UC_ALERT_THRESHOLD's (50) alerts, one row a line
    expect(current.split('\n').filter((l) => l !== '').length).toBeGreaterThan(0);
    expect(await readFile(path.join(dir, 'per', 'alerts-50.jsonl'), 'utf8')).toBe(current);
    expect(existsSync(path.join(dir, 'per', 'alerts-40.jsonl'))).toBe(true);
    expect(await readFile(path.join(dir, 'old', 'alerts-50.jsonl'), 'utf8')).toBe(current);
    expect(old.stderr).toContain(`note: --alerts ${path.join(dir, 'old')} is a folder`);
    expect(both.stdout).toContain(`alerts at UC_ALERT_THRESHOLD: ${file}`);

    const labels = path.join(dir, 'labels.json');
    await writeFile(labels, JSON.stringify(labelsToJson(generateTenant(14).labels)));
    const evaluated = await run(['evaluate', '--labels', labels, '--alerts', file]);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(evaluated.stdout).toMatch(
      new RegExp(`alerts in all: +${current.split('\n').filter((l) => l !== '').length}\n`),
    );
  }, 300_000);

  test("replay prints what the docs say (alerts in --out, the summary on stderr, no table on stdout); baseline show lists the operations and decays to the state's checkpoint", async () => {
    const docs = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    expect(docs).toContain('writes alerts as\nJSON Lines');
    expect(docs).toContain('a summary goes to stderr');
    const state = path.join(tmp, 'show-state');
    const out = path.join(tmp, 'show.jsonl');
    const replayed = await run(['replay', input, '--out', out, '--state', state, '--quiet']);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toBe('');
    expect(replayed.stderr).toMatch(/^alerts file: +.*show\.jsonl \(\d+ new, \d+ in all\)$/m);

    const listed = await run(['baseline', 'show', '--state', state]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^operation\s+active hours\s+last seen\n/);
    const operation = /^(microsoft\.\S+)/im.exec(listed.stdout)?.[1];
    expect(operation, listed.stdout).toBeDefined();
    const shown = await run(['baseline', 'show', operation!, '--json', '--state', state]);
    expect(shown.code, shown.stderr).toBe(0);
    // The data ends 14 days after DEMO_START (September 2026): hours are decayed to then, not to today.
    const asOf = Date.parse((JSON.parse(shown.stdout) as { asOf: string }).asOf);
    expect(asOf).toBeGreaterThan(DEMO_START + 13 * DAY_MS);
    expect(asOf).toBeLessThanOrEqual(DEMO_START + 15 * DAY_MS);
  }, 300_000);

  test('Ctrl-C during a --state replay says how to resume, and resuming finishes the run', async () => {
    const state = path.join(tmp, 'int-state');
    const out = path.join(tmp, 'int.jsonl');
    const args = ['replay', input, '--out', out, '--state', state];
    const { child, result } = spawnCli(args, { cwd: tmp, timeoutMs: 60_000 });
    let interrupted = false; // one Ctrl-C: a second one would kill the process before it says how to resume
    child.stderr?.on('data', (d: string) => {
      if (!interrupted && /^(reading|detecting):/m.test(d)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const r = await result;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain(
      `interrupted: run the same command again to resume from the last checkpoint in ${state}`,
    );
    const resumed = await run([...args, '--quiet']);
    expect(resumed.code, resumed.stderr).toBe(0);
  }, 300_000);
});
