import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { newReadStats, readActivityFiles } from '../../activity/read.js';
import type { Alert } from '../../alerts/alert.js';
import { alertDefaults } from '../../alerts/defaults.js';
import { MemoryAlertSink } from '../../alerts/sinks.js';
import { SqliteStore } from '../../baseline/sqlite.js';
import type { Settings } from '../../config/settings.js';
import { openGeo } from '../../geo/localDatabase.js';
// Upward import: the suite replays exactly as `replay` does, with the settings' allowlists (UC_ALLOW_*), and
// applies verdicts through the allow table as the timer does.
import { addAllowRule, AllowlistProvider } from '../../ops/allowlist.js';
import { replay, type ReplayOptions, type ReplaySummary } from '../../pipeline/replay.js';
import { type Verdict, VerdictFeed, type VerdictStats } from '../../pipeline/verdicts.js';
import { DAY_MS } from '../../scoring/model.js';
import { type ClassReport, classReport, mergeReports } from '../classes.js';
import { evaluateAlerts, type Evaluation, labelsToJson } from '../evaluate.js';
import { writeActivityJsonl } from './activity.js';
import { analystVerdict } from './analyst.js';
import { generateSuiteTenant, type SuiteTenant } from './suite.js';

export interface SuiteOptions {
  settings: Settings;
  seeds: readonly number[];
  days: number;
  /** Keep each seed's data set here (activity, labels, alerts) instead of a temporary directory. */
  outDir?: string;
  /** Called after each seed (progress for a long run). */
  onSeed?: (r: SeedResult) => void;
  /** Verdicts (a `--verdicts` file) applied at their ClosedTime during every seed's runs. */
  verdicts?: readonly Verdict[];
  /**
   * The simulated analyst closes each alert this many hours after it was raised (shared/demo/suite/analyst.ts);
   * each seed is then replayed twice, without and with the analyst. Absent: no analyst.
   */
  analystHours?: number;
}

/** False alerts per day over the whole period and from day 8 on (after the first week). */
export interface FalseAlertRates {
  perDay: number;
  afterFirstWeekPerDay: number;
}

export interface SeedResult {
  seed: number;
  days: number;
  rows: number;
  people: number;
  automation: number;
  alerts: Alert[];
  report: ClassReport;
  rates: FalseAlertRates;
  /** Verdicts applied during the replay (file and analyst). */
  verdicts?: VerdictStats;
  replayMs: number;
  /** The same seed with the simulated analyst (SuiteOptions.analystHours). */
  withAnalyst?: Omit<SeedResult, 'withAnalyst'>;
}

export interface SuiteResult {
  seeds: SeedResult[];
  total: ClassReport;
  rates: FalseAlertRates;
  /** With the simulated analyst: the per-class total and the rates. */
  withAnalyst?: { total: ClassReport; rates: FalseAlertRates };
}

/** Replays one tenant exactly as `replay` would (JSON Lines export, production pipeline, settings' allowlists). */
async function replayTenant(
  t: SuiteTenant,
  settings: Settings,
  file: string,
  feedback: { verdicts: readonly Verdict[]; analystHours?: number },
): Promise<{ alerts: Alert[]; summary: ReplaySummary; verdicts?: VerdictStats }> {
  const { geo, networks } = await openGeo(settings);
  const store = SqliteStore.open(':memory:');
  const sink = new MemoryAlertSink();
  const stats = newReadStats();
  try {
    const provider = await AllowlistProvider.fromSettings(settings);
    const allowlist = await provider.forRun(store);
    const feed = verdictFeed(store, settings, feedback);
    let seen = 0;
    let incident = 0;
    const beforeRun: ReplayOptions['beforeRun'] = async (tickMs) => {
      // The analyst's verdicts on the alerts raised so far, due `analystHours` after each.
      if (feedback.analystHours !== undefined)
        for (; seen < sink.alerts.length; seen++)
          feed!.add([analystVerdict(sink.alerts[seen]!, t.labels, feedback.analystHours, ++incident)]);
      if (!(await feed!.due(tickMs))) return undefined;
      const now = await provider.forRun(store);
      return { suppress: now.suppress };
    };
    const summary = await replay({
      events: readActivityFiles([file], stats),
      readStats: stats,
      store,
      geo,
      ...(networks ? { networks } : {}),
      sink,
      settings,
      defaults: alertDefaults(settings),
      ...(allowlist.size > 0 ? { suppress: allowlist.suppress } : {}),
      ...(feed ? { beforeRun } : {}),
    });
    return { alerts: sink.alerts, summary, ...(feed ? { verdicts: feed.stats } : {}) };
  } finally {
    await store.close();
  }
}

/** The verdicts of a replay (a file, the analyst), applied as the timer applies them; undefined: none. */
function verdictFeed(
  store: SqliteStore,
  settings: Settings,
  feedback: { verdicts: readonly Verdict[]; analystHours?: number },
): VerdictFeed | undefined {
  if (feedback.verdicts.length === 0 && feedback.analystHours === undefined) return undefined;
  const policy = {
    allowNetwork: settings.UC_VERDICT_ALLOW_NETWORK,
    allowCityNetwork: settings.UC_VERDICT_ALLOW_CITY_NETWORK,
    allowDays: settings.UC_VERDICT_ALLOW_DAYS,
    allow: (rule: Parameters<typeof addAllowRule>[1], change: Parameters<typeof addAllowRule>[2]) =>
      addAllowRule(store, rule, change),
  };
  return new VerdictFeed(store, policy, feedback.verdicts);
}

/** False alerts per day, overall and from day 8 on (alerts raised in the first week left out). */
function falseAlertRates(e: Evaluation, t: SuiteTenant): FalseAlertRates {
  const weekEnd = t.labels.startMs + 7 * DAY_MS;
  const later = e.falseAlerts.filter((a) => Date.parse(a.TimeGenerated) >= weekEnd).length;
  const laterDays = Math.max(1, (t.labels.endMs - weekEnd) / DAY_MS);
  return { perDay: e.falseAlertsPerDay, afterFirstWeekPerDay: later / laterDays };
}

/** Rates over several seeds: false alerts over days, pooled. */
function pooledRates(seeds: readonly Omit<SeedResult, 'withAnalyst'>[]): FalseAlertRates {
  const days = seeds.reduce((n, s) => n + s.days, 0);
  const laterDays = seeds.reduce((n, s) => n + Math.max(1, s.days - 7), 0);
  const total = seeds.reduce((n, s) => n + s.rates.perDay * s.days, 0);
  const later = seeds.reduce((n, s) => n + s.rates.afterFirstWeekPerDay * Math.max(1, s.days - 7), 0);
  return { perDay: total / Math.max(1, days), afterFirstWeekPerDay: later / Math.max(1, laterDays) };
}

/** A seed's data set as `replay`/`evaluate`/`backtest` read it: activity, labels and the alerts of this run. */
async function keep(dir: string, t: SuiteTenant, alerts: readonly Alert[]): Promise<void> {
  await writeFile(
    join(dir, `labels-seed-${t.seed}.json`),
    JSON.stringify(labelsToJson(t.labels), null, 2) + '\n',
  );
  await writeFile(
    join(dir, `alerts-seed-${t.seed}.jsonl`),
    alerts.map((a) => JSON.stringify(a) + '\n').join(''),
  );
}

/** Generates, replays and evaluates each seed's tenant; returns the per-class reports and their total. */
export async function runSuite(o: SuiteOptions): Promise<SuiteResult> {
  const dir = o.outDir ?? (await mkdtemp(join(tmpdir(), 'unusual-city-suite-')));
  if (o.outDir !== undefined) await mkdir(o.outDir, { recursive: true });
  const seeds: SeedResult[] = [];
  try {
    for (const seed of o.seeds) {
      const t = generateSuiteTenant(seed, o.days);
      const file = join(dir, `activity-seed-${seed}.jsonl`);
      await writeActivityJsonl(t.events, t.tokenIps, file);
      const r = await runSeed(t, o, file, { verdicts: o.verdicts ?? [] });
      if (o.outDir !== undefined) await keep(dir, t, r.alerts);
      if (o.analystHours !== undefined) {
        const feedback = { verdicts: o.verdicts ?? [], analystHours: o.analystHours };
        (r as SeedResult).withAnalyst = await runSeed(t, o, file, feedback);
      }
      if (o.outDir === undefined) await rm(file, { force: true });
      seeds.push(r);
      o.onSeed?.(r);
    }
  } finally {
    if (o.outDir === undefined) await rm(dir, { recursive: true, force: true });
  }
  const analysed = seeds.flatMap((s) => (s.withAnalyst ? [s.withAnalyst] : []));
  return {
    seeds,
    total: mergeReports(seeds.map((s) => s.report)),
    rates: pooledRates(seeds),
    ...(o.analystHours !== undefined
      ? {
          withAnalyst: {
            total: mergeReports(analysed.map((s) => s.report)),
            rates: pooledRates(analysed),
          },
        }
      : {}),
  };
}

/** One replay of a seed's tenant and its evaluation. */
async function runSeed(
  t: SuiteTenant,
  o: SuiteOptions,
  file: string,
  feedback: { verdicts: readonly Verdict[]; analystHours?: number },
): Promise<Omit<SeedResult, 'withAnalyst'>> {
  const started = Date.now();
  const { alerts, verdicts } = await replayTenant(t, o.settings, file, feedback);
  const e = evaluateAlerts(alerts, t.labels, t.labels.startMs, t.labels.endMs);
  return {
    seed: t.seed,
    days: t.days,
    rows: t.events.length,
    people: t.people,
    automation: t.automation,
    alerts,
    report: classReport(e, t.labels),
    rates: falseAlertRates(e, t),
    ...(verdicts ? { verdicts } : {}),
    replayMs: Date.now() - started,
  };
}
