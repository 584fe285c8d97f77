/**
 * End-to-end tests of the compiled CLI (`node dist/shared/cli/main.js`, built by test/support/build.ts):
 * `replay` over a generated 28-day tenant, its crash/resume contract under SIGKILL, torn-line repair, input
 * formats, malformed records, usage errors, --from/--to and `evaluate`.
 *
 * The crash schedule is random but seeded: the seed is in the crash test's name, and CLI_CRASH_SEED=<seed>
 * replays the same schedule (the instant a process dies still varies with the machine's load).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import {
  writeDiagnosticRecords,
  writeJsonLines,
  writeLogAnalyticsResponse,
  writePortalCsv,
} from '../../shared/activity/formats.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import type { Alert } from '../../shared/alerts/alert.js';
import columnsFile from '../../shared/alerts/columns.json' with { type: 'json' };
import { loadSettings } from '../../shared/config/settings.js';
import { evaluateAlerts, type Labels, labelsToJson } from '../../shared/demo/evaluate.js';
import { mulberry32 } from '../../shared/demo/random.js';
import { DEMO_START, generateTenant } from '../../shared/demo/tenant.js';
import { CHECKPOINT_PARTITION, CHECKPOINT_ROW } from '../../shared/pipeline/state.js';
import { type CliResult, killRunningClis, spawnCli } from '../support/builtCli.js';

const COLUMN_NAMES = columnsFile.columns.map((c) => c.name);
const DAY_MS = 86_400_000;
/** The default timer period: the crash test turns the checkpoint into a fraction of the runs done. */
const TICK_MS = loadSettings({}).UC_TICK_INTERVAL;

// ---------------------------------------------------------------------------------------------------
// Running the CLI

let tmp = '';

const startCli = (args: readonly string[]) => spawnCli(args, { cwd: tmp, timeoutMs: 150_000 });
const runCli = (args: readonly string[]): Promise<CliResult> => startCli(args).result;

/**
 * In-memory replays are CPU bound: they take turns on all cores but one, which leaves the crash test's
 * replays (timed kills) a steady share of the machine and the whole file about as fast as running them all.
 */
let cpuSlots = Math.max(1, os.availableParallelism() - 1);
const cpuQueue: (() => void)[] = [];
async function replayCli(args: readonly string[]): Promise<CliResult> {
  if (cpuSlots > 0) cpuSlots--;
  else await new Promise<void>((resolve) => cpuQueue.push(resolve));
  try {
    return await runCli(args);
  } finally {
    const next = cpuQueue.shift();
    if (next) next();
    else cpuSlots++;
  }
}

/** Fails with the CLI's output unless it exited with `code`. */
function expectExit(r: CliResult, code: number, what: string): void {
  const how = r.timedOut ? 'timed out' : r.signal !== null ? `died of ${r.signal}` : `exited ${r.code}`;
  expect(r.code, `${what}: ${how}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`).toBe(code);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

// ---------------------------------------------------------------------------------------------------
// Alert files

interface AlertLine {
  line: string;
  alert: Alert;
}

/** Parses an alerts file strictly: whole lines only, each a JSON alert, each AlertId once. */
function parseAlerts(text: string, what: string): Map<string, AlertLine> {
  expect(text === '' || text.endsWith('\n'), `${what} ends with a partial line`).toBe(true);
  const byId = new Map<string, AlertLine>();
  text
    .split('\n')
    .slice(0, -1)
    .forEach((line, i) => {
      let alert: Alert;
      try {
        alert = JSON.parse(line) as Alert;
      } catch {
        throw new Error(`${what}:${i + 1} is not a JSON line: ${line.slice(0, 120)}`);
      }
      expect(typeof alert.AlertId, `${what}:${i + 1} AlertId`).toBe('string');
      expect(byId.has(alert.AlertId), `${what}:${i + 1} repeats AlertId ${alert.AlertId}`).toBe(false);
      byId.set(alert.AlertId, { line, alert });
    });
  return byId;
}

/** The same alerts as `expected` (a multiset of lines): same ids, none twice, identical content. */
function expectSameAlerts(text: string, expected: Map<string, AlertLine>, what: string): void {
  const actual = parseAlerts(text, what);
  expect([...actual.keys()].sort(), `${what}: AlertIds`).toEqual([...expected.keys()].sort());
  for (const [id, want] of expected) {
    const got = actual.get(id)!;
    expect(got.alert, `${what}: alert ${id}`).toEqual(want.alert);
    expect(got.line, `${what}: line of alert ${id}`).toBe(want.line);
  }
}

// ---------------------------------------------------------------------------------------------------
// Shared data: a 28-day tenant (attacks A1 on day 19 and A2 on day 24) and its uninterrupted replay.

let events: ActivityEvent[] = [];
let labels: Labels;
let input = '';
let firstTickMs = 0;
let totalTicks = 0;
const reference = {
  text: '',
  alerts: new Map<string, AlertLine>(),
  ms: 0,
  result: undefined as CliResult | undefined,
};

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-cli-'));
  const tenant = generateTenant(28);
  events = tenant.events;
  labels = tenant.labels;
  input = path.join(tmp, 'activity.jsonl');
  await writeJsonLines(events, input);
  const times = events.map((e) => e.timeMs);
  firstTickMs = Math.floor(Math.min(...times) / TICK_MS) * TICK_MS + TICK_MS;
  const lastTickMs = Math.floor(Math.max(...times) / TICK_MS) * TICK_MS + TICK_MS;
  totalTicks = (lastTickMs - firstTickMs) / TICK_MS + 1;

  const out = path.join(tmp, 'A.jsonl');
  const r = await runCli(['replay', input, '--out', out]);
  expectExit(r, 0, 'reference replay');
  reference.result = r;
  reference.ms = r.ms;
  reference.text = await readFile(out, 'utf8');
  reference.alerts = parseAlerts(reference.text, 'reference A.jsonl');
  console.log(
    `reference replay: ${reference.alerts.size} alerts in ${(r.ms / 1000).toFixed(1)} s ` +
      `(${events.length} events, ${totalTicks} runs)`,
  );
}, 120_000);

afterAll(async () => {
  killRunningClis();
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

async function scratchDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Fraction of the runs checkpointed in an open state database (0 before the schema or first run). */
function progressIn(conn: Database.Database): number {
  const hasRows = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rows'").get();
  if (hasRows === undefined) return 0;
  const row = conn
    .prepare('SELECT data FROM rows WHERE tbl = ? AND pk = ? AND rk = ?')
    .get('state', CHECKPOINT_PARTITION, CHECKPOINT_ROW) as { data: string } | undefined;
  if (row === undefined) return 0;
  const lastTickMs = (JSON.parse(row.data) as { lastTickMs: number }).lastTickMs;
  return Math.min(1, Math.max(0, (lastTickMs - firstTickMs + TICK_MS) / TICK_MS / totalTicks));
}

/**
 * Progress of a --state directory whose replay is not running, read from a copy of its files so that the
 * CLI, not this test, is the next to open (and recover) the real ones after a kill.
 */
async function checkpointProgress(stateDir: string, scratch: string): Promise<number> {
  const db = path.join(stateDir, 'state.sqlite');
  if (!existsSync(db)) return 0;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const copy = path.join(scratch, 'state.sqlite');
  await copyFile(db, copy);
  if (existsSync(`${db}-wal`)) await copyFile(`${db}-wal`, `${copy}-wal`);
  const conn = new Database(copy, { fileMustExist: true });
  try {
    return progressIn(conn);
  } finally {
    conn.close();
  }
}

/**
 * Progress of a replay while it runs, through one read-only connection (WAL: readers never block the
 * writer). Only steers when to kill and checks ordering; 0 until the database is in WAL mode and readable.
 */
class LiveCheckpoint {
  private conn: Database.Database | undefined;
  constructor(private readonly stateDir: string) {}

  read(): number {
    const db = path.join(this.stateDir, 'state.sqlite');
    try {
      if (this.conn === undefined) {
        if (!existsSync(`${db}-wal`)) return 0;
        this.conn = new Database(db, { readonly: true, fileMustExist: true, timeout: 200 });
      }
      return progressIn(this.conn);
    } catch {
      this.close();
      return 0;
    }
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
  }
}

/** Resolves once the crash test has left a completed --state replay behind (for the re-run test). */
let crashDone: (v: { args: string[]; out: string }) => void = () => undefined;
let crashFailed: (e: unknown) => void = () => undefined;
const completedStateReplay = new Promise<{ args: string[]; out: string }>((resolve, reject) => {
  crashDone = resolve;
  crashFailed = reject;
});
// Reported by the crash test itself; this only keeps an unobserved rejection from being reported twice.
completedStateReplay.catch(() => undefined);

/** Seed of the crash schedule, in the test's name; CLI_CRASH_SEED=<seed> replays that schedule. */
const CRASH_SEED = Number(process.env.CLI_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe.concurrent('unusual-city replay (compiled CLI)', () => {
  test('an uninterrupted replay writes whole JSON lines with the alert columns in order', () => {
    expect(reference.alerts.size).toBeGreaterThanOrEqual(2);
    for (const [id, { alert }] of reference.alerts) {
      expect(Object.keys(alert), `columns of alert ${id}`).toEqual(COLUMN_NAMES);
      expect(Number.isNaN(Date.parse(alert.TimeGenerated)), `TimeGenerated of ${id}`).toBe(false);
    }
    expect(reference.result?.stderr).toMatch(
      new RegExp(
        `alerts file: +.*A\\.jsonl \\(${reference.alerts.size} new, ${reference.alerts.size} in all\\)`,
      ),
    );
  });

  test(`SIGKILL at random moments (seed ${CRASH_SEED}), then resume with the same arguments: exactly the reference alerts`, async () => {
    try {
      const seed = CRASH_SEED;
      const rand = mulberry32(seed);
      const dir = await scratchDir('crash');
      const out = path.join(dir, 'B.jsonl');
      const state = path.join(dir, 'state');
      const args = ['replay', input, '--out', out, '--state', state];

      // Two kills at random fractions of the reference run's duration, one of them very early (start-up,
      // opening the state, reading the input), then one at a random point in each quarter of the detection
      // runs: the replay's own checkpoint, polled while it runs, says when it got there (the state replay's
      // pace depends on fsync latency, so a clock alone would bunch the kills), plus a random lag. In between,
      // three kills as soon as the next alert reaches --out: the run that wrote it is then likely still
      // updating baselines and ledger, not yet checkpointed, so the resumed replay raises that alert again.
      type Step = { by: 'clock'; delayMs: number } | { by: 'progress'; target: number } | { by: 'alert' };
      const quarter = (lo: number, hi: number): Step => ({ by: 'progress', target: lo + rand() * (hi - lo) });
      const plan: Step[] = [
        { by: 'clock', delayMs: rand() * 0.08 * reference.ms },
        { by: 'clock', delayMs: (0.08 + rand() * 0.3) * reference.ms },
        quarter(0.02, 0.3),
        { by: 'alert' },
        quarter(0.3, 0.55),
        { by: 'alert' },
        quarter(0.55, 0.8),
        { by: 'alert' },
        quarter(0.8, 0.98),
      ];
      const linesIn = async () =>
        existsSync(out) ? (await readFile(out, 'utf8')).split('\n').length - 1 : 0;
      /** Fraction of the runs done once the run that raised an alert has been checkpointed. */
      const runOf = (a: Alert) => ((Date.parse(a.TimeGenerated) - firstTickMs) / TICK_MS + 1) / totalTicks;
      /**
       * The order that makes a kill harmless: a run's alerts reach --out before its checkpoint. So every
       * reference alert of a checkpointed run must be in the file, whenever we look (checkpoint read first).
       */
      let seen = { size: -1, ids: new Set<string>() };
      const expectAlertsOfCheckpointedRuns = async (checkpoint: number, when: string) => {
        const size = existsSync(out) ? (await stat(out)).size : 0;
        if (size !== seen.size) {
          const text = size > 0 ? await readFile(out, 'utf8') : '';
          const complete = text.slice(0, text.lastIndexOf('\n') + 1);
          seen = { size: Buffer.byteLength(text), ids: new Set(parseAlerts(complete, 'B.jsonl').keys()) };
        }
        const missing = [...reference.alerts.values()]
          .filter((a) => runOf(a.alert) <= checkpoint && !seen.ids.has(a.alert.AlertId))
          .map((a) => `${a.alert.AlertId} of the run at ${a.alert.TimeGenerated}`);
        expect(missing, `${when}: checkpointed ${(100 * checkpoint).toFixed(2)}% (seed ${seed})`).toEqual([]);
      };
      let progress = 0;
      const kills: { how: string; progress: number }[] = [];
      for (const step of plan) {
        let how: string;
        const wanted = step.by === 'alert' ? (await linesIn()) + 1 : 0;
        if (step.by === 'alert' && wanted > reference.alerts.size) continue;
        const started = performance.now();
        const { child, result } = startCli(args);
        const live = new LiveCheckpoint(state);
        let exited = false;
        void result.then(() => (exited = true));
        if (step.by === 'clock') {
          await sleep(step.delayMs);
          how = `after ${Math.round(step.delayMs)} ms`;
        } else if (step.by === 'progress') {
          while (!exited) {
            const now = live.read();
            await expectAlertsOfCheckpointedRuns(now, 'while running');
            if (now >= step.target) break;
            await sleep(10 + rand() * 40);
          }
          await sleep(rand() * 60);
          how = `at ${(100 * step.target).toFixed(0)}%`;
        } else {
          // Fast polls of checkpoint and file: this is also where a run that checkpoints before writing its
          // alerts would show, between the two.
          for (;;) {
            if (exited) break;
            await expectAlertsOfCheckpointedRuns(live.read(), 'while running');
            if (seen.ids.size >= wanted) break;
            await sleep(1);
          }
          how = `on alert ${wanted}`;
        }
        live.close();
        child.kill('SIGKILL');
        const r = await result;
        if (r.code === 0) break; // finished before the kill came: the re-run below checks the outcome
        expect(r.signal, `attempt ${kills.length + 1} (seed ${seed}): ${r.stderr}`).toBe('SIGKILL');
        const before = progress;
        progress = await checkpointProgress(state, path.join(dir, 'peek'));
        expect(progress, `checkpoint went backwards (seed ${seed})`).toBeGreaterThanOrEqual(before);
        await expectAlertsOfCheckpointedRuns(progress, `after SIGKILL ${kills.length + 1}`);
        if (step.by === 'alert') {
          const text = await readFile(out, 'utf8');
          const written = parseAlerts(text.slice(0, text.lastIndexOf('\n') + 1), 'B.jsonl');
          const lastAlert = [...written.values()].pop()!.alert;
          if (progress < runOf(lastAlert)) how += ' before its run was checkpointed';
        }
        kills.push({ how: `${how} (${Math.round(performance.now() - started)} ms)`, progress });
      }
      console.log(
        `SIGKILLs (seed ${seed}): ` +
          kills.map((k) => `${k.how} → ${(100 * k.progress).toFixed(1)}%`).join(', '),
      );

      const last = await runCli(args);
      expectExit(last, 0, `resumed replay (seed ${seed})`);
      expect(
        await checkpointProgress(state, path.join(dir, 'peek')),
        'checkpoint of a completed replay',
      ).toBe(1);
      if (progress > 0) expect(last.stderr).toMatch(/runs simulated: .*\(resumed after checkpoint /);
      expectSameAlerts(
        await readFile(out, 'utf8'),
        reference.alerts,
        `B.jsonl after ${kills.length} SIGKILLs (seed ${seed})`,
      );

      // The test must really have crashed the replay, early and in the middle of detection.
      expect(kills.length, `kills that hit a running replay (seed ${seed})`).toBeGreaterThanOrEqual(6);
      expect(
        kills.filter((k) => k.progress > 0 && k.progress < 1).length,
        `kills in the middle of detection (seed ${seed})`,
      ).toBeGreaterThanOrEqual(2);
      crashDone({ args, out });
    } catch (err) {
      crashFailed(err);
      throw err;
    }
  }, 240_000);

  test('a torn last line is repaired and the file ends up equal to the reference', async () => {
    const dir = await scratchDir('torn');
    const lines = reference.text.split('\n').slice(0, -1);
    const ref = Buffer.from(reference.text);

    // A crash cuts bytes, not characters: tear the last line inside a multi-byte character when it has one.
    const tear = (line: string): Buffer => {
      const bytes = Buffer.from(line);
      const multi = bytes.findIndex((b) => b >= 0x80);
      return bytes.subarray(0, multi > 0 ? multi + 1 : Math.floor(bytes.length / 2));
    };

    // The whole reference plus a torn copy of one of its lines, replayed over a fresh --state.
    const full = path.join(dir, 'full.jsonl');
    const tornCopy = tear(lines[lines.length - 1]!);
    await writeFile(full, Buffer.concat([ref, tornCopy]));
    const fresh = runCli([
      'replay',
      input,
      '--out',
      full,
      '--state',
      path.join(dir, 'state'),
      '--append',
      '--quiet',
    ]);

    // As a crash leaves it: one alert missing (a middle one), the file ending in its torn line.
    const missing = path.join(dir, 'missing.jsonl');
    const k = Math.floor(lines.length / 2);
    const kept = lines.filter((_, i) => i !== k).map((l) => `${l}\n`);
    const tornMissing = tear(lines[k]!);
    await writeFile(missing, Buffer.concat([Buffer.from(kept.join('')), tornMissing]));
    const crashed = replayCli(['replay', input, '--out', missing, '--append', '--quiet']);

    const [a, b] = await Promise.all([fresh, crashed]);
    expectExit(a, 0, 'replay onto reference + torn line');
    expect(a.stderr).toContain(`repaired ${full}: dropped a torn last line (${tornCopy.length} bytes)`);
    expect(a.stderr).toMatch(new RegExp(`\\(0 new, ${reference.alerts.size} in all\\)`));
    expect(await readFile(full, 'utf8')).toBe(reference.text);

    expectExit(b, 0, 'replay onto a file missing one alert and ending in its torn line');
    expect(b.stderr).toContain(`repaired ${missing}: dropped a torn last line (${tornMissing.length} bytes)`);
    expect(b.stderr).toMatch(new RegExp(`\\(1 new, ${reference.alerts.size} in all\\)`));
    expectSameAlerts(await readFile(missing, 'utf8'), reference.alerts, 'missing.jsonl after repair');
  }, 180_000);

  test('the same events in four other input formats (one gzipped) give identical alerts', async () => {
    const dir = await scratchDir('formats');
    const files = {
      'log-analytics-response': path.join(dir, 'query.json'),
      'portal-csv': path.join(dir, 'export.csv'),
      'diagnostic-records (wrapped)': path.join(dir, 'eventhub.json'),
      'diagnostic-records (bare, gzip)': path.join(dir, 'PT1H.json.gz'),
    };
    const counts = await Promise.all([
      writeLogAnalyticsResponse(events, files['log-analytics-response']),
      writePortalCsv(events, files['portal-csv']),
      writeDiagnosticRecords(events, files['diagnostic-records (wrapped)'], { wrapped: true }),
      writeDiagnosticRecords(events, files['diagnostic-records (bare, gzip)'], {
        wrapped: false,
        gzip: true,
      }),
    ]);
    expect(counts).toEqual([events.length, events.length, events.length, events.length]);
    const results = await Promise.all(
      Object.entries(files).map(async ([name, file]) => {
        const out = path.join(dir, `${path.basename(file)}.alerts.jsonl`);
        return { name, out, r: await replayCli(['replay', file, '--out', out, '--quiet']) };
      }),
    );
    for (const { name, out, r } of results) {
      expectExit(r, 0, `replay of ${name}`);
      const format = name.split(' ')[0]!;
      expect(r.stderr, name).toContain(
        `records read:        ${events.length.toLocaleString('en-US')} (${format} ${events.length})`,
      );
      expect(r.stderr, name).toMatch(/skipped \(malformed\): 0\n/);
      expectSameAlerts(await readFile(out, 'utf8'), reference.alerts, `alerts from ${name}`);
    }
  }, 180_000);

  test('malformed records are skipped, reported by reason and position, and change nothing', async () => {
    const dir = await scratchDir('malformed');
    const file = path.join(dir, 'damaged.jsonl');
    const lines = (await readFile(input, 'utf8')).split('\n').slice(0, -1);
    const mid = Math.floor(lines.length / 2);
    const truncated = (l: string) => l.slice(0, Math.floor(l.length / 3));
    // A record cut short in the middle of the file, then garbage and a torn record appended at its end.
    const damaged = [
      ...lines.slice(0, mid),
      truncated(lines[mid]!),
      ...lines.slice(mid),
      'this is not json',
      '[1, 2, 3]',
      '{"TimeGenerated":"notatime","OperationNameValue":"MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE"}',
    ];
    await writeFile(file, `${damaged.join('\n')}\n${truncated(lines[0]!)}`);
    const n = lines.length;
    const expected = [
      { position: mid + 1, reason: 'invalid-json' },
      { position: n + 2, reason: 'invalid-json' },
      { position: n + 3, reason: 'not-an-object' },
      { position: n + 4, reason: 'invalid-time' },
      { position: n + 5, reason: 'invalid-json' },
    ];

    const out = path.join(dir, 'alerts.jsonl');
    const r = await replayCli(['replay', file, '--out', out, '--quiet']);
    expectExit(r, 0, 'replay of a damaged file');
    expectSameAlerts(await readFile(out, 'utf8'), reference.alerts, 'alerts of the damaged file');
    expect(r.stderr).toContain(`records read:        ${(n + 5).toLocaleString('en-US')} `);
    const skippedLine = /skipped \(malformed\): (\d+) — (.*)\n/.exec(r.stderr);
    expect(skippedLine, r.stderr).not.toBeNull();
    expect(Number(skippedLine![1])).toBe(5);
    const byReason = Object.fromEntries(
      skippedLine![2]!.split(', ').map((part) => [part.split(' ')[0], Number(part.split(' ')[1])]),
    );
    expect(byReason).toEqual({ 'invalid-json': 3, 'not-an-object': 1, 'invalid-time': 1 });
    for (const { position, reason } of expected) {
      expect(r.stderr, `position of a skipped ${reason} record`).toContain(
        `damaged.jsonl:${position} ${reason}`,
      );
    }
    expect(r.stderr).toContain(`events analysed:     ${events.length.toLocaleString('en-US')}`);
  }, 120_000);

  test('--from/--to: only runs inside the window raise alerts', async () => {
    const dir = await scratchDir('window');
    const toMs = DEMO_START + 20 * DAY_MS;
    const from = new Date(DEMO_START + 13 * DAY_MS).toISOString();
    const to = new Date(toMs).toISOString();
    const [upTo, window] = await Promise.all([
      replayCli(['replay', input, '--out', path.join(dir, 'to.jsonl'), '--to', to, '--quiet']),
      replayCli([
        'replay',
        input,
        '--out',
        path.join(dir, 'window.jsonl'),
        '--from',
        from,
        '--to',
        to,
        '--quiet',
      ]),
    ]);
    expectExit(upTo, 0, `replay --to ${to}`);
    expectExit(window, 0, `replay --from ${from} --to ${to}`);

    // Up to a time, the runs are the reference's runs: exactly its alerts raised by then.
    const before = new Map(
      [...reference.alerts].filter(([, a]) => Date.parse(a.alert.TimeGenerated) <= toMs),
    );
    expect(before.size).toBeGreaterThan(0);
    expect(before.size).toBeLessThan(reference.alerts.size);
    expectSameAlerts(await readFile(path.join(dir, 'to.jsonl'), 'utf8'), before, `alerts with --to ${to}`);

    // A window starts from empty baselines; whatever it raises was raised by a run inside it.
    const inWindow = parseAlerts(await readFile(path.join(dir, 'window.jsonl'), 'utf8'), 'window.jsonl');
    expect(inWindow.size).toBeGreaterThan(0);
    for (const { alert } of inWindow.values()) {
      expect(
        alert.TimeGenerated >= from && alert.TimeGenerated <= to,
        `${alert.TimeGenerated} in [${from}, ${to}]`,
      ).toBe(true);
    }
  }, 120_000);

  test('evaluate with the generated labels reports the attacks detected', async () => {
    const dir = await scratchDir('evaluate');
    const labelsFile = path.join(dir, 'labels.json');
    await writeFile(labelsFile, JSON.stringify(labelsToJson(labels), null, 2));
    expect(labels.attacks.map((a) => a.id)).toEqual(['A1', 'A2']);
    const expected = evaluateAlerts(
      [...reference.alerts.values()].map((a) => a.alert),
      labels,
      labels.startMs,
      labels.endMs,
    );
    expect(expected.detected).toBe(labels.attacks.length);

    const r = await replayCli(['evaluate', input, '--labels', labelsFile, '--quiet']);
    expectExit(r, 0, 'evaluate');
    expect(r.stdout).toMatch(
      new RegExp(`attacks detected: +${expected.detected}/${labels.attacks.length}\\n`),
    );
    for (const a of labels.attacks) expect(r.stdout).toMatch(new RegExp(`DETECTED +${a.id}: `));
    expect(r.stdout).toMatch(new RegExp(`alerts in all: +${reference.alerts.size}\\n`));
  }, 120_000);

  test('usage and settings errors exit 2, 64 or 78 with a message, touching nothing', async () => {
    const dir = await scratchDir('usage');
    const out = path.join(dir, 'never.jsonl');
    const state = path.join(dir, 'never-state');
    // An existing alerts file ending in a torn line: a rejected command must not "repair" it.
    const torn = path.join(dir, 'torn.jsonl');
    const tornBytes = `${reference.text}{"TimeGenerated":"2026-`;
    await writeFile(torn, tornBytes);

    const [none, noOut, badValue, badName, badFrom, badTo, badFlag] = await Promise.all([
      runCli([]),
      runCli(['replay', input]),
      runCli(['replay', input, '--out', out, '--set', 'UC_ALERT_THRESHOLD=abc']),
      runCli(['replay', input, '--out', out, '--set', 'UC_NOPE=1']),
      runCli(['replay', input, '--out', torn, '--state', state, '--from', 'notatime']),
      runCli(['replay', input, '--out', torn, '--state', state, '--to', '2026-13-45']),
      runCli(['replay', input, '--out', out, '--bogus']),
    ]);
    expectExit(none, 2, 'no arguments');
    expect(none.stdout).toContain('Usage:');
    expect(none.stdout).toContain('unusual-city replay <file>... --out alerts.jsonl');

    expectExit(noOut, 64, 'replay without --out');
    expect(noOut.stderr).toMatch(/^error: replay needs --out/);

    expectExit(badValue, 78, '--set UC_ALERT_THRESHOLD=abc');
    expect(badValue.stderr).toContain('UC_ALERT_THRESHOLD');
    expect(badValue.stderr).toContain('"abc"');
    expect(badValue.stderr).toContain('from 0 to 100');

    expectExit(badName, 78, '--set UC_NOPE=1');
    expect(badName.stderr).toContain('UC_NOPE');

    expectExit(badFrom, 64, '--from notatime');
    expect(badFrom.stderr).toMatch(/--from .*"notatime"/);
    expectExit(badTo, 64, '--to 2026-13-45');
    expect(badTo.stderr).toMatch(/--to .*"2026-13-45"/);

    expectExit(badFlag, 64, 'an unknown option');
    expect(badFlag.stderr).toContain('--bogus');

    expect(existsSync(out), 'a failed command created --out').toBe(false);
    expect(existsSync(state), 'a failed command created --state').toBe(false);
    expect(await readFile(torn, 'utf8'), 'a failed command changed an existing --out').toBe(tornBytes);
  }, 60_000);

  test('re-running a completed --state replay with the same arguments writes nothing', async () => {
    const { args, out } = await completedStateReplay;
    const before = await readFile(out);
    const { mtimeMs } = await stat(out);
    const r = await runCli(args);
    expectExit(r, 0, 're-run of a completed --state replay');
    expect(r.stderr).toMatch(/runs simulated: +0 \(resumed after checkpoint /);
    expect(r.stderr).toMatch(new RegExp(`\\(0 new, ${reference.alerts.size} in all\\)`));
    expect((await readFile(out)).equals(before), 'alerts file changed').toBe(true);
    expect((await stat(out)).mtimeMs, 'alerts file was written to').toBe(mtimeMs);
  }, 240_000);
});
