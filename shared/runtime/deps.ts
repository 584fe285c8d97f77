/**
 * What a detection run is given: the ports the timer and the shard worker use (store, source, GeoIP, outbox,
 * delivery, telemetry, shard queue), built once per process by shared/runtime/azure.ts or by a test.
 */
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import type { Allowlist } from '../ops/allowlist.js';
import type { EventSource } from '../pipeline/types.js';
import type { RunBudget } from '../run/budget.js';
import type { Clock } from '../run/clock.js';
import type { LogFn } from '../run/log.js';
import type { VerdictRead } from '../source/verdicts.js';
import type { Telemetry } from './telemetry.js';

/** A shard's message on the queue (JSON, base64-encoded as the Functions queue trigger expects by default). */
export interface ShardMessage {
  /**
   * The tick's assignment of operations to shards: 2, shardOf (XXH64, filtered by the query too); 1, the ranges
   * of FNV-1a of ticks recorded before it (legacyShardOf). Every shard of a tick uses the tick's assignment, so
   * a tick half done by the previous version is finished with the same one; that version rejects messages of 2.
   */
  v: 1 | 2;
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
    current(): Promise<{
      geo: Geolocator;
      /** The network (ASN) database, when one is configured or embedded. */
      networks?: NetworkLocator;
      source: string;
      buildDate: Date;
      ageDays: number;
      stale: boolean;
    }>;
  };
  /** Durable alert sink (the Table Storage outbox in Azure). */
  outbox: AlertSink & { countPending(): Promise<number>; oldestPendingAgeMs?(): Promise<number> };
  /** Sends pending alerts to the alerts table; failures stay pending for the next run. */
  deliver(budget: RunBudget): Promise<{ delivered: number; failed: number; pending: number }>;
  /** Daily housekeeping (old delivered-alert markers), run by the first run of each UTC day. */
  dailyMaintenance?(): Promise<string>;
  telemetry: Telemetry;
  log: LogFn;
  clock?: Clock;
  /** Allowlists of one run: settings and service tags, and the allow table as it is now. Absent: none. */
  allowlist?: () => Promise<Allowlist>;
  /** The analysts' verdicts in Sentinel (UC_VERDICTS on and UC_VERDICT_RULE_ID set); absent: none are read. */
  verdicts?: { read(nowMs: number): Promise<VerdictRead> };
  /** UC_SHARDING=queue: where the timer enqueues the shards of each tick (shared/runtime/shards.ts). */
  shardQueue?: ShardQueue;
}
