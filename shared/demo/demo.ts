import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeJsonLines } from '../activity/formats.js';
import { newReadStats, readActivityFiles } from '../activity/read.js';
import type { Alert } from '../alerts/alert.js';
import { alertDefaults } from '../alerts/defaults.js';
import { formatAlertTable, JsonlAlertSink, MemoryAlertSink } from '../alerts/sinks.js';
import { SqliteStore } from '../baseline/sqlite.js';
import type { Settings } from '../config/settings.js';
import { openGeo } from '../geo/localDatabase.js';
import { replay, type ReplayProgress, type ReplaySummary } from '../pipeline/replay.js';
import { evaluateAlerts, type Evaluation, formatEvaluation, labelsToJson } from './evaluate.js';
import { generateTenant } from './tenant.js';

export interface DemoOptions {
  settings: Settings;
  outDir: string;
  days?: number;
  quiet?: boolean;
  write: (text: string) => void;
  progress?: (p: ReplayProgress) => void;
}

export interface DemoResult {
  alerts: Alert[];
  evaluation: Evaluation;
  summary: ReplaySummary;
  files: { activity: string; labels: string; alerts: string };
}

/** Generates the demo tenant, writes it as an export would be, replays it with the production pipeline. */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const { geo, networks, warning } = await openGeo(o.settings);
  const data = generateTenant(o.days ?? 42);
  await mkdir(o.outDir, { recursive: true });
  const activity = join(o.outDir, 'activity.jsonl');
  const labelsPath = join(o.outDir, 'labels.json');
  const alertsPath = join(o.outDir, 'alerts.jsonl');
  o.write(
    `unusual-city demo: tenant "Contoso", ${data.days} days from ${new Date(data.labels.startMs).toISOString().slice(0, 10)}, ` +
      `${data.people} people in London, Amsterdam and Mumbai (office hours, home broadband, a Frankfurt VPN, a Friday ` +
      `commuter to Paris, a week in New York, a new hire in Manchester), ${data.servicePrincipals} service principals and ` +
      `managed identities in Azure regions, and ${data.labels.attacks.length} labelled credential-abuse scenarios.\n`,
  );
  if (warning && !o.quiet) o.write(`note: ${warning}\n`);
  await writeJsonLines(data.events, activity);
  await writeFile(labelsPath, JSON.stringify(labelsToJson(data.labels), null, 2) + '\n');
  o.write(
    `wrote ${data.events.length.toLocaleString('en-US')} Activity Log rows to ${activity} and labels to ${labelsPath}\n`,
  );

  // A fresh run each time: the demo is a replay from an empty state.
  await rm(alertsPath, { force: true });
  const file = await JsonlAlertSink.open(alertsPath);
  const memory = new MemoryAlertSink();
  const store = SqliteStore.open(':memory:');
  const stats = newReadStats();
  let summary: ReplaySummary;
  try {
    summary = await replay({
      events: readActivityFiles([activity], stats),
      readStats: stats,
      store,
      geo,
      ...(networks ? { networks } : {}),
      sink: { write: async (alerts) => (await file.write(alerts), await memory.write(alerts)) },
      settings: o.settings,
      defaults: alertDefaults(o.settings),
      ...(o.progress ? { onProgress: o.progress } : {}),
    });
  } finally {
    await store.close();
  }
  const evaluation = evaluateAlerts(memory.alerts, data.labels, data.labels.startMs, data.labels.endMs);
  o.write(`\nAlerts (${memory.alerts.length}), each with its explanation:\n`);
  o.write(formatAlertTable(memory.alerts));
  o.write(formatEvaluation(evaluation));
  const secs = (summary.readMs + summary.detectMs) / 1000;
  o.write(
    `\nreplayed ${summary.read.records.toLocaleString('en-US')} events in ${secs.toFixed(1)} s ` +
      `(${Math.round(summary.read.records / Math.max(secs, 1e-9)).toLocaleString('en-US')} events/s), ` +
      `${summary.ticks.toLocaleString('en-US')} timer runs of ${o.settings.UC_TICK_INTERVAL / 60_000} min over ` +
      `${o.settings.UC_LOOKBACK / 3_600_000} h windows; internal IPs ${summary.internalEvents.toLocaleString('en-US')} events.\n` +
      `alerts written to ${alertsPath}. Replay the same data yourself:\n` +
      `  npm exec --no -- unusual-city replay ${activity} --out alerts.jsonl\n` +
      `  npm exec --no -- unusual-city evaluate ${activity} --labels ${labelsPath}\n`,
  );
  return {
    alerts: memory.alerts,
    evaluation,
    summary,
    files: { activity, labels: labelsPath, alerts: alertsPath },
  };
}
