import type { Settings } from '../config/settings.js';
import { formatClassTable } from '../demo/classes.js';
import { runSuite, type SeedResult } from '../demo/suite/run.js';
import { SUITE_MIN_DAYS } from '../demo/suite/suite.js';
import { UsageError } from './args.js';

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
