import { constants } from 'node:fs';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';

import type { Alert } from '../alerts/alert.js';
import { toRow } from '../alerts/sinks.js';
import { formatBacktest } from '../backtest/format.js';
import { downloadHistory, historyPeriod, historySlotMs, memoryWarning } from '../backtest/history.js';
import { renderReport } from '../backtest/report.js';
import { type BacktestOptions, runBacktest, variantsOf, type VaryOption } from '../backtest/run.js';
import { matchesAttack, readLabels } from '../demo/evaluate.js';
import { openAzureHistory } from '../ops/clients.js';
import { describeSkipped, readVerdictFile } from '../ops/verdicts.js';
import type { ReplayProgress } from '../pipeline/replay.js';
import type { LogFn } from '../pipeline/tick.js';
import type { EventSource } from '../pipeline/types.js';
import type { Verdict } from '../pipeline/verdicts.js';
import { CliError, type CliIo, EXIT, parseSets, processIo, UsageError } from './args.js';
import { checkReadable } from './files.js';

export const BACKTEST_USAGE = `Usage:
  unusual-city backtest <file>... | --days N  [--labels labels.json] [--thresholds 30,40,50,60,70]
                        [--vary NAME=v1,v2,...]... [--set NAME=VALUE]... [--report report.html]
                        [--json results.json] [--alerts alerts.jsonl] [--alerts-dir DIR] [--top N] [--quiet]

  Replays the period ONCE with the production pipeline, recording every rare finding, then decides the
  alerts again for each threshold (the configured UC_ALERT_THRESHOLD is always included) and reports alerts
  per day, distinct callers, operations and places alerted, the noisiest (operation, place) pairs with the
  narrowest change that would silence each (an allow rule for one caller or one operation in the city, a
  setting, the whole city only when many callers of many operations alert from it), and with --labels
  detected attacks and false alerts per day.

  <file>...           exported Activity Logs (the formats replay reads).
  --days N            instead of files: the last N days (1-730) of AzureActivity in the Log Analytics
                      workspace of the Azure settings (UC_WORKSPACE_ID, UC_LOGS_ENDPOINT, UC_CATEGORIES,
                      UC_STATUSES, the GeoIP database of UC_GEOIP_BLOB or UC_GEOIP_DB_PATH), signed in as
                      the detector signs in (managed identity, or your az/azd/VS Code sign-in). Read once,
                      one query per day of history (more when a day hits the service's limits), grouped by
                      the timer's 15-minute slots so every simulated run sees exactly its window; nothing is
                      written to Azure. Needs Log Analytics Reader on the workspace.

  --thresholds LIST   comma-separated scores 0-100 (default 30,40,50,60,70); free: no extra replay.
  --vary NAME=v1,v2   try each value of one setting, one change at a time from the current settings.
                      Each value NEEDS ITS OWN REPLAY of the files, except settings only the alert
                      decision reads (UC_ALERT_COOLDOWN, UC_RESCORE_MARGIN, UC_DAILY_ALERT_CAP) and the
                      allowlists (UC_ALLOW_*, UC_SERVICE_TAGS_FILE): those re-use the first replay.
                      Separate values with "|" instead when a value contains commas. Repeatable.
  --set NAME=VALUE    a setting for every run (as replay). Repeatable. With --days, settings that shape
                      the query (UC_CATEGORIES, UC_STATUSES, workspaces) cannot be varied: set them.
  --labels FILE       labelled attacks (the file evaluate and demo use) for detection numbers.
  --verdicts FILE     analysts' verdicts (JSON Lines, docs/operations.md), applied at their closedTime.
  --report FILE       a self-contained HTML report (charts, map, tables; opens offline).
  --json FILE         every number as JSON.
  --alerts FILE       the alerts at UC_ALERT_THRESHOLD (current settings) in FILE, a .jsonl file: what
                      replay --out writes and evaluate --alerts reads. (Given a folder or a name that does
                      not end in .jsonl, --alerts means --alerts-dir, as it did before --alerts-dir existed.)
  --alerts-dir DIR    DIR/alerts-<threshold>.jsonl: the alerts at each threshold (current settings),
                      line for line what replay --set UC_ALERT_THRESHOLD=<threshold> writes.
  --top N             noisy pairs listed per threshold (default 10).
  --quiet             no progress lines; warnings (a stale GeoIP database, memory) are still printed.

Examples:
  unusual-city backtest export.jsonl.gz --labels labels.json --report report.html
  unusual-city backtest export.jsonl.gz --alerts alerts.jsonl && unusual-city evaluate --labels labels.json --alerts alerts.jsonl
  unusual-city backtest --days 30 --thresholds 40,50,60 --alerts-dir alerts/ --quiet
`;

const options = {
  days: { type: 'string' },
  labels: { type: 'string' },
  verdicts: { type: 'string' },
  thresholds: { type: 'string' },
  vary: { type: 'string', multiple: true },
  set: { type: 'string', multiple: true },
  report: { type: 'string' },
  json: { type: 'string' },
  alerts: { type: 'string' },
  'alerts-dir': { type: 'string' },
  top: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const MAX_THRESHOLDS = 20;

export function parseThresholds(text: string | undefined): number[] {
  if (text === undefined) return [30, 40, 50, 60, 70];
  const parts = text.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const p of parts) {
    const n = Number(p);
    if (p === '' || !Number.isFinite(n) || n < 0 || n > 100)
      throw new UsageError(
        `--thresholds expects comma-separated scores from 0 to 100 such as 30,40,50, got ${JSON.stringify(text)}`,
      );
    out.push(n);
  }
  const unique = [...new Set(out)].sort((a, b) => a - b);
  if (unique.length > MAX_THRESHOLDS)
    throw new UsageError(`--thresholds takes at most ${MAX_THRESHOLDS} values`);
  return unique;
}

export function parseVary(values: readonly string[] | undefined): VaryOption[] {
  const out: VaryOption[] = [];
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    const name = eq > 0 ? v.slice(0, eq).trim() : '';
    const rest = eq > 0 ? v.slice(eq + 1) : '';
    const list = (rest.includes('|') ? rest.split('|') : rest.split(',')).map((s) => s.trim());
    if (name === '' || list.length === 0 || list.some((s) => s === ''))
      throw new UsageError(`--vary expects NAME=v1,v2,... (or NAME=v1|v2), got ${JSON.stringify(v)}`);
    if (name === 'UC_ALERT_THRESHOLD')
      throw new UsageError('--vary UC_ALERT_THRESHOLD: use --thresholds (thresholds need no extra replay)');
    const existing = out.find((o) => o.name === name);
    if (existing) existing.values.push(...list.filter((x) => !existing.values.includes(x)));
    else out.push({ name, values: [...new Set(list)] });
  }
  return out;
}

/**
 * Settings that shape the Log Analytics query or choose the workspace: `--days` downloads the period once with
 * the current settings, so a variant cannot change them.
 */
export const QUERY_SETTINGS = [
  'UC_CATEGORIES',
  'UC_STATUSES',
  'UC_WORKSPACE_ID',
  'UC_ADDITIONAL_WORKSPACE_IDS',
  'UC_LOGS_ENDPOINT',
] as const;

/** Settings that choose or shape the GeoIP database (shared/geo/provider.ts). */
const GEO_SETTINGS = [
  'UC_GEOIP_BLOB',
  'UC_GEOIP_DB_PATH',
  'UC_BLOB_ENDPOINT',
  'UC_STORAGE_CONNECTION_STRING',
  'UC_NO_CITY_MODE',
  'UC_EGRESS_RANGES',
  'UC_GEOIP_MAX_AGE_DAYS',
] as const;

/** What the command talks to (tests pass their own). */
export type BacktestIo = CliIo;

function progress(quiet: boolean, io: BacktestIo) {
  const tty = io.isTty === true;
  return (r: { index: number; count: number; variant: string }, p: ReplayProgress) => {
    if (quiet || p.phase !== 'detecting') return;
    const text = `replay ${r.index}/${r.count} (${r.variant}): run ${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} (${Math.round((100 * p.done) / Math.max(1, p.total))}%)`;
    if (tty) io.stderr(`\r${text}\x1b[K${p.done === p.total ? '\n' : ''}`);
    else if (p.done === p.total || p.done % (96 * 7) === 0) io.stderr(`${text}\n`);
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** `--days N`: the period from Log Analytics, downloaded once, and the GeoIP database the timer would use. */
async function fromLogAnalytics(
  days: number,
  set: Readonly<Record<string, string>>,
  vary: readonly VaryOption[],
  io: BacktestIo,
  quiet: boolean,
): Promise<Pick<BacktestOptions, 'history' | 'openGeo'>> {
  for (const v of vary) {
    if ((QUERY_SETTINGS as readonly string[]).includes(v.name))
      throw new UsageError(
        `--vary ${v.name} with --days: the period is read from Log Analytics once, with the query of the ` +
          `current settings; run one backtest per value with --set ${v.name}=...`,
      );
  }
  const variants = variantsOf({ set, vary, env: io.env });
  const settings = variants[0]!.settings;
  const slotMs = historySlotMs(variants.map((v) => v.settings));
  const log: LogFn = (level, message) => {
    if (level !== 'info') io.stderr(`${level}: ${message}\n`); // --quiet hides progress, never a warning
  };
  const tls = io.tlsCa !== undefined ? { tlsCa: io.tlsCa } : {};
  const { source, geo } = openAzureHistory(settings, io.env, log, { ...tls, slotMs });
  const geoProviders = new Map([[JSON.stringify(GEO_SETTINGS.map((n) => settings[n])), geo]]);
  const { startMs, endMs } = historyPeriod(days, (io.clock ?? Date.now)(), settings.UC_TICK_INTERVAL);
  if (!quiet)
    io.stderr(
      `reading ${days} day(s) of AzureActivity, ${iso(startMs)} to ${iso(endMs)}, from Log Analytics ` +
        `workspace ${settings.UC_WORKSPACE_ID} in ${slotMs / 60_000}-minute slots\n`,
    );
  let queries = 0;
  const counted: EventSource = {
    read: async (s, e) => {
      try {
        return await source.read(s, e);
      } finally {
        queries += source.lastRead.queries;
      }
    },
  };
  const tty = io.isTty === true;
  const heapLimit = getHeapStatistics().heap_size_limit;
  const heapAtStart = process.memoryUsage().heapUsed;
  let warnedMemory = false;
  const download = await downloadHistory(counted, {
    startMs,
    endMs,
    slotMs,
    onProgress: (p) => {
      // The period is held in memory: say early when it will not fit, rather than fail an hour later.
      const warning = warnedMemory
        ? undefined
        : memoryWarning({ ...p, heapAtStart, heapNow: process.memoryUsage().heapUsed, heapLimit });
      if (warning !== undefined) {
        warnedMemory = true;
        io.stderr(`warning: ${warning}\n`);
      }
      if (quiet) return;
      const text = `read ${p.windowsDone}/${p.windowsTotal} day(s), up to ${iso(p.doneUntilMs)}: ${p.events.toLocaleString('en-US')} events in ${p.groups.toLocaleString('en-US')} groups, ${queries} queries`;
      if (tty) io.stderr(`\r${text}\x1b[K${p.windowsDone === p.windowsTotal ? '\n' : ''}`);
      else io.stderr(`${text}\n`);
    },
  });
  return {
    history: {
      download,
      source: {
        workspace: settings.UC_WORKSPACE_ID,
        additionalWorkspaces: [...settings.UC_ADDITIONAL_WORKSPACE_IDS],
        days,
        queries,
        groups: download.events.groups,
        slotMinutes: slotMs / 60_000,
        seconds: Math.round(download.seconds * 10) / 10,
      },
    },
    // Each variant's own GeoIP settings (UC_NO_CITY_MODE, UC_EGRESS_RANGES …) over the detector's database.
    openGeo: async (s) => {
      // One database load per distinct GeoIP configuration: variants of scoring settings share the first.
      const key = JSON.stringify(GEO_SETTINGS.map((n) => s[n]));
      let provider = geoProviders.get(key);
      if (provider === undefined) {
        provider = openAzureHistory(s, io.env, log, { ...tls, slotMs }).geo;
        geoProviders.set(key, provider);
      }
      const db = await provider.current(() => undefined);
      return db.stale
        ? {
            geo: db.geo,
            warning: `GeoIP database ${db.source} was built ${db.buildDate.toISOString().slice(0, 10)} (${db.ageDays} days ago, older than UC_GEOIP_MAX_AGE_DAYS)`,
          }
        : { geo: db.geo };
    },
  };
}

/**
 * Where the alerts go: `--alerts FILE.jsonl` (the current threshold's, as replay writes and evaluate reads them)
 * and `--alerts-dir DIR` (one file per threshold). `--alerts` given a folder, or a name not ending in .jsonl,
 * keeps its first meaning (the folder), with a note.
 */
async function alertsTargets(
  alerts: string | undefined,
  dir: string | undefined,
  inputs: readonly string[],
  io: BacktestIo,
): Promise<{ file?: string; dir?: string }> {
  if (alerts === undefined) return dir !== undefined ? { dir } : {};
  const isFolder = (await stat(alerts).catch(() => undefined))?.isDirectory() === true;
  if (isFolder || !/\.jsonl$/i.test(alerts)) {
    if (dir !== undefined)
      throw new UsageError('give the folder once: --alerts-dir DIR (--alerts takes a .jsonl file)');
    io.stderr(
      `note: --alerts ${alerts} is a folder: the alerts of each threshold go to ${join(alerts, 'alerts-<threshold>.jsonl')} ` +
        `(write --alerts-dir ${alerts}; --alerts FILE.jsonl writes the alerts at UC_ALERT_THRESHOLD)\n`,
    );
    return { dir: alerts };
  }
  if (inputs.some((i) => resolve(i) === resolve(alerts)))
    throw new UsageError(`--alerts ${alerts} is an input file: the export would be overwritten`);
  await access(dirname(resolve(alerts)), constants.W_OK).catch(() => {
    throw new CliError(
      `--alerts ${alerts}: cannot write there (missing folder or no permission)`,
      EXIT.cantCreate,
    );
  });
  return { file: alerts, ...(dir !== undefined ? { dir } : {}) };
}

/** `--verdicts FILE`: its verdicts; bad lines are warned about and skipped. */
async function readVerdicts(path: string, io: BacktestIo): Promise<Verdict[]> {
  await checkReadable('--verdicts', path);
  const { verdicts, skipped } = await readVerdictFile(path);
  if (skipped.length > 0) io.stderr(`warning: ${path}: ${describeSkipped(skipped, 'line')}\n`);
  return verdicts;
}

/** `unusual-city backtest`: see BACKTEST_USAGE. */
export async function runBacktestCommand(args: string[], io: BacktestIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout(BACKTEST_USAGE);
    return 0;
  }
  let days: number | undefined;
  if (values.days !== undefined) {
    days = Number(values.days);
    if (!Number.isInteger(days) || days < 1 || days > 730)
      throw new UsageError(
        `--days expects a whole number of days from 1 to 730, got ${JSON.stringify(values.days)}`,
      );
    if (positionals.length > 0)
      throw new UsageError(
        `backtest reads files or --days N from Log Analytics, not both (got ${positionals.length} file(s))`,
      );
  } else if (positionals.length === 0)
    throw new UsageError('backtest needs input files, or --days N to read the period from Log Analytics');
  const thresholds = parseThresholds(values.thresholds);
  const vary = parseVary(values.vary);
  const set = parseSets(values.set);
  let top = 10;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top < 1 || top > 1000)
      throw new UsageError(`--top expects an integer from 1 to 1000, got ${JSON.stringify(values.top)}`);
  }
  const targets = await alertsTargets(values.alerts, values['alerts-dir'], positionals, io);
  const labels = values.labels !== undefined ? await readLabels(values.labels) : undefined;
  const quiet = values.quiet === true;
  const verdicts = values.verdicts !== undefined ? await readVerdicts(values.verdicts, io) : undefined;
  const input = days !== undefined ? await fromLogAnalytics(days, set, vary, io, quiet) : {};

  const { results, decisions } = await runBacktest({
    files: positionals,
    ...input,
    ...(labels !== undefined ? { labels } : {}),
    ...(values.labels !== undefined ? { labelsPath: values.labels } : {}),
    ...(verdicts !== undefined ? { verdicts } : {}),
    thresholds,
    set,
    vary,
    env: io.env,
    top,
    onProgress: progress(quiet, io),
    warn: (m) => io.stderr(`warning: ${m}\n`), // --quiet hides progress, never a warning (a stale GeoIP database)
  });

  const written: string[] = [];
  if (values.json !== undefined) {
    await writeFile(values.json, JSON.stringify(results, null, 2) + '\n');
    written.push(`results: ${values.json}`);
  }
  if (values.report !== undefined) {
    const base = results.variants[0]!;
    const index = base.results.findIndex((r) => r.current);
    const currentAlerts = decisions[Math.max(0, index)]?.alerts.map((a) => a.alert) ?? [];
    const attackOf = (a: Alert): string | undefined => {
      const ids = (labels?.attacks ?? []).filter((at) => matchesAttack(a, at)).map((at) => at.id);
      return ids.length > 0 ? ids.join(', ') : undefined;
    };
    await writeFile(values.report, renderReport(results, currentAlerts, attackOf));
    written.push(`report: ${values.report}`);
  }
  const rows = (alerts: readonly { alert: Alert }[]) =>
    alerts.map((a) => JSON.stringify(toRow(a.alert)) + '\n').join('');
  if (targets.file !== undefined) {
    const index = results.variants[0]!.results.findIndex((r) => r.current);
    await writeFile(targets.file, rows(decisions[Math.max(0, index)]?.alerts ?? []));
    written.push(`alerts at UC_ALERT_THRESHOLD: ${targets.file}`);
  }
  if (targets.dir !== undefined) {
    await mkdir(targets.dir, { recursive: true });
    for (const d of decisions)
      await writeFile(join(targets.dir, `alerts-${d.threshold}.jsonl`), rows(d.alerts));
    written.push(`alerts: ${join(targets.dir, 'alerts-<threshold>.jsonl')}`);
  }
  io.stdout(formatBacktest(results));
  if (written.length > 0) io.stdout(`\nwrote ${written.join(', ')}\n`);
  return 0;
}

/** The command as main.ts registers it. */
export const run = (args: string[]): Promise<number> => runBacktestCommand(args, processIo());
