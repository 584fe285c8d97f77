/**
 * The soak's "hostile values" round (issue 14): the ten-hour window of test/support/faults.ts with values an
 * attacker controls mixed in, under the same background faults as every round:
 * - mallory, who used 60 operation names of ~500 characters of `"` and `\` from London (24 hours of history),
 *   uses them from Lagos (the names that once overflowed the ledger's 32K-character property);
 * - trudy, who used 1,000 operations from London (24 hours of history), uses all of them from Mumbai in one slot
 *   (the alert that was once 1.1 MB);
 * - a caller and an operation name with bidirectional-override and other format characters;
 * - a record whose claims nest 5,000 arrays deep;
 * - records with numeric (epoch-millisecond) and old timestamps (1970, 2001).
 * What must hold: every run completes (or fails only for an injected fault and is redone), the checkpoint
 * reaches the end, every other caller gets exactly the clean run's alerts, no alert row exceeds 64 KB, and each
 * AlertId is delivered once.
 */
import { toActivityRow } from '../../shared/activity/formats.js';
import { newReadStats } from '../../shared/activity/read.js';
import type { ActivityEvent, CallerType } from '../../shared/activity/types.js';
import { alertDefaults } from '../../shared/alerts/defaults.js';
import { MemoryAlertSink } from '../../shared/alerts/sinks.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { TABLE_NAMES } from '../../shared/baseline/store.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { replay } from '../../shared/pipeline/replay.js';
import {
  CITY_IPS,
  DAY,
  HISTORY_START,
  HOUR,
  type InvocationLog,
  MIN,
  OPS,
  type World,
} from '../support/faults.js';

export const LONG_OPERATIONS = Array.from({ length: 60 }, (_, i) => `MICROSOFT.X/${i}/${'"\\'.repeat(245)}`);
export const MANY_OPERATIONS = Array.from({ length: 1000 }, (_, i) => `MICROSOFT.Y/OP${i}/WRITE`);
const LONG_CALLER = 'mallory@contoso.com';
const MANY_CALLER = 'trudy@contoso.com';
const BIDI_CALLER = 'eve\u202emoc.liam\u202c\u200b\u2066@contoso.com';
const BIDI_OPERATION = 'MICROSOFT.RESOURCES/\u202eETIRW/STNEMYOLPED\u202c\u200d/WRITE';
const NEST_CALLER = 'nest@contoso.com';
/**
 * The operation of the one-off hostile records (bidi, numeric time): one nobody else uses, since another caller's
 * operation from a new city rightly changes how rare that city is for the operation (a model effect, not a value
 * breaking anything: with listKeys from Córdoba, dev's New York alert led with listKeys, another AlertId).
 */
const OWN_OPERATION = 'MICROSOFT.HOSTILE/VALUES/ACTION';
const NUMERIC_CALLER = 'numeric@contoso.com';
const OLD_CALLER = 'old@contoso.com';
/** The callers of the hostile values: every other caller must get exactly the clean run's alerts. */
export const HOSTILE_CALLERS = new Set([
  LONG_CALLER,
  MANY_CALLER,
  BIDI_CALLER,
  NEST_CALLER,
  NUMERIC_CALLER,
  OLD_CALLER,
]);
const SUBSCRIPTION = '6f1c2a9e-3b7d-4e21-9c58-0d4f7a1b2c3d';
/**
 * Where the hostile callers act. mallory and trudy come from cities no one else in the window uses (the embedded
 * GeoIP database places these addresses in Tokyo and Johannesburg); they are alerted, so their cities are
 * quarantined out of the tenant's counts. The one-off records (bidi, nesting, numeric and old times) come from
 * London, the tenant's home. Found while building this round: a caller who is *not* alerted bringing a city new to
 * the tenant (Buenos Aires, Córdoba) changes the tenant's city counts, and with them which of dev's two findings
 * (score 100 each after the cap) leads his New York alert — the same episode under another AlertId. That is the
 * model reading new data (a genuinely new city in the tenant), not a value breaking anything, but it would make
 * "everyone else gets exactly the clean run's AlertIds" depend on where the values came from rather than on what
 * they are.
 */
const PLACES = {
  tokyo: '133.242.99.10',
  johannesburg: '41.0.99.10',
} as const;

let n = 0;
function event(
  timeMs: number,
  operation: string,
  caller: string,
  ip: string,
  type: CallerType = 'user',
): ActivityEvent {
  const id = `00000000-0000-4000-9000-${(++n).toString(16).padStart(12, '0')}`;
  return {
    timeMs: Math.round(timeMs),
    operation,
    operationKey: operation.toLowerCase(),
    caller,
    callerType: type,
    callerIp: ip,
    category: 'Administrative',
    status: 'Succeeded',
    correlationId: id,
    eventDataId: id,
    subscriptionId: SUBSCRIPTION,
    resourceGroup: 'rg-prod',
    resourceId: `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg-prod/providers/${operation.toLowerCase()}`,
  };
}

/** 24 hours of history (three working hours on eight weekdays) in which mallory and trudy use their operations from London. */
export function hostileHistory(): ActivityEvent[] {
  const out: ActivityEvent[] = [];
  for (const day of [0, 1, 2, 3, 7, 8, 9, 10]) {
    for (const hour of [10, 11, 12]) {
      const t = HISTORY_START + day * DAY + hour * HOUR + 7 * MIN;
      LONG_OPERATIONS.forEach((op, i) => out.push(event(t + i * 1_000, op, LONG_CALLER, CITY_IPS.london[1])));
      MANY_OPERATIONS.forEach((op, i) => out.push(event(t + i * 100, op, MANY_CALLER, CITY_IPS.london[2])));
    }
  }
  return out;
}

/** A claims object nested `depth` arrays deep (built iteratively: no recursion). */
function deepClaims(depth: number): unknown {
  let v: unknown = ['deep'];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** The hostile rows of the window, as Log Analytics holds them. */
export function hostileWindowRows(windowStartMs: number): Record<string, unknown>[] {
  const at = (h: number, m: number) => windowStartMs + h * HOUR + m * MIN;
  const rows: Record<string, unknown>[] = [];
  LONG_OPERATIONS.forEach((op, i) =>
    rows.push(toActivityRow(event(at(4, 5) + i * 1_000, op, LONG_CALLER, PLACES.tokyo))),
  );
  MANY_OPERATIONS.forEach((op, i) =>
    rows.push(toActivityRow(event(at(5, 2) + i * 100, op, MANY_CALLER, PLACES.johannesburg))),
  );
  rows.push(toActivityRow(event(at(2, 10), BIDI_OPERATION, BIDI_CALLER, CITY_IPS.london[0])));
  rows.push(toActivityRow(event(at(2, 12), OWN_OPERATION, BIDI_CALLER, CITY_IPS.london[1])));
  const nested = toActivityRow(event(at(3, 3), OPS.deploy, NEST_CALLER, CITY_IPS.london[3]));
  nested.Claims_d = { ...(nested.Claims_d as Record<string, unknown>), deep: deepClaims(5_000) };
  rows.push(nested);
  const numeric = toActivityRow(event(at(6, 7), OWN_OPERATION, NUMERIC_CALLER, CITY_IPS.london[2]));
  numeric.TimeGenerated = at(6, 7);
  numeric.EventSubmissionTimestamp = at(6, 7);
  rows.push(numeric);
  for (const old of [0, Date.UTC(2001, 0, 1)]) {
    const row = toActivityRow(event(old, OWN_OPERATION, OLD_CALLER, CITY_IPS.london[0]));
    row.TimeGenerated = old === 0 ? 0 : new Date(old).toISOString();
    rows.push(row);
  }
  return rows;
}

/** The warm baseline with the hostile history: the world's history and hostileHistory() replayed, copied to `prefix`. */
export async function seedHostile(world: World, prefix: string): Promise<void> {
  const warm = SqliteStore.open(':memory:');
  const hourly = loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' });
  const history = [
    ...world.data.events.filter((e) => e.timeMs < world.data.windowStartMs),
    ...hostileHistory(),
  ];
  history.sort((a, b) => a.timeMs - b.timeMs || a.eventDataId.localeCompare(b.eventDataId));
  await replay({
    events: (async function* () {
      for (const e of history) yield e;
      await Promise.resolve();
    })(),
    readStats: newReadStats(),
    store: warm,
    geo: await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' }),
    sink: new MemoryAlertSink(),
    settings: hourly,
    defaults: alertDefaults(hourly),
    toMs: world.data.windowStartMs,
  });
  const target = await world.store(prefix);
  for (const table of TABLE_NAMES) {
    for (const partition of await warm.listPartitions(table)) {
      const rows = await warm.readPartition(table, partition);
      await target.updatePartition(table, partition, () => new Map(rows));
    }
  }
}

export interface HostileCheck {
  /** Distinct alerts of the other callers, and how they compare with the clean run. */
  others: number;
  lost: string[];
  extra: string[];
  /** Rows received in total minus distinct AlertIds. */
  duplicates: number;
  hostileAlerts: number;
  hostileCallersAlerted: string[];
  maxRowBytes: number;
  rowsRejected: number;
  /** Runs that failed as a value would make them fail (see STOPPED_BY_A_VALUE). */
  hostileFailures: string[];
  /** The other callers' alerts the clean run did not raise: `caller @ city, country: operation at time`. */
  extraRows: string[];
  /** Every distinct error of a failed run (injected faults included), cut to 120 characters. */
  errors: string[];
}

/**
 * What a failed run would say if a value stopped it: a row the store refused, a request too large, a reader out
 * of stack or memory. (Runs also fail on purpose, for the background faults; the next run redoes them.)
 */
const STOPPED_BY_A_VALUE =
  /InvalidEntity|cannot store|too large|TooLarge|PropertyValue|\b413\b|call stack|heap|nest(ed|ing)|depth/i;

/** The round's checks, from what the ingestion service received and the runs' reports. */
export function checkHostile(
  world: World,
  referenceIds: readonly string[],
  runs: readonly InvocationLog[],
): HostileCheck {
  const received = world.ingestion.received;
  const ids = received.map((r) => String(r.AlertId));
  const others = new Set(
    received.filter((r) => !HOSTILE_CALLERS.has(String(r.Caller))).map((r) => String(r.AlertId)),
  );
  const hostile = received.filter((r) => HOSTILE_CALLERS.has(String(r.Caller)));
  const ref = new Set(referenceIds);
  return {
    others: others.size,
    lost: referenceIds.filter((id) => !others.has(id)),
    extra: [...others].filter((id) => !ref.has(id)),
    duplicates: ids.length - new Set(ids).size,
    hostileAlerts: new Set(hostile.map((r) => String(r.AlertId))).size,
    hostileCallersAlerted: [...new Set(hostile.map((r) => String(r.Caller)))].sort(),
    maxRowBytes: Math.max(0, ...received.map((r) => Buffer.byteLength(JSON.stringify(r)))),
    rowsRejected: runs.reduce((sum, r) => sum + (r.report?.rowsRejected ?? 0), 0),
    hostileFailures: runs.flatMap((r) =>
      r.error !== undefined && STOPPED_BY_A_VALUE.test(r.error) ? [r.error] : [],
    ),
    extraRows: received
      .filter((r) => !HOSTILE_CALLERS.has(String(r.Caller)) && !ref.has(String(r.AlertId)))
      .map(
        (r) =>
          `${String(r.Caller)} @ ${String(r.SrcGeoCity)}, ${String(r.SrcGeoCountry)}: ${String(r.Operation)} at ${String(r.TimeGenerated)} (${String(r.AnomalyScore)})`,
      ),
    errors: [...new Set(runs.flatMap((r) => (r.error === undefined ? [] : [r.error.slice(0, 120)])))],
  };
}

/** The round's own condition: nothing lost or added for others, small rows, once each, no run stopped by a value. */
export const hostileOk = (c: HostileCheck): boolean =>
  c.lost.length === 0 &&
  c.extra.length === 0 &&
  c.duplicates === 0 &&
  c.maxRowBytes <= 64 * 1024 &&
  c.hostileFailures.length === 0;
