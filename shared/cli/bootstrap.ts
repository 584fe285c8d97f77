/**
 * `unusual-city bootstrap`: builds the baselines from history before the detector's first run
 * (shared/ops/bootstrap.ts), from Log Analytics (Azure settings) or from exported files into `--state DIR`.
 */
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { newReadStats, readActivityFiles } from '../activity/read.js';
import { SqliteStore } from '../baseline/sqlite.js';
import type { BaselineStore } from '../baseline/store.js';
import { parseDuration } from '../config/duration.js';
import { loadSettings, type Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import { checkWhoAndWhy } from '../ops/audit.js';
import {
  bootstrapJson,
  BootstrapRefusedError,
  cancelBootstrap,
  formatBootstrap,
  historyDays,
  runBootstrap,
  type RunOutcome,
  startBootstrap,
} from '../ops/bootstrap.js';
import { openAzureOps, openStateStore } from '../ops/clients.js';
import { type BootstrapStatus, runStateOf } from '../pipeline/runState.js';
import type { LogFn } from '../pipeline/tick.js';
import type { EventSource } from '../pipeline/types.js';
import { AggregatedEvents } from '../pipeline/window.js';
import { type CliIo, parseSets, parseTime, processIo, UsageError } from './args.js';
import { openGeo } from './runtime.js';

export const BOOTSTRAP_USAGE = `  unusual-city bootstrap [--days N] [--window 1d] [--replace] [--by WHO] [--reason TEXT]
                         [--take-over] [--set NAME=VALUE]... [--quiet] [--verbose]
      Builds the baselines from the last N days (default UC_BOOTSTRAP_DAYS) of AzureActivity in Log Analytics
      (Azure settings from the environment or --set), counting only — no alerts — and sets the checkpoint to
      its end so the timer continues from there. Resumable: run it again after a crash. Exit 75 when another
      worker (the timer, the HTTP function) holds it; --take-over if that worker is gone.
      --replace (wipes what was learned before the period) needs --by and --reason (audit table).
  unusual-city bootstrap --from-files <file>... --state DIR [--days N] [--to ISO] [--replace]
      The same from exported Activity Logs into local state (as replay --state uses it).
  unusual-city bootstrap --status [--json] [--state DIR]     progress of the bootstrap
  unusual-city bootstrap --cancel --by WHO --reason TEXT [--state DIR]
      Stops an unfinished bootstrap (the baselines stay as far as it got; detection resumes).
`;

/** What the command talks to (tests pass their own). */
export type BootstrapIo = CliIo;

const options = {
  days: { type: 'string' },
  window: { type: 'string' },
  replace: { type: 'boolean' },
  by: { type: 'string' },
  reason: { type: 'string' },
  set: { type: 'string', multiple: true },
  state: { type: 'string' },
  'from-files': { type: 'boolean' },
  to: { type: 'string' },
  status: { type: 'boolean' },
  cancel: { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  verbose: { type: 'boolean' },
  'take-over': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Exit code when another worker holds the bootstrap (EX_TEMPFAIL: try again later). */
export const EXIT_BUSY = 75;

function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}

/** The command line as parsed against {@link options}. */
const parseBootstrapArgs = (args: string[]) =>
  parseArgs({ args, options, allowPositionals: true, strict: true });

type BootstrapValues = ReturnType<typeof parseBootstrapArgs>['values'];

/** The bootstrap the command line asks for, checked. */
interface BootstrapRequest {
  fromFiles: boolean;
  days: number;
  windowMs: number;
  toMs: number | undefined;
}

/** One run of the command: the command line and what it talks to. */
interface BootstrapRun {
  values: BootstrapValues;
  request: BootstrapRequest;
  settings: Settings;
  io: BootstrapIo;
  clock: () => number;
  log: LogFn;
  quiet: boolean;
}

/** Where the history comes from, where the baselines go, and the period's end. */
interface OpenedHistory {
  store: BaselineStore;
  source: EventSource;
  geo: Geolocator;
  networks: NetworkLocator | undefined;
  endMs: number;
  earliestMs: number | undefined;
}

export async function runBootstrapCommand(args: string[], io: BootstrapIo): Promise<number> {
  const { values, positionals } = parseBootstrapArgs(args);
  if (values.help) {
    io.stdout(`Usage:\n${BOOTSTRAP_USAGE}`);
    return 0;
  }
  const clock = io.clock ?? Date.now;
  const settings = loadSettings(io.env, parseSets(values.set));
  const request = checkBootstrapRequest(values, positionals, settings);
  const quiet = values.quiet === true;
  const log = stderrLog(io, values.verbose === true);
  if (values.status === true || values.cancel === true)
    return await showStatusOrCancel(values, settings, io, clock);
  const run: BootstrapRun = { values, request, settings, io, clock, log, quiet };
  const history = request.fromFiles ? await openFileHistory(positionals, run) : await openAzureHistory(run);
  if (typeof history === 'number') return history;
  try {
    return await countHistory(history, run);
  } finally {
    await history.store.close();
  }
}

/** Checks the command line's files, period, window, --replace and --to before anything is opened. */
function checkBootstrapRequest(
  values: BootstrapValues,
  positionals: string[],
  settings: Settings,
): BootstrapRequest {
  const fromFiles = values['from-files'] === true;
  if (fromFiles && values.state === undefined)
    throw new UsageError('bootstrap --from-files needs --state DIR (where the baselines go)');
  if (!fromFiles && positionals.length > 0)
    throw new UsageError(`bootstrap takes files only with --from-files (got ${positionals.join(' ')})`);
  const days = values.days === undefined ? settings.UC_BOOTSTRAP_DAYS : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 730)
    throw new UsageError(
      `--days expects a whole number of days from 1 to 730, got ${JSON.stringify(values.days)}`,
    );
  const windowMs = values.window === undefined ? 86_400_000 : parseDuration(values.window);
  if (windowMs === undefined || windowMs < 3_600_000 || windowMs % 3_600_000 !== 0)
    throw new UsageError(
      `--window expects whole hours such as 6h or 1d, got ${JSON.stringify(values.window)}`,
    );
  if (values.replace === true) {
    // Replacing learned baselines is destructive (history older than the workspace's retention is gone for good).
    const problem = checkWhoAndWhy(values.by, values.reason);
    if (problem !== undefined) throw new UsageError(`bootstrap --replace ${problem}`);
  }
  const toMs = parseTime('--to', values.to);
  if (toMs !== undefined && !fromFiles)
    throw new UsageError('--to is only for --from-files (Azure: history ends now)');
  return { fromFiles, days, windowMs, toMs };
}

/** Log lines on stderr; info only with --verbose. */
function stderrLog(io: BootstrapIo, verbose: boolean): LogFn {
  return (level, message) => {
    if (level === 'info' && !verbose) return;
    io.stderr(`${level}: ${message}\n`);
  };
}

/** `--status` prints the bootstrap's progress; `--cancel` stops an unfinished one. */
async function showStatusOrCancel(
  values: BootstrapValues,
  settings: Settings,
  io: BootstrapIo,
  clock: () => number,
): Promise<number> {
  if (values.status === true && values.cancel === true)
    throw new UsageError('--status or --cancel, not both');
  const store = await openStateStore(settings, io.env, values.state, true);
  try {
    if (values.status === true) {
      const st = await runStateOf(store).bootstrap();
      if (values.json === true) io.stdout(`${JSON.stringify(st ? bootstrapJson(st) : null, null, 2)}\n`);
      else io.stdout(st ? `${formatBootstrap(st)}\n` : 'no bootstrap has been started\n');
      return 0;
    }
    const problem = checkWhoAndWhy(values.by, values.reason);
    if (problem !== undefined) throw new UsageError(`bootstrap --cancel ${problem}`);
    const st = await cancelBootstrap(store, { by: values.by!, reason: values.reason!, atMs: clock() });
    if (!st) {
      io.stderr('no unfinished bootstrap to cancel\n');
      return 1;
    }
    io.stdout(`cancelled: ${formatBootstrap(st)}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

/** History from exported files into local state (`--state DIR`); exit code 1 when they hold no events. */
async function openFileHistory(files: string[], run: BootstrapRun): Promise<OpenedHistory | number> {
  const { settings, io, quiet } = run;
  if (files.length === 0) throw new UsageError('bootstrap --from-files needs at least one input file');
  const opened = await openGeo(settings);
  if (opened.warning && !quiet) io.stderr(`warning: ${opened.warning}\n`);
  const agg = await readFiles(files, settings, io, quiet);
  if (agg.events === 0) {
    io.stderr('no events in the files: nothing to bootstrap\n');
    return 1;
  }
  const tick = settings.UC_TICK_INTERVAL;
  const toMs = run.request.toMs;
  return {
    geo: opened.geo,
    networks: opened.networks, // openGeo honours UC_NETWORKS
    endMs: toMs !== undefined ? Math.floor(toMs / tick) * tick : Math.floor(agg.maxMs / tick) * tick + tick,
    earliestMs: agg.minMs,
    source: agg,
    store: SqliteStore.openDirectory(resolve(run.values.state!)),
  };
}

/** History from Log Analytics into Table Storage (Azure settings), up to the current timer slot. */
async function openAzureHistory({ settings, io, log, clock, quiet }: BootstrapRun): Promise<OpenedHistory> {
  const clients = await openAzureOps(
    settings,
    io.env,
    log,
    io.tlsCa !== undefined ? { tlsCa: io.tlsCa } : {},
  );
  const current = await clients.geo.current();
  if (current.stale && !quiet)
    io.stderr(
      `warning: GeoIP database ${current.source} was built ${current.buildDate.toISOString().slice(0, 10)}\n`,
    );
  return {
    geo: current.geo,
    networks: settings.UC_NETWORKS === 'on' ? current.networks : undefined,
    source: clients.source,
    store: clients.store,
    // The current timer slot: the timer's next run continues right after it.
    endMs: Math.floor(clock() / settings.UC_TICK_INTERVAL) * settings.UC_TICK_INTERVAL,
    earliestMs: undefined,
  };
}

/** Starts or resumes the bootstrap, counts the history and says how it ended; the exit code. */
async function countHistory(history: OpenedHistory, run: BootstrapRun): Promise<number> {
  const { settings, io, clock, log, quiet, request } = run;
  const started = await startOrResume(history, run);
  if (typeof started === 'number') return started;
  const st = started.status;
  const wanted = request.fromFiles ? 'files' : 'log-analytics';
  if (st.source !== wanted) {
    io.stderr(
      `an unfinished bootstrap from ${st.source === 'files' ? 'files (--from-files)' : 'Log Analytics'} is in this state: ` +
        'resume it the same way, or stop it with --cancel\n',
    );
    return 1;
  }
  if (!quiet) announceBootstrap(started, io);
  const { store, source, geo, networks } = history;
  const r = await runBootstrap(
    { settings, store, source, geo, ...(networks ? { networks } : {}), log, clock },
    {
      owner: `cli:${hostname()}:${process.pid}`,
      takeOver: request.fromFiles || run.values['take-over'] === true,
      onProgress: progressReporter(io, quiet),
    },
  );
  return reportOutcome(r, io);
}

/** The bootstrap started (or the unfinished one found); exit code 1 when the store refuses one. */
async function startOrResume(
  { store, endMs, earliestMs }: OpenedHistory,
  { values, request, io, clock }: BootstrapRun,
): Promise<{ status: BootstrapStatus; created: boolean } | number> {
  try {
    return await startBootstrap(store, {
      days: request.days,
      endMs,
      ...(earliestMs !== undefined ? { earliestMs } : {}),
      windowMs: request.windowMs,
      replace: values.replace === true,
      source: request.fromFiles ? 'files' : 'log-analytics',
      requestedBy: values.by ?? whoAmI(),
      reason: values.reason ?? '',
      clock,
    });
  } catch (error) {
    if (error instanceof BootstrapRefusedError) {
      io.stderr(`bootstrap refused: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** Says on stderr what the bootstrap counts: a new period, or the unfinished one resumed. */
function announceBootstrap(started: { status: BootstrapStatus; created: boolean }, io: BootstrapIo): void {
  const st = started.status;
  io.stderr(
    started.created
      ? `bootstrap: counting ${historyDays(st)} of history, ${iso(st.startMs)} to ${iso(st.endMs)}, in ${st.windowsTotal} window(s)${st.rebuild ? ' (rebuilding the learned state)' : ''}\n`
      : `bootstrap: resuming the bootstrap started ${iso(st.createdMs)} (${iso(st.startMs)} to ${iso(st.endMs)}), counted up to ${iso(st.doneUntilMs)}\n`,
  );
}

/** Progress on stderr after each window: one line rewritten on a terminal, a line each otherwise. */
function progressReporter(io: BootstrapIo, quiet: boolean): (s: BootstrapStatus) => void {
  const tty = io.isTty === true;
  return (s) => {
    if (quiet) return;
    if (s.state !== 'running') {
      if (tty) io.stderr('\n'); // the last window's line is already there
      return;
    }
    const j = bootstrapJson(s);
    const text = `bootstrap: ${s.windowsDone}/${s.windowsTotal} window(s) (${String(j.percent)}%), counted up to ${iso(s.doneUntilMs)}, ${s.observations.toLocaleString('en-US')} observations`;
    if (tty) io.stderr(`\r${text}\x1b[K`);
    else io.stderr(`${text}\n`);
  };
}

/** How the run ended, on stdout when done and on stderr otherwise; the exit code. */
function reportOutcome(r: { outcome: RunOutcome; status?: BootstrapStatus }, io: BootstrapIo): number {
  switch (r.outcome) {
    case 'done': {
      const s = r.status!;
      io.stdout(
        `bootstrap done: ${historyDays(s)} of history, ${iso(s.startMs)} to ${iso(s.endMs)}: ${s.events.toLocaleString('en-US')} events, ` +
          `${s.observations.toLocaleString('en-US')} observations counted, no alerts (history held ${s.rareFindings} rare finding(s)); ` +
          `checkpoint ${iso(s.endMs)}\n`,
      );
      return 0;
    }
    case 'busy':
      io.stderr(
        `another worker holds the bootstrap: ${r.status ? formatBootstrap(r.status) : ''}\n` +
          'Try again after its lease expires, or pass --take-over if it is gone.\n',
      );
      return EXIT_BUSY;
    case 'cancelled':
      io.stderr('the bootstrap was cancelled\n');
      return 1;
    default:
      io.stderr(`bootstrap stopped (${r.outcome}); run the command again to resume\n`);
      return 1;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

async function readFiles(
  files: string[],
  settings: Settings,
  io: BootstrapIo,
  quiet: boolean,
): Promise<AggregatedEvents> {
  const stats = newReadStats();
  const categories = new Set(settings.UC_CATEGORIES.map((c) => c.toLowerCase()));
  const statuses = new Set(settings.UC_STATUSES.map((c) => c.toLowerCase()));
  const agg = new AggregatedEvents(settings.UC_TICK_INTERVAL, settings.UC_LOOKBACK);
  for await (const ev of readActivityFiles(files, stats)) {
    if (
      (categories.size > 0 && !categories.has(ev.category.toLowerCase())) ||
      (statuses.size > 0 && !statuses.has(ev.status.toLowerCase()))
    )
      continue;
    agg.add(ev);
  }
  const skipped = Object.values(stats.skipped).reduce((a, b) => a + (b ?? 0), 0);
  if (!quiet)
    io.stderr(
      `read ${stats.records.toLocaleString('en-US')} record(s)${skipped > 0 ? `, ${skipped} malformed skipped` : ''}; ${agg.events.toLocaleString('en-US')} event(s) to count\n`,
    );
  return agg;
}

/** The command as main.ts registers it. */
export const run = (args: string[]): Promise<number> => runBootstrapCommand(args, processIo());
