/**
 * What a detection run is given: the ports the timer and the shard worker use (store, source, GeoIP, outbox,
 * delivery, telemetry, shard queue), built once per process by shared/runtime/azure.ts or by a test.
 */
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator } from '../geo/types.js';
import type { Allowlist } from '../ops/allowlist.js';
import type { EventSource } from '../pipeline/types.js';
import type { RunBudget } from '../run/budget.js';
import type { Clock } from '../run/clock.js';
import type { LogFn } from '../run/log.js';
import type { Telemetry } from './telemetry.js';

/** A shard's message on the queue (JSON, base64-encoded as the Functions queue trigger expects by default). */
export interface ShardMessage {
  v: 1;
  tickMs: number;
  windowStartMs: number;
  windowEndMs: number;
  shard: number;
  shards: number;
}

/** Where shard messages go: the Storage queue in Azure, anything with `send` in tests. */
export interface ShardQueue {
  readonly name: string;
  send(message: ShardMessage): Promise<void>;
}

/** What a detection run needs; built once per process (clients are reused across invocations). */
export interface DetectorDeps {
  settings: Settings;
  store: BaselineStore;
  source: EventSource & { lastRead?: { queries: number; rows: number } };
  geo: {
    current(): Promise<{ geo: Geolocator; source: string; buildDate: Date; ageDays: number; stale: boolean }>;
  };
  /** Durable alert sink (the Table Storage outbox in Azure). */
  outbox: AlertSink & { countPending(): Promise<number> };
  /** Sends pending alerts to the alerts table; failures stay pending for the next run. */
  deliver(budget: RunBudget): Promise<{ delivered: number; failed: number; pending: number }>;
  /** Daily housekeeping (old delivered-alert markers), run by the first run of each UTC day. */
  dailyMaintenance?(): Promise<string>;
  telemetry: Telemetry;
  log: LogFn;
  clock?: Clock;
  /** Allowlists of one run: settings and service tags, and the allow table as it is now. Absent: none. */
  allowlist?: () => Promise<Allowlist>;
  /** UC_SHARDING=queue: where the timer enqueues the shards of each tick (shared/runtime/shards.ts). */
  shardQueue?: ShardQueue;
}
