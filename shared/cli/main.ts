#!/usr/bin/env node
import { rm, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { newReadStats, readActivityFiles } from '../activity/read.js';
import type { ReadStats } from '../activity/types.js';
import type { Alert } from '../alerts/alert.js';
import { type AlertSink, JsonlAlertSink, MemoryAlertSink } from '../alerts/sinks.js';
import { SqliteStore } from '../baseline/sqlite.js';
import { loadSettings, type Settings, SettingsError } from '../config/settings.js';
import { classReport, formatClassTable, hasClasses } from '../demo/classes.js';
import { runDemo } from '../demo/demo.js';
import { evaluateAlerts, formatEvaluation, readLabels } from '../demo/evaluate.js';
import { AllowlistProvider } from '../ops/allowlist.js';
import { describeSkipped, readVerdictFile, verdictPolicy } from '../ops/verdicts.js';
import { DEFAULT_REORDER_MS, replay, type ReplayProgress, type ReplaySummary } from '../pipeline/replay.js';
import { runStateOf } from '../pipeline/runState.js';
import { VerdictFeed } from '../pipeline/verdicts.js';
import { VERSION } from '../version.js';
import { CliError, EXIT, parseSets, parseTime, UsageError } from './args.js';
import { checkInputs, checkOut, checkReadable, makeStateDir } from './files.js';
import { HELP } from './help.js';
import { lateNote, reorderOption } from './reorder.js';
import { alertDefaults, openGeo } from './runtime.js';
import { evaluateSuite } from './suite.js';

const USAGE = `unusual-city ${VERSION} — Azure Activity Log operations from unusual cities (T1078.004)

Usage:
  unusual-city replay <file>... --out alerts.jsonl [--state DIR] [--append] [--tick 15m] [--lookback 2h]
                      [--from ISO] [--to ISO] [--set NAME=VALUE]... [--quiet]
      Runs the production pipeline over exported Activity Logs (AzureActivity JSON Lines, Log Analytics
      query responses, portal CSV, diagnostic-settings records; gzip or not) as the timer would have.
  unusual-city evaluate <file>... --labels labels.json [--alerts alerts.jsonl] [same options as replay]
      Replays a labelled data set (or reads its alerts) and prints detected attacks, false alerts per day
      and time to detect (per class when the labels have classes).
  unusual-city evaluate --suite [--seeds 1,2,3] [--days 28] [--set NAME=VALUE]... [--json] [--out DIR]
      Generates the labelled scenario suite, replays each seed and prints the per-class table
      (evaluate --help for details).
  unusual-city demo [--out DIR] [--days N] [--set NAME=VALUE]...
      Generates a realistic multi-week tenant with labelled attacks, replays it and evaluates.
  unusual-city backtest <file>... | --days N  [--labels labels.json] [--thresholds 30,40,50,60,70]
                        [--vary NAME=v1,v2,...]... [--set NAME=VALUE]... [--report report.html] [--json results.json]
      Replays once and reports alerts per day, noisy (operation, city) pairs and detection for each threshold;
      each --vary value needs its own replay; --days N reads the last N days from Log Analytics instead of
      files (backtest --help for details).
  unusual-city bootstrap [--days N] [--replace] [--from-files <file>... --state DIR] [--status | --cancel]
      Builds the baselines from the last N days of history before the first run: counted, never alerted
      on; resumable (bootstrap --help for details).
  unusual-city baseline show|forget|allow|disallow|allows|audit ... [--state DIR]
      Shows an operation's known cities, forgets an (operation, city), keeps the allow table (audited;
      baseline --help for details).
  unusual-city doctor [--json]
      Checks a live deployment (settings, tokens, workspace, state, outbox, GeoIP, last run): one line per
      check with the fix for each failure; exit 0 only when all pass (doctor --help for details).

Settings come from the environment (app-setting names, see README) or --set NAME=VALUE.
unusual-city <command> --help shows a command's options and examples.
`;

/**
 * Commands with their own argument parsing (bootstrap, backtest, baseline …): each lives in its own module in
 * shared/cli/ and is registered here with one line. It returns the exit code; errors map as for the others
 * (SettingsError → 78, UsageError → 64).
 */
export type CommandModule = (args: string[]) => Promise<number>;
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  backtest: async () => (await import('./backtest.js')).run,
  bootstrap: async () => (await import('./bootstrap.js')).run,
  baseline: async () => (await import('./baseline.js')).run,
  doctor: async () => (await import('./doctor.js')).run,
};

const replayOptions = {
  out: { type: 'string' },
  append: { type: 'boolean' },
  state: { type: 'string' },
  tick: { type: 'string' },
  lookback: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  set: { type: 'string', multiple: true },
  quiet: { type: 'boolean' },
  labels: { type: 'string' },
  alerts: { type: 'string' },
  days: { type: 'string' },
  suite: { type: 'boolean' },
  seeds: { type: 'string' },
  json: { type: 'boolean' },
  verdicts: { type: 'string' },
  'analyst-hours': { type: 'string' },
  reorder: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function settingsFrom(values: { set?: string[]; tick?: string; lookback?: string }): Settings {
  const sets = parseSets(values.set);
  if (values.tick !== undefined) sets.UC_TICK_INTERVAL = values.tick;
  if (values.lookback !== undefined) sets.UC_LOOKBACK = values.lookback;
  return loadSettings(process.env, sets);
}

function progressPrinter(quiet: boolean): (p: ReplayProgress) => void {
  const tty = process.stderr.isTTY;
  return (p) => {
    if (quiet) return;
    const text =
      p.phase === 'reading'
        ? `reading: ${p.done.toLocaleString('en-US')} records`
        : `detecting: run ${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} (${Math.round((100 * p.done) / Math.max(1, p.total))}%), ${p.alerts} alert(s)`;
    if (tty) process.stderr.write(`\r${text}\x1b[K`);
    else if (p.phase === 'detecting' && p.done % (96 * 7) !== 0 && p.done !== p.total) return;
    else process.stderr.write(`${text}\n`);
    if (tty && p.phase === 'detecting' && p.done === p.total) process.stderr.write('\n');
  };
}

export function formatSummary(s: ReplaySummary): string {
  const skipped = Object.entries(s.read.skipped)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const secs = (s.readMs + s.detectMs) / 1000;
  const lines = [
    `records read:        ${s.read.records.toLocaleString('en-US')} (${Object.entries(s.read.formats)
      .map(([f, n]) => `${f} ${n}`)
      .join(', ')})`,
    `skipped (malformed): ${Object.values(s.read.skipped).reduce((a, b) => a + (b ?? 0), 0)}${skipped ? ` — ${skipped}` : ''}`,
    ...s.read.skippedSamples
      .slice(0, 5)
      .map(
        (x) =>
          `    ${x.source}:${x.position} ${x.reason}${x.id ? ` (id ${x.id})` : ''}${x.detail ? `: ${x.detail}` : ''}`,
      ),
    `events analysed:     ${s.events.toLocaleString('en-US')}${s.filteredOut > 0 ? ` (${s.filteredOut} filtered out by UC_CATEGORIES/UC_STATUSES)` : ''}`,
    `  internal IPs:      ${s.internalEvents.toLocaleString('en-US')} (private/loopback/CGNAT/empty: never alerted on)`,
    `  no city:           ${s.noCityEvents.toLocaleString('en-US')} (country only; UC_NO_CITY_MODE)`,
    `  not in GeoIP:      ${s.notFoundEvents.toLocaleString('en-US')}, invalid IP: ${s.invalidIpEvents}`,
    `time range:          ${s.events > 0 ? `${new Date(s.firstEventMs).toISOString()} .. ${new Date(s.lastEventMs).toISOString()}` : '-'}`,
    `runs simulated:      ${s.ticks.toLocaleString('en-US')}${s.resumedFromMs > 0 ? ` (resumed after checkpoint ${new Date(s.resumedFromMs).toISOString()})` : ''}`,
    `observations scored: ${s.observations.toLocaleString('en-US')} (operation, city, hour)`,
    `alerts:              ${s.alerts} (joined to an episode in cooldown: ${s.suppressedByCooldown}, over daily cap: ${s.suppressedByCap})`,
    ...(s.allowlisted > 0
      ? [`allowlisted:         ${s.allowlisted} rare finding(s) kept from alerting`]
      : []),
    ...(s.lateEvents > 0 ? [lateNote(s)] : []),
    `throughput:          ${secs > 0 ? Math.round(s.read.records / secs).toLocaleString('en-US') : '-'} events/s (read ${(s.readMs / 1000).toFixed(1)} s, detect ${(s.detectMs / 1000).toFixed(1)} s)`,
  ];
  return lines.join('\n') + '\n';
}

async function runReplay(
  files: string[],
  values: Record<string, unknown>,
  sink: AlertSink,
  settings: Settings,
) {
  const stats: ReadStats = newReadStats();
  // One export is in time order or nearly; several may each cover the same time (read one after the other).
  const reorderMs =
    reorderOption(values.reorder as string | undefined) ??
    (files.length === 1 ? DEFAULT_REORDER_MS : Number.POSITIVE_INFINITY);
  const stateDir = values.state as string | undefined;
  if (stateDir !== undefined) await makeStateDir(stateDir);
  const { geo, networks, warning } = await openGeo(settings);
  if (warning) process.stderr.write(`warning: ${warning}\n`); // --quiet hides progress, never a warning
  const store =
    stateDir !== undefined ? SqliteStore.openDirectory(resolve(stateDir)) : SqliteStore.open(':memory:');
  try {
    const { fromMs, toMs } = replayWindow(values);
    // History before the present: an unfinished `bootstrap --from-files` into this state must end first.
    if (stateDir !== undefined && (await runStateOf(store).bootstrapPending()))
      throw new UsageError(
        `${stateDir} holds an unfinished bootstrap: run it again to finish it, or --cancel it`,
      );
    if (stateDir !== undefined) await sameSettingsAsState(store, settings, stateDir);
    // Allowlists: settings and service tags, plus the allow table of --state (baseline allow), read once and
    // again after verdicts (--verdicts FILE) change it.
    const provider = await AllowlistProvider.fromSettings(settings);
    const allowlist = await provider.forRun(store);
    const feed = await verdictFeedOf(values.verdicts as string | undefined, store, settings);
    const summary = await replay({
      events: readActivityFiles(files, stats),
      readStats: stats,
      store,
      geo,
      ...(networks ? { networks } : {}),
      sink,
      settings,
      defaults: alertDefaults(settings),
      ...(fromMs !== undefined ? { fromMs } : {}),
      ...(toMs !== undefined ? { toMs } : {}),
      reorderMs,
      log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
      onProgress: progressPrinter(values.quiet === true),
      ...(allowlist.size > 0 ? { suppress: allowlist.suppress } : {}),
      ...(feed
        ? {
            beforeRun: async (tickMs: number) =>
              (await feed.due(tickMs)) ? { suppress: (await provider.forRun(store)).suppress } : undefined,
          }
        : {}),
    });
    if (allowlist.suppressed > 0) process.stderr.write(`allowlist matches: ${allowlist.describeCounts()}\n`);
    if (feed) process.stderr.write(describeVerdictStats(feed));
    return summary;
  } finally {
    await store.close();
  }
}

/** `--verdicts FILE`: its verdicts, applied at their ClosedTime during the runs; bad lines are warned about. */
async function verdictFeedOf(
  path: string | undefined,
  store: SqliteStore,
  settings: Settings,
): Promise<VerdictFeed | undefined> {
  if (path === undefined) return undefined;
  await checkReadable('--verdicts', path);
  const { verdicts, skipped } = await readVerdictFile(path);
  if (skipped.length > 0) process.stderr.write(`warning: ${path}: ${describeSkipped(skipped, 'line')}\n`);
  return new VerdictFeed(store, verdictPolicy(store, settings), verdicts);
}

const describeVerdictStats = (feed: VerdictFeed): string => {
  const s = feed.stats;
  return (
    `verdicts:            ${s.applied} applied (${s.benign} benign, ${s.confirmed} true positive), ` +
    `${s.unknownAlert} for alerts not raised in this replay, ${s.undetermined} undetermined, ${feed.size} after the last run\n`
  );
};

/**
 * A --state holds what these settings learned: the first replay into it records them, and a later one with
 * different settings (--set, --tick, the environment) is refused, naming each difference.
 */
async function sameSettingsAsState(store: SqliteStore, settings: Settings, stateDir: string): Promise<void> {
  const current = Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, JSON.stringify(v)]));
  const row = (await store.readRows('state', 'replay', ['settings'])).get('settings');
  if (typeof row?.values !== 'string') {
    await store.updateRows('state', 'replay', ['settings'], () => {
      return new Map([['settings', { values: JSON.stringify(current) }]]);
    });
    return;
  }
  const saved = JSON.parse(row.values) as Record<string, string>;
  const changed = Object.keys(current)
    .filter((k) => saved[k] !== undefined && saved[k] !== current[k])
    .map((k) => `${k} ${saved[k]} -> ${current[k]}`);
  if (changed.length > 0)
    throw new UsageError(
      `--state ${stateDir} was built with other settings (${changed.join(', ')}); its baselines and ` +
        'checkpoint belong to those: use a new --state, or the settings it was built with',
    );
}

/** --from/--to as times, the first not later than the second. */
function replayWindow(values: { from?: unknown; to?: unknown }): { fromMs?: number; toMs?: number } {
  const fromMs = parseTime('--from', values.from as string | undefined);
  const toMs = parseTime('--to', values.to as string | undefined);
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs)
    throw new UsageError(`--from ${String(values.from)} is later than --to ${String(values.to)}`);
  return { ...(fromMs !== undefined ? { fromMs } : {}), ...(toMs !== undefined ? { toMs } : {}) };
}

/** What --from means for the baselines, said after the summary (which describes the whole input). */
function windowNote(values: { from?: string; to?: string; state?: string }, s: ReplaySummary): string {
  if (values.from === undefined && values.to === undefined) return '';
  const window = `runs window:         ${values.from ?? 'start of input'} .. ${values.to ?? 'end of input'} (the lines above describe the whole input)\n`;
  if (values.from === undefined || s.resumedFromMs > 0) return window;
  return (
    window +
    `note: the runs began at --from ${values.from} with empty baselines: history before it was not learned, so ` +
    `familiar cities may alert. Learn it first: unusual-city bootstrap --from-files <file>... --to ${values.from} ` +
    `--state DIR, then this replay with --state DIR.\n`
  );
}

/** Ctrl-C during a replay: the hint to resume (state is durable at every commit, as for kill -9). */
function onInterrupt(stateDir: string | undefined): void {
  process.once('SIGINT', () => {
    process.stderr.write(
      stateDir !== undefined
        ? `\ninterrupted: run the same command again to resume from the last checkpoint in ${stateDir}\n`
        : '\ninterrupted: without --state a replay starts over; run it again with --append (alerts already in --out are kept), or use --state DIR to make it resumable\n',
    );
    process.exit(130);
  });
}

async function replayCommand(
  positionals: string[],
  values: Parameters<typeof runReplay>[1] & { out?: string; append?: boolean; state?: string },
  settings: Settings,
): Promise<number> {
  if (positionals.length === 0) throw new UsageError('replay needs at least one input file');
  if (values.out === undefined) throw new UsageError('replay needs --out alerts.jsonl');
  await checkInputs(positionals);
  const out = values.out;
  const created = !(await stat(out).then(
    () => true,
    () => false,
  ));
  await checkOut({
    out,
    inputs: positionals,
    append: values.append === true,
    ...(values.state !== undefined ? { state: values.state } : {}),
  });
  const sink = await JsonlAlertSink.open(out);
  if (sink.repairedBytes > 0)
    process.stderr.write(`repaired ${out}: dropped a torn last line (${sink.repairedBytes} bytes)\n`);
  onInterrupt(values.state);
  const summary = await runReplay(positionals, values, sink, settings);
  process.stderr.write(formatSummary(summary));
  if (summary.read.records === 0) {
    if (created && sink.written === 0) await rm(out, { force: true });
    throw new CliError(
      `no Activity Log records in ${positionals.join(', ')}: nothing replayed, no alerts file written`,
      EXIT.dataErr,
    );
  }
  process.stderr.write(windowNote(values, summary));
  if (created && sink.written === 0) await writeFile(out, '', { flag: 'a' }); // the file announced below exists, if empty
  process.stderr.write(`alerts file:         ${out} (${sink.written} new, ${sink.size} in all)\n`);
  return 0;
}

async function evaluateCommand(
  positionals: string[],
  values: Parameters<typeof runReplay>[1] &
    Parameters<typeof evaluateSuite>[0] & { labels?: string; alerts?: string; suite?: boolean },
  settings: Settings,
): Promise<number> {
  if (values.suite === true) {
    if (positionals.length > 0 || values.labels !== undefined || values.alerts !== undefined)
      throw new UsageError('evaluate --suite generates its own data: give no files, --labels or --alerts');
    return evaluateSuite(values, settings, (s) => process.stdout.write(s));
  }
  if (values.labels === undefined) throw new UsageError('evaluate needs --labels labels.json');
  await checkReadable('--labels', values.labels);
  const labels = await readLabels(values.labels);
  let alerts: Alert[];
  let rangeMs: [number, number];
  if (values.alerts !== undefined) {
    await checkReadable('--alerts', values.alerts);
    const { readAlertsFile } = await import('../demo/evaluate.js');
    alerts = await readAlertsFile(values.alerts);
    rangeMs = [labels.startMs, labels.endMs];
  } else {
    if (positionals.length === 0)
      throw new UsageError('evaluate needs input files (or --alerts alerts.jsonl)');
    await checkInputs(positionals);
    const sink = new MemoryAlertSink();
    const summary = await runReplay(positionals, values, sink, settings);
    process.stderr.write(formatSummary(summary));
    alerts = sink.alerts;
    rangeMs = [labels.startMs || summary.firstEventMs, labels.endMs || summary.lastEventMs];
  }
  const evaluation = evaluateAlerts(alerts, labels, rangeMs[0], rangeMs[1]);
  process.stdout.write(formatEvaluation(evaluation));
  if (hasClasses(labels))
    process.stdout.write('\n' + formatClassTable(classReport(evaluation, labels), 'Per class'));
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const own = COMMANDS[command];
  if (own !== undefined) return (await own())(rest);
  if (HELP[command] === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const { values, positionals } = parseArgs({
    args: rest,
    options: replayOptions,
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP[command]);
    return 0;
  }
  const settings = settingsFrom(values);
  // Bad times are usage errors: reject them before anything touches --out (torn-line repair) or --state.
  replayWindow(values);
  reorderOption(values.reorder);
  if (command === 'replay') return replayCommand(positionals, values, settings);
  if (command === 'evaluate') return evaluateCommand(positionals, values, settings);
  await runDemo({
    settings,
    outDir: values.out ?? '.data/demo',
    ...(values.days !== undefined ? { days: Number(values.days) } : {}),
    quiet: values.quiet === true,
    write: (s) => process.stdout.write(s),
    progress: progressPrinter(values.quiet === true),
  });
  return 0;
}

// A reader that stops early (`unusual-city demo | head`) closes the pipe, and the next write to stdout fails with
// EPIPE. No one reads what is left, so exit quietly with 0, as command-line tools do. Other errors on stdout
// stay errors: thrown from here, they end the process as an unhandled 'error' event would have.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = report(error, process.argv[2]);
  },
);

/** One line per mistake with its exit code; a stack trace only for what is not the user's to fix. */
function report(error: unknown, command: string | undefined): number {
  const help =
    command !== undefined && command in { ...HELP, ...COMMANDS }
      ? `unusual-city ${command} --help`
      : 'unusual-city --help';
  if (error instanceof SettingsError) {
    process.stderr.write(`${error.message}\n`);
    return EXIT.config;
  }
  if (
    error instanceof UsageError ||
    (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
  ) {
    process.stderr.write(`error: ${error.message}\n(${help} for usage and examples)\n`);
    return EXIT.usage;
  }
  if (error instanceof CliError) {
    process.stderr.write(`error: ${error.message}\n`);
    return error.exitCode;
  }
  const fsError = error as NodeJS.ErrnoException;
  const known: Record<string, [string, number]> = {
    ENOENT: ['no such file or folder', EXIT.noInput],
    EISDIR: ['is a folder, not a file', EXIT.noInput],
    ENOTDIR: ['a part of the path is a file, not a folder', EXIT.noInput],
    EACCES: ['permission denied', EXIT.cantCreate],
    EPERM: ['operation not permitted', EXIT.cantCreate],
    EROFS: ['read-only file system', EXIT.cantCreate],
    ENOSPC: ['no space left on the device', EXIT.ioErr],
  };
  const hit = fsError.code !== undefined ? known[fsError.code] : undefined;
  if (hit !== undefined && fsError.path !== undefined) {
    process.stderr.write(`error: ${fsError.path}: ${hit[0]}\n`);
    return hit[1];
  }
  // Anything else: its message; the stack trace on request (a bug report), not in an operator's face.
  const debug = (process.env.UNUSUAL_CITY_DEBUG ?? '') !== '';
  const text =
    error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error);
  process.stderr.write(`error: ${text}\n${debug ? '' : '(UNUSUAL_CITY_DEBUG=1 shows where it happened)\n'}`);
  return 1;
}
