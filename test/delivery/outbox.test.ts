import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { type Alert } from '../../shared/alerts/alert.js';
import { toRow } from '../../shared/alerts/sinks.js';
import { MAX_STRING_LENGTH } from '../../shared/baseline/entity.js';
import { isWellFormed } from '../../shared/baseline/keys.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import {
  AlertOutbox,
  CHUNKS_PER_ROW,
  deliveredPartition,
  MAX_ERROR_LENGTH,
  payloadPartition,
  PENDING_PARTITION,
  splitString,
} from '../../shared/delivery/outbox.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { makeAlert, makeAlerts, storeKinds, T0 } from './helpers.js';

let azurite: AzuriteTables;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

const ids = (alerts: readonly Alert[]): string[] => alerts.map((a) => a.AlertId);
const DAY = '2025-03-10';

describe('splitString', () => {
  it('cuts at the limit but never between the halves of a surrogate pair', () => {
    expect(splitString('')).toStrictEqual(['']);
    expect(splitString('abcdef', 4)).toStrictEqual(['abcd', 'ef']);
    expect(splitString('abc😀def', 4)).toStrictEqual(['abc', '😀de', 'f']);
    for (const prefix of ['', 'x']) {
      const text = prefix + '😀'.repeat(50_000);
      const pieces = splitString(text);
      expect(pieces.join('')).toBe(text);
      for (const piece of pieces) {
        expect(piece.length).toBeLessThanOrEqual(MAX_STRING_LENGTH);
        expect(isWellFormed(piece)).toBe(true);
      }
    }
  });
});

for (const kind of storeKinds(() => azurite)) {
  describe(`AlertOutbox on ${kind.name}`, () => {
    let store: BaselineStore;
    let clock: number;
    let outbox: AlertOutbox;
    beforeEach(async () => {
      store = await kind.open();
      clock = T0 + 3_600_000;
      outbox = new AlertOutbox(store, { now: () => clock });
    });
    afterEach(async () => {
      await store.close();
    });

    it('queues alerts and hands them back as their rows, oldest first, write order for equal times', async () => {
      const late = makeAlert(1, { minute: 30 });
      const early = makeAlert(2, { minute: 5 });
      const sameA = makeAlert(3, { minute: 10 });
      const sameB = makeAlert(4, { minute: 10 });
      await outbox.write([late, sameB, early]);
      clock += 1000;
      await outbox.write([sameA]);
      expect(await outbox.countPending()).toBe(4);
      const pending = await outbox.pending(10);
      expect(ids(pending)).toStrictEqual(ids([early, sameB, sameA, late]));
      expect(pending[0]).toStrictEqual(toRow(early));
      expect(Object.keys(pending[0]!)).toStrictEqual(Object.keys(toRow(early)));
      expect(ids(await outbox.pending(2))).toStrictEqual(ids([early, sameB]));
      expect(ids(await outbox.pending(10, new Set([early.AlertId, sameA.AlertId])))).toStrictEqual(
        ids([sameB, late]),
      );
      await expect(outbox.pending(0)).rejects.toThrow(RangeError);
    });

    it('is idempotent by AlertId: again, within one call, and after delivery', async () => {
      const alerts = makeAlerts(5);
      await outbox.write(alerts);
      const before = await outbox.pendingInfo();
      clock += 60_000;
      await outbox.write([...alerts, alerts[0]!, ...alerts]);
      expect(await outbox.pendingInfo()).toStrictEqual(before); // not re-queued: same queue time, order, state
      expect(await outbox.countPending()).toBe(5);

      await outbox.markDelivered(ids(alerts.slice(0, 3)));
      expect(ids(await outbox.pending(10))).toStrictEqual(ids(alerts.slice(3)));
      // A re-run of the same old tick: the delivered ones stay delivered, the others stay pending once.
      await outbox.write(alerts);
      expect(ids(await outbox.pending(10))).toStrictEqual(ids(alerts.slice(3)));
      const markers = await store.readPartition('outbox', deliveredPartition(DAY));
      expect([...markers.keys()].sort()).toStrictEqual(ids(alerts.slice(0, 3)).sort());

      await outbox.markDelivered(ids(alerts)); // twice for the first three: harmless
      await outbox.markDelivered(['no-such-alert']);
      await outbox.write(alerts);
      expect(await outbox.countPending()).toBe(0);
      expect(await outbox.pending(10)).toStrictEqual([]);
      // Nothing but the markers is left behind.
      expect((await store.readPartition('outbox', payloadPartition(DAY))).size).toBe(0);
      expect((await store.readPartition('outbox', PENDING_PARTITION)).size).toBe(0);
    });

    it('round-trips rows far over 32K characters, split over properties and rows, emoji included', async () => {
      const big = makeAlert(1, { explanationChars: 100_000 });
      const huge = makeAlert(2);
      huge.Explanation.summary = '😀 Zürich '.repeat(60_000); // ~600K UTF-16 units: several payload rows
      const odd = makeAlert(3);
      odd.Explanation.summary = 'x' + '😀'.repeat(40_000); // the other parity of surrogate pairs at the cuts
      await outbox.write([big, huge, odd]);
      expect(await outbox.pending(10)).toStrictEqual([toRow(big), toRow(huge), toRow(odd)]);

      const payload = await store.readPartition('outbox', payloadPartition(DAY));
      const hugeRows = [...payload.keys()].filter((k) => k.startsWith(`${huge.AlertId}#`));
      const hugeLength = JSON.stringify(toRow(huge)).length;
      expect(hugeRows).toHaveLength(Math.ceil(hugeLength / MAX_STRING_LENGTH / CHUNKS_PER_ROW));
      expect(hugeRows.length).toBeGreaterThan(1);
      for (const row of payload.values()) {
        for (const value of Object.values(row)) {
          if (typeof value === 'string') expect(value.length).toBeLessThanOrEqual(MAX_STRING_LENGTH);
        }
      }
    });

    it('keeps attempts and a short last error on pending rows', async () => {
      const alerts = makeAlerts(3);
      await outbox.write(alerts);
      clock = T0 + 7_200_000;
      await outbox.recordFailures([
        { id: alerts[0]!.AlertId, error: 'HTTP 503 ServiceUnavailable' },
        { id: alerts[1]!.AlertId, error: `HTTP 400 ${'x'.repeat(500)}\n` },
        { id: 'not-pending', error: 'HTTP 500' },
      ]);
      await outbox.recordFailures([{ id: alerts[0]!.AlertId, error: 'aborted' }]);
      const info = await outbox.pendingInfo();
      expect(info.map((i) => [i.attempts, i.lastError?.length ?? 0])).toStrictEqual([
        [2, 'aborted'.length],
        [1, MAX_ERROR_LENGTH],
        [0, 0],
      ]);
      expect(info[0]).toMatchObject({
        id: alerts[0]!.AlertId,
        lastError: 'aborted',
        lastAttemptAt: T0 + 7_200_000,
        queuedAt: T0 + 3_600_000,
        timeGenerated: alerts[0]!.TimeGenerated,
      });
      expect(await outbox.countPending()).toBe(3);
      expect(ids(await outbox.pending(10))).toStrictEqual(ids(alerts)); // failures do not reorder the queue
    });

    it('reports the age of the oldest pending alert', async () => {
      expect(await outbox.oldestPendingAgeMs()).toBe(0);
      await outbox.write([makeAlert(1)]);
      clock += 90_000;
      await outbox.write([makeAlert(0)]); // older TimeGenerated, queued later
      expect(await outbox.oldestPendingAgeMs()).toBe(90_000);
      expect(await outbox.oldestPendingAgeMs(clock + 10_000)).toBe(100_000);
      await outbox.markDelivered([makeAlert(1).AlertId]);
      expect(await outbox.oldestPendingAgeMs()).toBe(0);
    });

    it('finishes a markDelivered cut short, and passes over a row whose payload is gone', async () => {
      const [a, b, c] = makeAlerts(3);
      await outbox.write([a!, b!, c!]);
      const dropPayload = (id: string) =>
        store.updatePartition('outbox', payloadPartition(DAY), (current) => {
          const keys = [...current.keys()].filter((k) => k.startsWith(`${id}#`));
          return new Map(keys.map((k) => [k, null]));
        });
      // The state a crash inside markDelivered(a) leaves: marker written, payload deleted, index row still there.
      await store.updatePartition(
        'outbox',
        deliveredPartition(DAY),
        () => new Map([[a!.AlertId, { at: 1 }]]),
      );
      await dropPayload(a!.AlertId);
      // b lost its payload without being delivered (only a hand edit can do that).
      await dropPayload(b!.AlertId);
      expect(await outbox.countPending()).toBe(3);
      expect(ids(await outbox.pending(1))).toStrictEqual([c!.AlertId]);
      expect((await outbox.pendingInfo()).map((i) => i.id)).toStrictEqual([b!.AlertId, c!.AlertId]);
    });

    it('refuses alerts it could not file', async () => {
      await expect(outbox.write([{ ...makeAlert(1), TimeGenerated: 'yesterday' }])).rejects.toThrow(
        /TimeGenerated/,
      );
      await expect(outbox.write([{ ...makeAlert(1), AlertId: '' }])).rejects.toThrow(/AlertId/);
      await outbox.write([]);
      expect(await outbox.countPending()).toBe(0);
    });

    it('purges old markers and orphaned payloads, never pending alerts', async () => {
      const old = makeAlert(1); // 2025-03-10
      const stillPending = makeAlert(2); // same day, never delivered
      const recent = makeAlert(3, { minute: 40 * 24 * 60 }); // 2025-04-19
      await outbox.write([old, stillPending, recent]);
      await outbox.markDelivered([old.AlertId, recent.AlertId]);
      // A crash between the payload and the index row of a write: a payload nobody references.
      const orphan = makeAlert(4);
      await store.updatePartition(
        'outbox',
        payloadPartition(DAY),
        () => new Map([[`${orphan.AlertId}#v#0`, { at: clock, n: 1, c0: '{}' }]]),
      );

      const now = Date.parse('2025-04-20T00:00:00Z');
      expect(await outbox.purge(30 * 86_400_000, now)).toStrictEqual({ markers: 1, orphanedPayloadRows: 1 });
      expect((await store.readPartition('outbox', deliveredPartition(DAY))).size).toBe(0);
      expect((await store.readPartition('outbox', deliveredPartition('2025-04-19'))).size).toBe(1);
      expect(ids(await outbox.pending(10))).toStrictEqual([stillPending.AlertId]);
      // The purged marker no longer protects the old alert: a re-run queues it again (at-least-once).
      await outbox.write([old, recent]);
      expect(ids(await outbox.pending(10))).toStrictEqual([old.AlertId, stillPending.AlertId]);
    });
  });
}
