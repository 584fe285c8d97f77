import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent, CallerType } from '../../shared/activity/types.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { alertDefaults } from '../../shared/cli/runtime.js';
import { loadSettings, type Settings } from '../../shared/config/settings.js';
import { parseEgressRanges } from '../../shared/geo/egress.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { replay, type ReplaySummary } from '../../shared/pipeline/replay.js';

/** Real IPs the embedded 2019 GeoLite2-City places in these cities. */
export const IP = {
  london: '51.145.99.10',
  london2: '31.221.99.10',
  amsterdam: '5.101.99.10',
  lagos: '41.58.99.10',
  newYork: '24.90.99.10',
  mumbai: '27.4.7.10',
} as const;

let seq = 0;
export function ev(
  timeMs: number,
  operation: string,
  caller: string,
  callerIp: string,
  callerType: CallerType = 'user',
): ActivityEvent {
  seq += 1;
  const id = `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`;
  return {
    timeMs,
    operation,
    operationKey: operation.toLowerCase(),
    caller,
    callerType,
    callerIp,
    category: 'Administrative',
    status: 'Succeeded',
    correlationId: id,
    eventDataId: id,
    subscriptionId: '6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d',
    resourceGroup: 'rg-test',
    resourceId: `/subscriptions/6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d/resourcegroups/rg-test/providers/${operation.toLowerCase()}`,
  };
}

async function* iterate(events: readonly ActivityEvent[]): AsyncGenerator<ActivityEvent> {
  for (const e of events) yield e;
  await Promise.resolve();
}

export interface ReplayResult {
  sink: MemoryAlertSink;
  summary: ReplaySummary;
  store: SqliteStore;
  settings: Settings;
}

/** Runs the production replay over in-memory events with a fresh in-memory store (kept open for inspection). */
export async function replayEvents(
  events: readonly ActivityEvent[],
  overrides: Record<string, string> = {},
  store: SqliteStore = SqliteStore.open(':memory:'),
): Promise<ReplayResult> {
  const settings = loadSettings({}, overrides);
  const geo = await openGeolocator({
    databasePath: embeddedDatabasePath()!,
    noCityMode: settings.UC_NO_CITY_MODE,
    egress: parseEgressRanges(settings.UC_EGRESS_RANGES),
  });
  const sink = new MemoryAlertSink();
  const summary = await replay({
    events: iterate(events),
    readStats: newReadStats(),
    store,
    geo,
    sink,
    settings,
    defaults: alertDefaults(settings),
  });
  return { sink, summary, store, settings };
}
