import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import type { Alert } from '../alerts/alert.js';
import { toRow } from '../alerts/sinks.js';
import { formatBacktest } from '../backtest/format.js';
import { renderReport } from '../backtest/report.js';
import { runBacktest, type VaryOption } from '../backtest/run.js';
import { matchesAttack, readLabels } from '../demo/evaluate.js';
import type { ReplayProgress } from '../pipeline/replay.js';
import { parseSets, UsageError } from './args.js';

export const BACKTEST_USAGE = `Usage:
  unusual-city backtest <file>... [--labels labels.json] [--thresholds 30,40,50,60,70]
                        [--vary NAME=v1,v2,...]... [--set NAME=VALUE]... [--report report.html]
                        [--json results.json] [--alerts DIR] [--top N] [--quiet]

  Replays the files ONCE with the production pipeline, recording every rare finding, then decides the
  alerts again for each threshold (the configured UC_ALERT_THRESHOLD is always included) and reports alerts
  per day, distinct callers, operations and places alerted, the noisiest (operation, place) pairs with the
  one setting that would silence each, and with --labels detected attacks and false alerts per day.

  --thresholds LIST   comma-separated scores 0-100 (default 30,40,50,60,70); free: no extra replay.
  --vary NAME=v1,v2   try each value of one setting, one change at a time from the current settings.
                      Each value NEEDS ITS OWN REPLAY of the files, except settings only the alert
                      decision reads (UC_ALERT_COOLDOWN, UC_RESCORE_MARGIN, UC_DAILY_ALERT_CAP) and the
                      allowlists (UC_ALLOW_*, UC_SERVICE_TAGS_FILE): those re-use the first replay.
                      Separate values with "|" instead when a value contains commas. Repeatable.
  --set NAME=VALUE    a setting for every run (as replay). Repeatable.
  --labels FILE       labelled attacks (the file evaluate and demo use) for detection numbers.
  --report FILE       a self-contained HTML report (charts, map, tables; opens offline).
  --json FILE         every number as JSON.
  --alerts DIR        DIR/alerts-<threshold>.jsonl: the alerts at each threshold (current settings),
                      line for line what replay --set UC_ALERT_THRESHOLD=<threshold> writes.
  --top N             noisy pairs listed per threshold (default 10).
`;

const options = {
  labels: { type: 'string' },
  thresholds: { type: 'string' },
  vary: { type: 'string', multiple: true },
  set: { type: 'string', multiple: true },
  report: { type: 'string' },
  json: { type: 'string' },
  alerts: { type: 'string' },
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

function progress(quiet: boolean) {
  const tty = process.stderr.isTTY;
  return (r: { index: number; count: number; variant: string }, p: ReplayProgress) => {
    if (quiet || p.phase !== 'detecting') return;
    const text = `replay ${r.index}/${r.count} (${r.variant}): run ${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} (${Math.round((100 * p.done) / Math.max(1, p.total))}%)`;
    if (tty) process.stderr.write(`\r${text}\x1b[K${p.done === p.total ? '\n' : ''}`);
    else if (p.done === p.total || p.done % (96 * 7) === 0) process.stderr.write(`${text}\n`);
  };
}

/** `unusual-city backtest`: see BACKTEST_USAGE. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (values.help) {
    process.stdout.write(BACKTEST_USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('backtest needs at least one input file');
  const thresholds = parseThresholds(values.thresholds);
  const vary = parseVary(values.vary);
  const set = parseSets(values.set);
  let top = 10;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top < 1 || top > 1000)
      throw new UsageError(`--top expects an integer from 1 to 1000, got ${JSON.stringify(values.top)}`);
  }
  const labels = values.labels !== undefined ? await readLabels(values.labels) : undefined;
  const quiet = values.quiet === true;

  const { results, decisions } = await runBacktest({
    files: positionals,
    ...(labels !== undefined ? { labels } : {}),
    ...(values.labels !== undefined ? { labelsPath: values.labels } : {}),
    thresholds,
    set,
    vary,
    env: process.env,
    top,
    onProgress: progress(quiet),
    warn: (m) => {
      if (!quiet) process.stderr.write(`warning: ${m}\n`);
    },
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
  if (values.alerts !== undefined) {
    await mkdir(values.alerts, { recursive: true });
    for (const d of decisions) {
      const path = join(values.alerts, `alerts-${d.threshold}.jsonl`);
      await writeFile(path, d.alerts.map((a) => JSON.stringify(toRow(a.alert)) + '\n').join(''));
    }
    written.push(`alerts: ${join(values.alerts, 'alerts-<threshold>.jsonl')}`);
  }
  process.stdout.write(formatBacktest(results));
  if (written.length > 0) process.stdout.write(`\nwrote ${written.join(', ')}\n`);
  return 0;
}
