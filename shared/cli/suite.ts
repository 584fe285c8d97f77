import type { Settings } from '../config/settings.js';
import { formatClassTable } from '../demo/classes.js';
import { type FalseAlertRates, runSuite, type SeedResult } from '../demo/suite/run.js';
import { SUITE_MIN_DAYS } from '../demo/suite/suite.js';
import { describeSkipped, readVerdictFile } from '../ops/verdicts.js';
import type { Verdict } from '../pipeline/verdicts.js';
import { UsageError } from './args.js';
import { checkReadable } from './files.js';

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

export function parseAnalystHours(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const hours = /^\d{1,4}(\.\d{1,2})?$/.test(value) ? Number(value) : NaN;
  if (!(hours >= 0 && hours <= 24 * 30))
    throw new UsageError(
      `--analyst-hours expects a number of hours from 0 to 720 (e.g. 8), got ${JSON.stringify(value)}`,
    );
  return hours;
}

/** `evaluate --suite`: the scenario suite's per-class table per seed and in total (or JSON). */
export async function evaluateSuite(
  values: {
    seeds?: string;
    days?: string;
    json?: boolean;
    out?: string;
    verdicts?: string;
    'analyst-hours'?: string;
  },
  settings: Settings,
  write: (s: string) => void,
): Promise<number> {
  const seeds = parseSeeds(values.seeds);
  const days = parseSuiteDays(values.days);
  const analystHours = parseAnalystHours(values['analyst-hours']);
  let verdicts: Verdict[] = [];
  if (values.verdicts !== undefined) {
    await checkReadable('--verdicts', values.verdicts);
    const file = await readVerdictFile(values.verdicts);
    if (file.skipped.length > 0)
      process.stderr.write(`warning: ${values.verdicts}: ${describeSkipped(file.skipped, 'line')}\n`);
    verdicts = file.verdicts;
  }
  const result = await runSuite({
    settings,
    seeds,
    days,
    verdicts,
    ...(analystHours !== undefined ? { analystHours } : {}),
    ...(values.out !== undefined ? { outDir: values.out } : {}),
    ...(values.json
      ? {}
      : { onSeed: (r: SeedResult) => write(formatClassTable(r.report, seedTitle(r)) + '\n') }),
  });
  if (values.json) {
    const seedsOut = result.seeds.map(({ alerts, withAnalyst, ...r }) => ({
      ...r,
      alerts: alerts.length,
      ...(withAnalyst ? { withAnalyst: { ...withAnalyst, alerts: withAnalyst.alerts.length } } : {}),
    }));
    const { seeds: _seeds, ...totals } = result;
    write(JSON.stringify({ seeds: seedsOut, ...totals }, null, 2) + '\n');
    return 0;
  }
  const over = `seeds ${seeds.join(', ')} (${days} days each)`;
  write(formatClassTable(result.total, `total over ${over}`));
  write(formatRates('without the analyst', result.rates));
  if (result.withAnalyst && analystHours !== undefined) {
    const who = `with the simulated analyst (closing each alert ${analystHours} h after it)`;
    write('\n' + formatClassTable(result.withAnalyst.total, `total over ${over}, ${who}`));
    write(formatRates(who, result.withAnalyst.rates));
  }
  return 0;
}

const formatRates = (what: string, r: FalseAlertRates): string =>
  `false alerts per day ${what}: ${r.perDay.toFixed(2)} overall, ${r.afterFirstWeekPerDay.toFixed(2)} from day 8\n`;
