/**
 * The alert outbox: a durable queue of alerts waiting for delivery to Sentinel, kept in the store's `outbox`
 * table (Table Storage in Azure, SQLite locally).
 *
 * The detector writes alerts here (it is the pipeline's AlertSink) and a delivery step sends them to the Logs
 * Ingestion API afterwards (shared/delivery/ingestion.ts). An alert leaves the queue only once the service has
 * acknowledged it, so an endpoint that is down for hours leaves everything pending and nothing is lost.
 *
 * Layout (partitions of the `outbox` table):
 * - `pending`: one small index row per pending alert, keyed by AlertId: its time, when it was queued, how many
 *   payload rows it has, delivery attempts and the last error. Small so that listing the queue stays cheap.
 * - `payload:<yyyy-mm-dd>` (the day of the alert's TimeGenerated): the alert's JSON row (exactly `toRow`), split
 *   into strings of at most 32K characters, at most {@link CHUNKS_PER_ROW} of them per row, in rows
 *   `<AlertId>#<version>#0`, `…#1`, … Written before the index row, so an index row always has its payload; the
 *   version (unique per write) keeps two writers of the same alert from ever mixing their rows.
 * - `delivered:<yyyy-mm-dd>` (the day of the alert's TimeGenerated): a marker per delivered alert, keyed by
 *   AlertId. A re-run of an old tick hands `write` alerts that were delivered long ago; the marker keeps them from
 *   being queued (and sent) again.
 *
 * Retention: markers must outlive every re-run that can recreate an alert, i.e. be kept longer than the oldest
 * tick the detector may re-run (the checkpoint never moves back more than UC_LOOKBACK; a manual replay of old
 * days is the longest case). {@link AlertOutbox.purge} drops markers (and payload rows orphaned by a crash) of
 * days older than the retention given, 30 days by default; an alert re-created after its marker was purged is
 * delivered again, and the AlertId lets Sentinel queries dedupe it. Pending alerts are never purged, however old.
 *
 * Each step is idempotent and ordered so that a crash anywhere loses nothing: at worst an alert is sent twice
 * (at-least-once delivery; duplicates carry the same AlertId).
 */
import { randomBytes } from 'node:crypto';

import { type Alert } from '../alerts/alert.js';
import { type AlertSink, toRow } from '../alerts/sinks.js';
import { MAX_STRING_LENGTH } from '../baseline/entity.js';
import type { BaselineStore, Entity, Scalar } from '../baseline/store.js';

/** Partition of the pending index. */
export const PENDING_PARTITION = 'pending';
export const payloadPartition = (day: string): string => `payload:${day}`;
export const deliveredPartition = (day: string): string => `delivered:${day}`;

/**
 * Chunk properties (`c0`…) per payload row. 12 strings of 32K characters are ~786 KB by Table Storage's size
 * formula (2 bytes a character), well under its 1 MiB entity limit.
 */
export const CHUNKS_PER_ROW = 12;
/** Stored last errors are cut to this length. */
export const MAX_ERROR_LENGTH = 200;
export const DEFAULT_RETENTION_MS = 30 * 86_400_000;
/**
 * purge() only deletes an orphaned payload row older than this: a write in progress has its payload written and
 * its index row not yet, and must not lose the payload to a concurrent purge.
 */
const ORPHAN_GRACE_MS = 3_600_000;

export interface AlertOutboxOptions {
  /** Clock for queue times and markers (tests). */
  now?: () => number;
}

/** What the outbox knows of one pending alert (for delivery, monitoring and tools). */
export interface PendingInfo {
  id: string;
  timeGenerated: string;
  /** When the alert entered the outbox (epoch ms). */
  queuedAt: number;
  attempts: number;
  /** Short description of the last failure (status and error code only, never alert content). */
  lastError?: string;
  lastAttemptAt?: number;
}

export interface PurgeResult {
  markers: number;
  orphanedPayloadRows: number;
}

/** The index row of a pending alert, as read from the store. */
interface IndexRow {
  id: string;
  time: string;
  timeMs: number;
  day: string;
  queuedAt: number;
  /** Position within the write call that queued it: keeps the write order for alerts of the same time. */
  seq: number;
  /** Version of the payload rows (unique per write call). */
  version: string;
  parts: number;
  attempts: number;
  lastError: string;
  lastAttemptAt: number;
}

export class AlertOutbox implements AlertSink {
  private readonly now: () => number;

  constructor(
    private readonly store: BaselineStore,
    options: AlertOutboxOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Queues the alerts that are neither pending nor delivered. Idempotent by AlertId (a re-run hands it alerts it
   * already holds); the first of several alerts with the same id in one call wins. Durable when it resolves.
   */
  async write(alerts: readonly Alert[]): Promise<void> {
    const unique = new Map<string, { alert: Alert; day: string; timeMs: number }>();
    for (const alert of alerts) {
      if (typeof alert.AlertId !== 'string' || alert.AlertId === '') {
        throw new TypeError('Cannot queue an alert without an AlertId');
      }
      if (unique.has(alert.AlertId)) continue;
      unique.set(alert.AlertId, { alert, ...timeOf(alert) });
    }
    if (unique.size === 0) return;

    const ids = [...unique.keys()];
    const queued = await this.store.readRows('outbox', PENDING_PARTITION, ids);
    const candidates = [...unique.values()].filter((c) => !queued.has(c.alert.AlertId));
    const fresh: typeof candidates = [];
    for (const [day, group] of groupBy(candidates, (c) => c.day)) {
      const delivered = await this.store.readRows(
        'outbox',
        deliveredPartition(day),
        group.map((c) => c.alert.AlertId),
      );
      fresh.push(...group.filter((c) => !delivered.has(c.alert.AlertId)));
    }
    if (fresh.length === 0) return;

    const queuedAt = this.now();
    const version = `${queuedAt.toString(36)}${randomBytes(4).toString('hex')}`;
    const position = new Map(ids.map((id, i) => [id, i]));
    const index = new Map<string, Entity>();
    // Payload first: an index row is only ever visible with its payload in place.
    for (const [day, group] of groupBy(fresh, (c) => c.day)) {
      const rows = new Map<string, Entity>();
      for (const { alert } of group) {
        const parts = payloadRows(JSON.stringify(toRow(alert)), queuedAt);
        parts.forEach((row, k) => rows.set(partKey(alert.AlertId, version, k), row));
        index.set(alert.AlertId, {
          time: alert.TimeGenerated,
          timeMs: Date.parse(alert.TimeGenerated),
          day,
          queuedAt,
          seq: position.get(alert.AlertId) ?? 0,
          version,
          parts: parts.length,
          attempts: 0,
        });
      }
      await this.store.updateRows('outbox', payloadPartition(day), [...rows.keys()], () => new Map(rows));
    }
    // Only rows still absent are created: a concurrent writer that queued the same alert first keeps its row.
    await this.store.updateRows('outbox', PENDING_PARTITION, [...index.keys()], (current) => {
      const changes = new Map<string, Entity>();
      for (const [id, row] of index) if (!current.has(id)) changes.set(id, row);
      return changes;
    });
  }

  /**
   * Up to `limit` pending alerts, oldest first (by TimeGenerated, then queue order).
   * @param skip ids to leave out (a delivery round skips the alerts that already failed in that round).
   */
  async pending(limit: number, skip: ReadonlySet<string> = new Set()): Promise<Alert[]> {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
    const candidates = (await this.readIndex()).filter((r) => !skip.has(r.id));
    const alerts: Alert[] = [];
    const unreadable: IndexRow[] = [];
    // Rows without a readable payload are passed over (see dropDelivered), so read on until `limit` are found.
    for (let from = 0; from < candidates.length && alerts.length < limit;) {
      const window = candidates.slice(from, from + limit - alerts.length);
      from += window.length;
      const payloads = new Map<string, Alert>();
      for (const [day, group] of groupBy(window, (r) => r.day)) {
        const rows = await this.store.readRows('outbox', payloadPartition(day), group.flatMap(partKeys));
        for (const r of group) {
          const alert = parsePayload(joinPayload(r, rows));
          if (alert === undefined) unreadable.push(r);
          else payloads.set(r.id, alert);
        }
      }
      for (const r of window) {
        const alert = payloads.get(r.id);
        if (alert !== undefined) alerts.push(alert);
      }
    }
    if (unreadable.length > 0) await this.dropDelivered(unreadable);
    return alerts;
  }

  /**
   * Records that the service accepted these alerts: a delivered marker first, then the payload and the index row
   * are removed. Ids that are not pending are ignored, so calling it twice is harmless.
   */
  async markDelivered(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const rows = [...(await this.store.readRows('outbox', PENDING_PARTITION, ids)).entries()].map(([id, e]) =>
      fromIndexEntity(id, e),
    );
    if (rows.length === 0) return;
    const at = this.now();
    for (const [day, group] of groupBy(rows, (r) => r.day)) {
      const keys = group.map((r) => r.id);
      await this.store.updateRows('outbox', deliveredPartition(day), keys, (current) => {
        const changes = new Map<string, Entity>();
        for (const id of keys) if (!current.has(id)) changes.set(id, { at });
        return changes;
      });
    }
    // A crash from here on leaves an index row without (all of) its payload; pending() finds the marker and
    // finishes the job.
    await this.deletePayloads(rows);
    await this.deleteIndexRows(rows.map((r) => r.id));
  }

  /** Counts a failed delivery attempt for each alert (ids no longer pending are ignored). */
  async recordFailures(failures: readonly { id: string; error: string }[]): Promise<void> {
    if (failures.length === 0) return;
    const errors = new Map(failures.map((f) => [f.id, shortError(f.error)]));
    const at = this.now();
    await this.store.updateRows('outbox', PENDING_PARTITION, [...errors.keys()], (current) => {
      const changes = new Map<string, Entity>();
      for (const [id, entity] of current) {
        const attempts = typeof entity.attempts === 'number' ? entity.attempts : 0;
        changes.set(id, {
          ...entity,
          attempts: attempts + 1,
          lastError: errors.get(id) ?? '',
          lastAttemptAt: at,
        });
      }
      return changes;
    });
  }

  async countPending(): Promise<number> {
    return (await this.store.readPartition('outbox', PENDING_PARTITION)).size;
  }

  /** How long the longest-waiting alert has been in the outbox (0 when nothing is pending). */
  async oldestPendingAgeMs(now: number = this.now()): Promise<number> {
    const index = await this.readIndex();
    if (index.length === 0) return 0;
    return Math.max(0, now - Math.min(...index.map((r) => r.queuedAt)));
  }

  /** The pending alerts' delivery state, oldest first. */
  async pendingInfo(): Promise<PendingInfo[]> {
    return (await this.readIndex()).map((r) => ({
      id: r.id,
      timeGenerated: r.time,
      queuedAt: r.queuedAt,
      attempts: r.attempts,
      ...(r.lastError === '' ? {} : { lastError: r.lastError, lastAttemptAt: r.lastAttemptAt }),
    }));
  }

  /**
   * Deletes delivered markers of days (of TimeGenerated) older than `retentionMs` before `now`, and payload rows
   * of those days that belong to no pending alert (left by a crash). Never touches pending alerts. Meant to run
   * now and then (e.g. daily); it lists the outbox's partitions.
   */
  async purge(retentionMs: number = DEFAULT_RETENTION_MS, now: number = this.now()): Promise<PurgeResult> {
    const cutoffDay = new Date(now - retentionMs).toISOString().slice(0, 10);
    const result: PurgeResult = { markers: 0, orphanedPayloadRows: 0 };
    const pendingIds = new Set((await this.readIndex()).map((r) => r.id));
    for (const partition of await this.store.listPartitions('outbox')) {
      const [kind, day] = partition.split(':', 2);
      if (day === undefined || day >= cutoffDay) continue;
      // apply may run more than once (conflicts): count what the last run deleted.
      let deleted = 0;
      if (kind === 'delivered') {
        await this.store.updatePartition('outbox', partition, (current) => {
          deleted = current.size;
          return new Map([...current.keys()].map((k) => [k, null]));
        });
        result.markers += deleted;
      } else if (kind === 'payload') {
        await this.store.updatePartition('outbox', partition, (current) => {
          const changes = new Map<string, null>();
          for (const [key, row] of current) {
            const at = typeof row.at === 'number' ? row.at : 0;
            if (!pendingIds.has(idOfPartKey(key)) && at < now - ORPHAN_GRACE_MS) changes.set(key, null);
          }
          deleted = changes.size;
          return changes;
        });
        result.orphanedPayloadRows += deleted;
      }
    }
    return result;
  }

  /** The pending index, oldest first. */
  private async readIndex(): Promise<IndexRow[]> {
    const rows = [...(await this.store.readPartition('outbox', PENDING_PARTITION)).entries()].map(([id, e]) =>
      fromIndexEntity(id, e),
    );
    return rows.sort(
      (a, b) =>
        a.timeMs - b.timeMs ||
        a.queuedAt - b.queuedAt ||
        a.seq - b.seq ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  }

  /**
   * Index rows whose payload is gone. markDelivered removes the payload before the index row, so a crash between
   * the two leaves such rows: their marker proves delivery and they are finished off here. A row without a
   * readable payload and without a marker (only possible if the table was edited by hand) cannot be delivered;
   * it is passed over and left for an operator to see (countPending, oldestPendingAgeMs, pendingInfo).
   */
  private async dropDelivered(rows: readonly IndexRow[]): Promise<void> {
    const done: IndexRow[] = [];
    for (const [day, group] of groupBy(rows, (r) => r.day)) {
      const markers = await this.store.readRows(
        'outbox',
        deliveredPartition(day),
        group.map((r) => r.id),
      );
      done.push(...group.filter((r) => markers.has(r.id)));
    }
    await this.deletePayloads(done);
    await this.deleteIndexRows(done.map((r) => r.id));
  }

  private async deletePayloads(rows: readonly IndexRow[]): Promise<void> {
    for (const [day, group] of groupBy(rows, (r) => r.day)) {
      const keys = group.flatMap(partKeys);
      await this.store.updateRows(
        'outbox',
        payloadPartition(day),
        keys,
        () => new Map(keys.map((k) => [k, null])),
      );
    }
  }

  private async deleteIndexRows(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.store.updateRows('outbox', PENDING_PARTITION, ids, () => new Map(ids.map((id) => [id, null])));
  }
}

const partKey = (id: string, version: string, k: number): string => `${id}#${version}#${k}`;
const partKeys = (r: IndexRow): string[] =>
  Array.from({ length: r.parts }, (_, k) => partKey(r.id, r.version, k));
/** The AlertId of a payload row key (ids may contain '#'; version and part never do). */
function idOfPartKey(key: string): string {
  const last = key.lastIndexOf('#');
  return key.slice(0, key.lastIndexOf('#', last - 1));
}

function timeOf(alert: Alert): { day: string; timeMs: number } {
  const timeMs = typeof alert.TimeGenerated === 'string' ? Date.parse(alert.TimeGenerated) : NaN;
  if (!Number.isFinite(timeMs)) {
    throw new TypeError(`Cannot queue alert ${alert.AlertId}: TimeGenerated is not a date`);
  }
  return { day: new Date(timeMs).toISOString().slice(0, 10), timeMs };
}

/**
 * Splits a string into pieces of at most MAX_STRING_LENGTH UTF-16 code units, never between the two halves of a
 * surrogate pair (a lone surrogate cannot be stored).
 */
export function splitString(text: string, max: number = MAX_STRING_LENGTH): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + max, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces.length === 0 ? [''] : pieces;
}

function payloadRows(json: string, at: number): Entity[] {
  const pieces = splitString(json);
  const rows: Entity[] = [];
  for (let i = 0; i < pieces.length; i += CHUNKS_PER_ROW) {
    const row: Record<string, Scalar> = { at, n: Math.min(CHUNKS_PER_ROW, pieces.length - i) };
    pieces.slice(i, i + CHUNKS_PER_ROW).forEach((piece, j) => (row[`c${j}`] = piece));
    rows.push(row);
  }
  return rows;
}

function joinPayload(r: IndexRow, rows: ReadonlyMap<string, Entity>): string | undefined {
  let text = '';
  for (let k = 0; k < r.parts; k++) {
    const row = rows.get(partKey(r.id, r.version, k));
    if (row === undefined || typeof row.n !== 'number') return undefined;
    for (let j = 0; j < row.n; j++) {
      const piece = row[`c${j}`];
      if (typeof piece !== 'string') return undefined;
      text += piece;
    }
  }
  return text;
}

function parsePayload(text: string | undefined): Alert | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Alert;
  } catch {
    return undefined;
  }
}

function fromIndexEntity(id: string, e: Entity): IndexRow {
  const num = (v: Scalar | undefined): number => (typeof v === 'number' ? v : 0);
  const time = typeof e.time === 'string' ? e.time : '';
  return {
    id,
    time,
    timeMs: num(e.timeMs),
    day: typeof e.day === 'string' ? e.day : time.slice(0, 10),
    queuedAt: num(e.queuedAt),
    seq: num(e.seq),
    version: typeof e.version === 'string' ? e.version : '',
    parts: num(e.parts),
    attempts: num(e.attempts),
    lastError: typeof e.lastError === 'string' ? e.lastError : '',
    lastAttemptAt: num(e.lastAttemptAt),
  };
}

function shortError(error: string): string {
  const flat = error.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_ERROR_LENGTH ? `${flat.slice(0, MAX_ERROR_LENGTH - 1)}…` : flat;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}
