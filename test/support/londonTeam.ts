/**
 * The small warm tenant of the end-to-end tests — a London team deploying in office hours and an admin listing
 * keys every three hours — and the production replay over a list of events into any store.
 */
import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent } from '../../shared/activity/types.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { type AlertSink, MemoryAlertSink } from '../../shared/alerts/sinks.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import type { Settings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { Geolocator } from '../../shared/geo/types.js';
import { replay, type ReplayOptions, type ReplaySummary } from '../../shared/pipeline/replay.js';
import { ev, IP } from './events.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
export const DEPLOY = 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE';
export const LISTKEYS = 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION';

/**
 * `days` days from `from` (default Monday 2026-10-05): every hour from 08:00 to 17:00, dev1 and dev2 deploy from
 * London (two IPs), then `also(hour)`'s events, then — every third hour — admin lists keys from London.
 */
export function londonTeam(
  days: number,
  { from = Date.UTC(2026, 9, 5), also }: { from?: number; also?: (hourMs: number) => ActivityEvent[] } = {},
): ActivityEvent[] {
  const out: ActivityEvent[] = [];
  for (let d = 0; d < days; d++) {
    for (let h = 8; h < 18; h++) {
      const t = from + d * DAY + h * HOUR;
      out.push(
        ev(t + 5 * MIN, DEPLOY, 'dev1@contoso.com', IP.london),
        ev(t + 25 * MIN, DEPLOY, 'dev2@contoso.com', IP.london2),
      );
      if (also) out.push(...also(t));
      if (h % 3 === 0) out.push(ev(t + 40 * MIN, LISTKEYS, 'admin@contoso.com', IP.london));
    }
  }
  return out;
}

/**
 * The production replay of `events` into `store`: alerts go to `sink` (default: one thrown away), places come
 * from `geo` (default: the embedded database, events without a city skipped).
 */
export async function replayInto(
  store: BaselineStore,
  events: readonly ActivityEvent[],
  o: { settings: Settings; sink?: AlertSink; geo?: Geolocator } & Pick<
    ReplayOptions,
    'toMs' | 'suppress' | 'beforeRun' | 'reorderMs'
  >,
): Promise<ReplaySummary> {
  const { settings, sink = new MemoryAlertSink(), geo, ...rest } = o;
  return replay({
    events: (async function* () {
      for (const e of events) yield e;
      await Promise.resolve();
    })(),
    readStats: newReadStats(),
    store,
    geo: geo ?? (await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' })),
    sink,
    settings,
    defaults: alertDefaults(settings),
    ...rest,
  });
}
