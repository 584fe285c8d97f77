/**
 * `npm run soak`: the long fault-injection run behind docs/reliability.md (the test suite runs a few minutes of
 * the same, test/reliability/).
 *
 * The end-to-end harness of test/support/faults.ts (fake managed identity, Log Analytics and Logs Ingestion over
 * https, Azurite in this process, fault proxies in front of all three) runs the labelled ten-hour window of
 * test/support/faults.ts again and again, each round in its own tables, and compares every round with a clean
 * run over the same data: the AlertIds delivered (lost, extra, duplicated) and the state tables.
 *
 * Rounds:
 * - kill: the timer handler runs in child processes (a random time zone each), killed with SIGKILL at random
 *   steps of a run (after the Log Analytics answer, mid baseline write, after alerts are recorded, mid upload,
 *   before the checkpoint, at a random moment); the timer fires again at the next slot;
 * - dual: two instances in this process run every slot at once (412/409 conflicts);
 * - clock: a six-hour outage then a past-due run, slots out of order and repeated;
 * - hostile: values an attacker controls in the window (test/hostile/values.ts: 60 operation names of ~500
 *   characters of `"` and `\`, 1,000 operations from a new city in one slot, bidi characters, 5,000-deep
 *   nesting, numeric and old timestamps); every other caller must get exactly the clean run's alerts, no alert
 *   row may exceed 64 KB and each AlertId is delivered once (its state tables hold the hostile history too, so
 *   they are not compared).
 * In every round, in the background: Log Analytics 429 (Retry-After), 500, 503, 403, timeouts, partial and
 * over-limit results, bodies cut mid-JSON, slow answers; Table Storage 500/503 before and after a write landed and
 * connections refused for a while (an Azurite restart, simulated: the in-memory Azurite would lose its data);
 * Logs Ingestion 429, 500 and an outage of one to six simulated hours.
 *
 * Then a fuzz phase: hostile records normalised and read from files (crashes counted).
 *
 * Options: --rounds N (default 11), --kinds a,b (the plan of rounds, e.g. `hostile`; default the plan below),
 * --kills N (kill plans per kill round, default 40), --seed N, --fuzz N (records, default 200000), --no-write (leave
 * docs/reliability.md alone). Exits 1 when any round lost, added or changed anything.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import { normaliseActivityRow } from '../shared/activity/normalise.js';
import { newReadStats, readActivityFile } from '../shared/activity/read.js';
import { hostileRow } from '../test/fuzz/hostile.js';
import {
  checkHostile,
  type HostileCheck,
  hostileOk,
  hostileWindowRows,
  seedHostile,
} from '../test/hostile/values.js';
import {
  compareOutcomes,
  type FaultAction,
  type InvocationLog,
  KILL_STEPS,
  type KillStep,
  randomKillPlan,
  seeded,
  startWorld,
  tableError,
  type World,
} from '../test/support/faults.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const KINDS = option('--kinds')?.split(',') as RoundKind[] | undefined;
const SEED = Number(option('--seed') ?? 20271031);
const FUZZ = Number(option('--fuzz') ?? 200_000);
const WRITE = !args.includes('--no-write');
const say = (line: string) => process.stderr.write(`${line}\n`);

/** The project root, from bench/ or dist/bench/. */
const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (path.basename(dir) === 'dist' || !existsSync(path.join(dir, 'package.json')))
    dir = path.dirname(dir);
  return dir;
})();

type RoundKind = 'kill' | 'dual' | 'clock' | 'hostile';
const PLAN: RoundKind[] = KINDS ?? [
  'kill',
  'kill',
  'dual',
  'kill',
  'clock',
  'kill',
  'kill',
  'dual',
  'kill',
  'kill',
  'hostile',
];
for (const k of PLAN)
  if (!['kill', 'dual', 'clock', 'hostile'].includes(k)) throw new Error(`--kinds: unknown round kind ${k}`);
const ROUNDS = Number(option('--rounds') ?? PLAN.length);
/** Kill plans per kill round: about one child in two is killed. */
const KILLS_PER_ROUND = Number(option('--kills') ?? 40);
const TIME_ZONES = [
  undefined,
  'Europe/London',
  'America/New_York',
  'Australia/Lord_Howe',
  'Asia/Kolkata',
  'UTC',
];
const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

interface RoundResult {
  round: number;
  kind: RoundKind;
  tz: string;
  runs: number;
  failedRuns: number;
  kills: number;
  expected: number;
  delivered: number;
  duplicates: number;
  lost: number;
  extra: number;
  stateDiffs: string[];
  conflicts: number;
  seconds: number;
  /** The hostile round's own checks (test/hostile/values.ts). */
  hostile?: HostileCheck;
}

const count = (into: Record<string, number>, key: string, n = 1) => (into[key] = (into[key] ?? 0) + n);

async function main(): Promise<void> {
  const started = Date.now();
  const rand = seeded(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  say(`soak: ${ROUNDS} rounds, seed ${SEED}`);
  const world = await startWorld();
  const faults: Record<string, number> = {};
  const kills: Partial<Record<KillStep, number>> = {};
  const rounds: RoundResult[] = [];
  let killRounds = 0;
  try {
    const reference = await world.reference();
    say(`clean run: ${reference.alertIds.length} alerts over ${world.data.slots.length} runs`);
    for (let r = 0; r < ROUNDS; r++) {
      const kind = PLAN[r % PLAN.length]!;
      const prefix = `ucsoak${r}`;
      const t0 = Date.now();
      world.beginScenario();
      if (kind === 'hostile') {
        await seedHostile(world, prefix);
        world.logs.rows = [
          ...world.logs.rows,
          ...(hostileWindowRows(world.data.windowStartMs) as typeof world.logs.rows),
        ];
      } else await world.seed(prefix);
      const logs: InvocationLog[] = [];
      let conflicts = 0;
      world.tableProxy.onUpstream = (req, answer) => {
        if (/\/Tables$/.test(req.path)) return; // 409 TableAlreadyExists as each process starts
        conflicts += (answer.body.toString('utf8').match(/HTTP\/1\.1 (412|409)/g) ?? []).length;
        if (answer.status === 412 || answer.status === 409) conflicts++;
      };
      const onStart = backgroundFaults(world, rand, faults);
      let runs = 0;
      let failedRuns = 0;
      let roundKills = 0;
      let tz = '';
      if (kind === 'kill') {
        // Each kill round in another time zone (the first in the machine's own).
        const zone = TIME_ZONES[killRounds++ % TIME_ZONES.length];
        tz = zone ?? `${LOCAL_ZONE} (the machine's)`;
        // A kill for nearly every child: steps that need an alert only while alerts are still to come.
        const alertSlots = reference.alertTimes.map((t) => world.data.slots.indexOf(Date.parse(t)));
        let left = KILLS_PER_ROUND;
        const plans = (start: number) => {
          if (left-- <= 0) return undefined;
          const alertsAhead = alertSlots.filter((i) => i >= start).length;
          const steps = KILL_STEPS.filter(
            (s) => alertsAhead > 0 || (s !== 'after-alerts-recorded' && s !== 'mid-upload'),
          );
          const plan = randomKillPlan(pick(steps), rand, 0.3);
          if (plan.step === 'after-alerts-recorded' || plan.step === 'mid-upload')
            plan.occurrence = Math.min(plan.occurrence, alertsAhead);
          return plan;
        };
        const result = await world.runWindowWithKills(prefix, plans, {
          rand,
          onStart,
          fallbackAfter: 4,
          restartSameSlot: 0.5,
          ...(zone === undefined ? {} : { tz: zone }),
        });
        runs = result.invocations;
        failedRuns = result.failedRuns.length;
        roundKills = result.kills.length;
        for (const k of result.kills) kills[k.step] = (kills[k.step] ?? 0) + 1;
      } else {
        tz = `${LOCAL_ZONE} (the machine's)`;
        const a = world.detector(prefix);
        const b = world.detector(prefix);
        const slots = world.data.slots;
        const invoke = async (at: number, i: number, pastDue = false) => {
          onStart(i);
          runs++;
          const log = await a.invoke(at, pastDue);
          logs.push(log);
          if (log.error !== undefined) failedRuns++;
        };
        if (kind === 'dual') {
          for (const [i, slot] of slots.entries()) {
            onStart(i);
            runs += 2;
            const logs = await Promise.all([a.invoke(slot + 20_000), b.invoke(slot + 21_000)]);
            failedRuns += logs.filter((l) => l.error !== undefined).length;
          }
        } else if (kind === 'hostile') {
          for (const [i, slot] of slots.entries()) await invoke(slot + 20_000, i);
        } else {
          // Clock: a six-hour outage then a past-due run; one slot fires before the previous one; repeats.
          const outage = 4 + Math.floor(rand() * 8);
          for (let i = 0; i < slots.length; i++) {
            if (i >= outage && i < outage + 24) continue;
            if (i === outage + 26 && i + 1 < slots.length) {
              await invoke(slots[i + 1]! + 20_000, i + 1);
              await invoke(slots[i]! + 20_000, i);
              i++;
              continue;
            }
            await invoke(slots[i]! + 20_000, i, i === outage + 24);
            if (rand() < 0.15) await invoke(slots[i]! + 50_000, i);
          }
          count(faults, 'clock: past-due after a 6-hour outage');
          count(faults, 'clock: slot out of order');
        }
        onStart(slots.length);
        const drained = await world.drain(prefix, (at) => {
          runs++;
          return a.invoke(at);
        });
        logs.push(...drained);
        failedRuns += drained.filter((l) => l.error !== undefined).length;
      }
      world.ingestion.setDown(false);
      await world.tableProxy.refuse(false);
      for (const p of [world.logsProxy, world.tableProxy, world.ingestionProxy]) {
        // Kills are counted by step; refusals where they are started.
        for (const [label, n] of p.injected)
          if (!label.startsWith('kill:') && label !== 'refused')
            count(faults, `${proxyName(world, p)}: ${label}`, n);
        p.injected.clear();
      }
      const outcome = await world.outcome(prefix);
      const cmp = compareOutcomes(reference, outcome);
      const hostile = kind === 'hostile' ? checkHostile(world, reference.alertIds, logs) : undefined;
      if (hostile !== undefined) {
        // The attackers' alerts are not the clean run's; the state holds the hostile history: compare the rest.
        cmp.missing = hostile.lost;
        cmp.extra = hostile.extra;
        cmp.stateDiffs = [];
      }
      const result: RoundResult = {
        round: r,
        kind,
        tz,
        runs,
        failedRuns,
        kills: roundKills,
        expected: reference.alertIds.length,
        // The hostile round: the other callers' alerts (the attackers' are not the clean run's).
        delivered: hostile?.others ?? outcome.alertIds.length - cmp.extra.length,
        duplicates: outcome.duplicates,
        lost: cmp.missing.length,
        extra: cmp.extra.length,
        stateDiffs: cmp.stateDiffs,
        conflicts,
        seconds: Math.round((Date.now() - t0) / 1000),
        ...(hostile === undefined ? {} : { hostile }),
      };
      rounds.push(result);
      say(
        `round ${r} (${kind}, TZ ${tz}): ${runs} runs (${failedRuns} failed), ${roundKills} kills, ` +
          `${result.delivered}/${result.expected} alerts delivered, ${result.duplicates} duplicates, ` +
          `${result.lost} lost, ${result.extra} extra, ${cmp.stateDiffs.length} state differences, ` +
          `${conflicts} conflicts, ${result.seconds} s`,
      );
      for (const d of cmp.stateDiffs.slice(0, 5)) say(`    ${d}`);
      if (hostile !== undefined) {
        say(
          `    hostile values: ${hostile.others} other alerts (${hostile.lost.length} lost, ${hostile.extra.length} extra), ` +
            `${hostile.hostileAlerts} alerts of ${hostile.hostileCallersAlerted.length} hostile caller(s), largest row ` +
            `${hostile.maxRowBytes} bytes, ${hostile.duplicates} duplicates, ${hostile.rowsRejected} rows rejected, ` +
            `${hostile.hostileFailures.length} runs stopped by a value`,
        );
        for (const e of hostile.errors) say(`    failed run: ${e}`);
        say(`    hostile callers alerted: ${JSON.stringify(hostile.hostileCallersAlerted)}`);
        for (const e of hostile.extraRows) say(`    extra: ${e}`);
        const ours = new Set(outcome.episodes);
        for (const e of reference.episodes)
          if (!ours.has(e)) say(`    episode of the clean run missing: ${e}`);
      }
    }
  } finally {
    await world.close();
  }

  say(`fuzz: ${FUZZ} hostile records`);
  const fuzz = await fuzzRecords(FUZZ, SEED);
  say(
    `fuzz: ${fuzz.records} records normalised (${fuzz.accepted} accepted), ${fuzz.fileRecords} read from a file ` +
      `(${fuzz.fileAccepted} accepted), ${fuzz.crashes} crashes`,
  );

  const report = {
    date: new Date().toISOString().slice(0, 10),
    seed: SEED,
    minutes: Math.round((Date.now() - started) / 6000) / 10,
    rounds,
    totals: {
      rounds: rounds.length,
      runs: rounds.reduce((n, r) => n + r.runs, 0),
      failedRuns: rounds.reduce((n, r) => n + r.failedRuns, 0),
      kills: rounds.reduce((n, r) => n + r.kills, 0),
      expected: rounds.reduce((n, r) => n + r.expected, 0),
      delivered: rounds.reduce((n, r) => n + r.delivered, 0),
      duplicates: rounds.reduce((n, r) => n + r.duplicates, 0),
      lost: rounds.reduce((n, r) => n + r.lost, 0),
      extra: rounds.reduce((n, r) => n + r.extra, 0),
      stateMismatches: rounds.filter((r) => r.stateDiffs.length > 0).length,
      conflicts: rounds.reduce((n, r) => n + r.conflicts, 0),
    },
    kills,
    faults,
    fuzz,
  };
  const dir = path.join(ROOT, '.data', 'soak');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'last.json'), `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderMarkdown(report);
  process.stdout.write(markdown);
  if (WRITE) await writeDocs(markdown);
  const ok = report.totals.lost === 0 && report.totals.extra === 0 && report.totals.stateMismatches === 0;
  const hostileRoundsOk = rounds.every((r) => r.hostile === undefined || hostileOk(r.hostile));
  const passed = ok && hostileRoundsOk && fuzz.crashes === 0;
  say(passed ? 'soak: OK' : 'soak: FAILED');
  process.exitCode = passed ? 0 : 1;
}

function proxyName(world: World, p: World['tableProxy']): string {
  return p === world.logsProxy
    ? 'Log Analytics'
    : p === world.tableProxy
      ? 'Table Storage'
      : 'Logs Ingestion';
}

/**
 * Background faults of one round: rules on the three proxies, and per run (`onStart(index)`) Log Analytics
 * failures from the fake itself, an ingestion outage of 1 to 6 simulated hours and Table Storage refusing
 * connections for a moment.
 */
function backgroundFaults(
  world: World,
  rand: () => number,
  faults: Record<string, number>,
): (index: number) => void {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const laActions: FaultAction[] = [
    {
      kind: 'respond',
      status: 503,
      label: '503',
      body: '{"error":{"code":"ServiceUnavailable","message":"x"}}',
    },
    { kind: 'reset', delayMs: 1_500, label: 'timeout' },
    { kind: 'truncate', label: 'body cut mid-JSON' },
    { kind: 'forward', delayMs: 2_000, label: 'slow answer' },
  ];
  world.logsProxy.background = () => (rand() < 0.08 ? pick(laActions) : undefined);
  world.tableProxy.background = (r) => {
    const x = rand();
    if (x < 0.006) return { kind: 'respond', status: 500, body: tableError('InternalError'), label: '500' };
    if (x < 0.01 && r.method === 'POST')
      return {
        kind: 'forward-then-fail',
        status: 500,
        body: tableError('InternalError'),
        label: '500 after the write landed',
      };
    if (x < 0.012) return { kind: 'respond', status: 503, body: tableError('ServerBusy'), label: '503' };
    return undefined;
  };
  world.ingestionProxy.background = () => {
    const x = rand();
    if (x < 0.08)
      return {
        kind: 'respond',
        status: 429,
        headers: { 'retry-after': '1' },
        body: '{"error":{"code":"TooManyRequests"}}',
        label: '429',
      };
    if (x < 0.15)
      return { kind: 'respond', status: 500, body: '{"error":{"code":"InternalServerError"}}', label: '500' };
    return undefined;
  };
  const slots = world.data.slots.length;
  const downHours = 1 + Math.floor(rand() * 6);
  const downStart = Math.floor(rand() * Math.max(1, slots - downHours * 4 - 2));
  const downEnd = downStart + downHours * 4;
  let wasDown = false;
  return (index) => {
    const down = index >= downStart && index < downEnd;
    if (down && !wasDown) count(faults, `Logs Ingestion: down for ${downHours} simulated hour(s)`);
    wasDown = down;
    world.ingestion.setDown(down);
    if (index >= slots) return;
    if (rand() < 0.12) {
      const kind = pick([429, 500, 403, 'partial', 'truncate'] as const);
      world.logs.failNext(kind);
      count(faults, `Log Analytics: ${kind === 'truncate' ? 'result over the limits' : String(kind)}`);
    }
    if (rand() < 0.03) {
      count(faults, 'Table Storage: connections refused (restart)');
      void world.tableProxy
        .refuse(true)
        .then(() => setTimeout(() => void world.tableProxy.refuse(false), 500 + rand() * 2_500));
    }
  };
}

/** Hostile rows normalised one by one, and written as JSON Lines and read back: crashes counted. */
async function fuzzRecords(n: number, seed: number) {
  const reasons: Record<string, number> = {};
  let accepted = 0;
  let crashes = 0;
  const lines: string[] = [];
  let huge = 0;
  // A thousand rows that may hold megabyte strings (in small batches: they are big), then the rest.
  const batches: { huge: boolean; size: number }[] = [];
  for (let done = 0; done < Math.min(1_000, n); done += 50) batches.push({ huge: true, size: 50 });
  for (let done = Math.min(1_000, n); done < n; done += 5_000)
    batches.push({ huge: false, size: Math.min(5_000, n - done) });
  for (const [i, b] of batches.entries()) {
    const rows = fc.sample(hostileRow({ huge: b.huge }), { numRuns: b.size, seed: seed + i });
    for (const [k, row] of rows.entries()) {
      // Half of them get a valid time and an operation, to reach past the first checks.
      if (k % 2 === 0) {
        row.TimeGenerated = new Date(Date.UTC(2026, 9, 5) + k * 1_000).toISOString();
        const op = row.OperationNameValue;
        row.OperationNameValue = `OP/${typeof op === 'string' ? op : (JSON.stringify(op) ?? k)}`;
      }
      try {
        const r = normaliseActivityRow(row);
        if (r.ok) accepted++;
        else count(reasons, r.reason);
      } catch {
        crashes++;
      }
      const line = JSON.stringify(row) ?? 'undefined';
      // The file keeps every small row and twenty megabyte ones.
      if (line.length < 100_000 ? lines.length < 50_000 : huge++ < 20) lines.push(line);
    }
  }
  // The same rows as a file (after one good first line, so the file reads as JSON Lines).
  const dir = path.join(ROOT, '.data', 'soak');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'fuzz.jsonl');
  writeFileSync(
    file,
    `${JSON.stringify({ TimeGenerated: '2026-10-05T10:00:00Z', OperationNameValue: 'OP/A', Caller: 'a' })}\n${lines.join('\n')}\n`,
  );
  const stats = newReadStats();
  let read = 0;
  try {
    for await (const _ of readActivityFile(file, stats)) read++;
  } catch {
    crashes++;
  }
  return {
    records: n,
    accepted,
    rejectedByReason: reasons,
    fileRecords: stats.records,
    fileAccepted: read,
    fileRejectedByReason: stats.skipped,
    crashes,
  };
}

function renderMarkdown(report: {
  date: string;
  seed: number;
  minutes: number;
  rounds: RoundResult[];
  totals: Record<string, number>;
  kills: Partial<Record<KillStep, number>>;
  faults: Record<string, number>;
  fuzz: {
    records: number;
    accepted: number;
    crashes: number;
    rejectedByReason: Record<string, number>;
    fileRecords: number;
    fileAccepted: number;
  };
}): string {
  const t = report.totals;
  const lines = [
    `Last soak: ${report.date}, \`npm run soak\` (seed ${report.seed}), ${report.minutes} minutes on this machine.`,
    '',
    '| Figure | Value |',
    '| --- | --- |',
    `| Rounds (each the ten-hour window, compared with the clean run) | ${t.rounds} |`,
    `| Timer runs | ${t.runs} (${t.failedRuns} failed on purpose and were redone by the next) |`,
    `| Processes killed with SIGKILL | ${t.kills} |`,
    `| Alerts expected (clean run × rounds) | ${t.expected} |`,
    `| Alerts delivered | ${t.delivered} |`,
    `| Alerts delivered twice (at-least-once) | ${t.duplicates} |`,
    `| Alerts lost | ${t.lost} |`,
    `| Alerts the clean run did not raise | ${t.extra} |`,
    `| Rounds whose state tables differ from the clean run | ${t.stateMismatches} |`,
    `| ETag conflicts retried (412/409) | ${t.conflicts} |`,
    `| Hostile records normalised | ${report.fuzz.records} (${report.fuzz.accepted} accepted; rejected by reason: ${Object.entries(
      report.fuzz.rejectedByReason,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}) |`,
    `| Hostile records read from a file | ${report.fuzz.fileRecords} (${report.fuzz.fileAccepted} accepted) |`,
    `| Crashes on hostile input | ${report.fuzz.crashes} |`,
    '',
    '| Kills by step | Count |',
    '| --- | --- |',
    ...KILL_STEPS.map((s) => `| ${s} | ${report.kills[s] ?? 0} |`),
    '',
    '| Fault injected | Count |',
    '| --- | --- |',
    ...Object.entries(report.faults)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `| ${k} | ${v} |`),
    '',
    '| Round | Kind | TZ | Runs | Kills | Delivered / expected | Duplicates | Lost | Extra | State |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...report.rounds.map(
      (r) =>
        `| ${r.round} | ${r.kind} | ${r.tz} | ${r.runs} | ${r.kills} | ${r.delivered} / ${r.expected} | ${r.duplicates} | ${r.lost} | ${r.extra} | ${r.hostile ? 'not compared (hostile history)' : r.stateDiffs.length === 0 ? 'identical' : `${r.stateDiffs.length} differences`} |`,
    ),
    '',
    ...hostileTable(report.rounds),
  ];
  return lines.join('\n');
}

/** The hostile rounds' own figures (test/hostile/values.ts), when there were any. */
function hostileTable(rounds: readonly RoundResult[]): string[] {
  const hostile = rounds.filter((r) => r.hostile !== undefined);
  if (hostile.length === 0) return [];
  return [
    '| Hostile round | Other callers: alerts / clean run | Lost | Extra | Hostile callers alerted | Largest alert row | Delivered twice | Rows rejected | Runs failed (injected faults) | Runs stopped by a value |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...hostile.map((r) => {
      const h = r.hostile!;
      return (
        `| ${r.round} | ${h.others} / ${r.expected} | ${h.lost.length} | ${h.extra.length} | ` +
        `${h.hostileCallersAlerted.length} (${h.hostileAlerts} alerts) | ${h.maxRowBytes} bytes | ${h.duplicates} | ` +
        `${h.rowsRejected} | ${r.failedRuns} | ${h.hostileFailures.length} |`
      );
    }),
    '',
  ];
}

/** Replaces the figures between the soak markers of docs/reliability.md (formatted as the repository's Prettier). */
async function writeDocs(markdown: string): Promise<void> {
  const file = path.join(ROOT, 'docs', 'reliability.md');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    say('docs/reliability.md not found: figures not written');
    return;
  }
  const start = '<!-- soak:start -->';
  const end = '<!-- soak:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) {
    say('docs/reliability.md has no soak markers: figures not written');
    return;
  }
  let next = `${text.slice(0, a + start.length)}\n${markdown}${text.slice(b)}`;
  try {
    const prettier = await import('prettier');
    next = await prettier.format(next, { ...(await prettier.resolveConfig(file)), filepath: file });
  } catch {
    // Prettier is a dev dependency: without it the figures are written unformatted.
  }
  writeFileSync(file, next);
  say('figures written to docs/reliability.md');
}

await main();
