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
  type BootstrapStatus,
  cancelBootstrap,
  formatBootstrap,
  historyDays,
  readBootstrap,
  runBootstrap,
  startBootstrap,
} from '../ops/bootstrap.js';
import { openAzureOps, openStateStore } from '../ops/clients.js';
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

export async function runBootstrapCommand(args: string[], io: BootstrapIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout(`Usage:\n${BOOTSTRAP_USAGE}`);
    return 0;
  }
  const clock = io.clock ?? Date.now;
  const settings = loadSettings(io.env, parseSets(values.set));
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

  const verbose = values.verbose === true;
  const quiet = values.quiet === true;
  const log: LogFn = (level, message) => {
    if (level === 'info' && !verbose) return;
    io.stderr(`${level}: ${message}\n`);
  };

  if (values.status === true || values.cancel === true) {
    if (values.status === true && values.cancel === true)
      throw new UsageError('--status or --cancel, not both');
    const store = await openStateStore(settings, io.env, values.state, true);
    try {
      if (values.status === true) {
        const st = await readBootstrap(store);
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

  let store: BaselineStore;
  let source: EventSource;
  let geo: Geolocator;
  let networks: NetworkLocator | undefined;
  let endMs: number;
  let earliestMs: number | undefined;
  if (fromFiles) {
    if (positionals.length === 0)
      throw new UsageError('bootstrap --from-files needs at least one input file');
    const opened = await openGeo(settings);
    if (opened.warning && !quiet) io.stderr(`warning: ${opened.warning}\n`);
    geo = opened.geo;
    networks = opened.networks; // openGeo honours UC_NETWORKS
    const agg = await readFiles(positionals, settings, io, quiet);
    if (agg.events === 0) {
      io.stderr('no events in the files: nothing to bootstrap\n');
      return 1;
    }
    const tick = settings.UC_TICK_INTERVAL;
    endMs = toMs !== undefined ? Math.floor(toMs / tick) * tick : Math.floor(agg.maxMs / tick) * tick + tick;
    earliestMs = agg.minMs;
    source = agg;
    store = SqliteStore.openDirectory(resolve(values.state!));
  } else {
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
    geo = current.geo;
    networks = settings.UC_NETWORKS === 'on' ? current.networks : undefined;
    source = clients.source;
    store = clients.store;
    // The current timer slot: the timer's next run continues right after it.
    endMs = Math.floor(clock() / settings.UC_TICK_INTERVAL) * settings.UC_TICK_INTERVAL;
  }

  try {
    let started: { status: BootstrapStatus; created: boolean };
    try {
      started = await startBootstrap(store, {
        days,
        endMs,
        ...(earliestMs !== undefined ? { earliestMs } : {}),
        windowMs,
        replace: values.replace === true,
        source: fromFiles ? 'files' : 'log-analytics',
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
    const st = started.status;
    const wanted = fromFiles ? 'files' : 'log-analytics';
    if (st.source !== wanted) {
      io.stderr(
        `an unfinished bootstrap from ${st.source === 'files' ? 'files (--from-files)' : 'Log Analytics'} is in this state: ` +
          'resume it the same way, or stop it with --cancel\n',
      );
      return 1;
    }
    if (!quiet) {
      io.stderr(
        started.created
          ? `bootstrap: counting ${historyDays(st)} of history, ${iso(st.startMs)} to ${iso(st.endMs)}, in ${st.windowsTotal} window(s)${st.rebuild ? ' (rebuilding the learned state)' : ''}\n`
          : `bootstrap: resuming the bootstrap started ${iso(st.createdMs)} (${iso(st.startMs)} to ${iso(st.endMs)}), counted up to ${iso(st.doneUntilMs)}\n`,
      );
    }
    const tty = io.isTty === true;
    const r = await runBootstrap(
      { settings, store, source, geo, ...(networks ? { networks } : {}), log, clock },
      {
        owner: `cli:${hostname()}:${process.pid}`,
        takeOver: fromFiles || values['take-over'] === true,
        onProgress: (s) => {
          if (quiet) return;
          if (s.state !== 'running') {
            if (tty) io.stderr('\n'); // the last window's line is already there
            return;
          }
          const j = bootstrapJson(s);
          const text = `bootstrap: ${s.windowsDone}/${s.windowsTotal} window(s) (${String(j.percent)}%), counted up to ${iso(s.doneUntilMs)}, ${s.observations.toLocaleString('en-US')} observations`;
          if (tty) io.stderr(`\r${text}\x1b[K`);
          else io.stderr(`${text}\n`);
        },
      },
    );
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
  } finally {
    await store.close();
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
