import type { Settings } from '../config/settings.js';
import { formatClassTable } from '../demo/classes.js';
import { runSuite, type SeedResult } from '../demo/suite/run.js';
import { SUITE_MIN_DAYS } from '../demo/suite/suite.js';
import { UsageError } from './args.js';

export const EVALUATE_HELP = `Usage:
  unusual-city evaluate <file>... --labels labels.json [--alerts alerts.jsonl] [same options as replay]
      Replays a labelled data set (or reads its alerts) and prints detected attacks, false alerts per day and
      time to detect; with classes in the labels (\`class\` on attacks, a \`benign\` array), also the per-class table.
  unusual-city evaluate --suite [--seeds 1,2,3] [--days 28] [--set NAME=VALUE]... [--json] [--out DIR]
      Generates the labelled scenario suite (one tenant per seed: ~36 people in London, Amsterdam, Mumbai and
      New York, automation in Azure regions, benign novelties and one attack of each class), replays each with
      the production pipeline and prints per seed and in total: attacks detected per class, time to detect
      (median, max; from the attacker's first event), false alerts per benign class and per day.
      --json prints the same as JSON on stdout. --out DIR keeps each seed's data set: activity-seed-N.jsonl,
      labels-seed-N.json and alerts-seed-N.jsonl (to replay, evaluate or backtest it yourself).

Examples:
  unusual-city evaluate --suite
  unusual-city evaluate --suite --seeds 4,5 --days 21 --set UC_ALERT_THRESHOLD=45
  unusual-city evaluate --suite --seeds 2 --out .data/suite && \\
    unusual-city backtest .data/suite/activity-seed-2.jsonl --labels .data/suite/labels-seed-2.json
  unusual-city evaluate .data/demo/activity.jsonl --labels .data/demo/labels.json
`;

export function parseSeeds(value: string | undefined): number[] {
  if (value === undefined) return [1, 2, 3];
  const seeds = value.split(',').map((s) => s.trim());
  if (seeds.some((s) => !/^\d{1,9}$/.test(s)))
    throw new UsageError(
      `--seeds expects comma-separated whole numbers such as 1,2,3, got ${JSON.stringify(value)}`,
    );
  return seeds.map(Number);
}

export function parseSuiteDays(value: string | undefined): number {
  if (value === undefined) return 28;
  const days = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(days >= SUITE_MIN_DAYS && days <= 365))
    throw new UsageError(
      `--days expects a whole number of days from ${SUITE_MIN_DAYS} to 365, got ${JSON.stringify(value)}`,
    );
  return days;
}

const seedTitle = (r: SeedResult) =>
  `seed ${r.seed}: ${r.days} days, ${r.rows.toLocaleString('en-US')} Activity Log rows, ${r.people} people, ` +
  `${r.automation} automation and platform identities, ${r.alerts.length} alerts (replayed in ${(r.replayMs / 1000).toFixed(1)} s)`;

/** `evaluate --suite`: the scenario suite's per-class table per seed and in total (or JSON). */
export async function evaluateSuite(
  values: { seeds?: string; days?: string; json?: boolean; out?: string },
  settings: Settings,
  write: (s: string) => void,
): Promise<number> {
  const seeds = parseSeeds(values.seeds);
  const days = parseSuiteDays(values.days);
  const result = await runSuite({
    settings,
    seeds,
    days,
    ...(values.out !== undefined ? { outDir: values.out } : {}),
    ...(values.json
      ? {}
      : { onSeed: (r: SeedResult) => write(formatClassTable(r.report, seedTitle(r)) + '\n') }),
  });
  if (values.json) {
    const seedsOut = result.seeds.map(({ alerts, ...r }) => ({ ...r, alerts: alerts.length }));
    write(JSON.stringify({ seeds: seedsOut, total: result.total }, null, 2) + '\n');
    return 0;
  }
  write(formatClassTable(result.total, `total over seeds ${seeds.join(', ')} (${days} days each)`));
  return 0;
}
