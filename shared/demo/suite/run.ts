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
// Upward import: the suite replays exactly as `replay` does, with the settings' allowlists (UC_ALLOW_*).
import { AllowlistProvider } from '../../ops/allowlist.js';
import { replay, type ReplaySummary } from '../../pipeline/replay.js';
import { type ClassReport, classReport, mergeReports } from '../classes.js';
import { evaluateAlerts, labelsToJson } from '../evaluate.js';
import { writeActivityJsonl } from './activity.js';
import { generateSuiteTenant, type SuiteTenant } from './suite.js';

export interface SuiteOptions {
  settings: Settings;
  seeds: readonly number[];
  days: number;
  /** Keep each seed's data set here (activity, labels, alerts) instead of a temporary directory. */
  outDir?: string;
  /** Called after each seed (progress for a long run). */
  onSeed?: (r: SeedResult) => void;
}

export interface SeedResult {
  seed: number;
  days: number;
  rows: number;
  people: number;
  automation: number;
  alerts: Alert[];
  report: ClassReport;
  replayMs: number;
}

export interface SuiteResult {
  seeds: SeedResult[];
  total: ClassReport;
}

/** Replays one tenant exactly as `replay` would (JSON Lines export, production pipeline, settings' allowlists). */
async function replayTenant(
  t: SuiteTenant,
  settings: Settings,
  file: string,
): Promise<{ alerts: Alert[]; summary: ReplaySummary }> {
  await writeActivityJsonl(t.events, t.tokenIps, file);
  const { geo, networks } = await openGeo(settings);
  const store = SqliteStore.open(':memory:');
  const sink = new MemoryAlertSink();
  const stats = newReadStats();
  try {
    const allowlist = await (await AllowlistProvider.fromSettings(settings)).forRun(store);
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
    });
    return { alerts: sink.alerts, summary };
  } finally {
    await store.close();
  }
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
      const started = Date.now();
      const file = join(dir, `activity-seed-${seed}.jsonl`);
      const { alerts } = await replayTenant(t, o.settings, file);
      if (o.outDir !== undefined) await keep(dir, t, alerts);
      else await rm(file, { force: true });
      const e = evaluateAlerts(alerts, t.labels, t.labels.startMs, t.labels.endMs);
      const r: SeedResult = {
        seed,
        days: t.days,
        rows: t.events.length,
        people: t.people,
        automation: t.automation,
        alerts,
        report: classReport(e, t.labels),
        replayMs: Date.now() - started,
      };
      seeds.push(r);
      o.onSeed?.(r);
    }
  } finally {
    if (o.outDir === undefined) await rm(dir, { recursive: true, force: true });
  }
  return { seeds, total: mergeReports(seeds.map((s) => s.report)) };
}
