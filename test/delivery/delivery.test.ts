/**
 * End to end: the outbox (on both stores) → deliverPending → the real LogsIngestionClient with the real
 * DefaultAzureCredential (managed identity, served by test/support/identity.ts) → the fake ingestion endpoint.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { type Alert, ALERT_COLUMNS, ALERT_STREAM } from '../../shared/alerts/alert.js';
import { toRow } from '../../shared/alerts/sinks.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { AlertUploader, deliverPending } from '../../shared/delivery/ingestion.js';
import { AlertOutbox } from '../../shared/delivery/outbox.js';
import type { LogFn } from '../../shared/pipeline/tick.js';
import { RunBudget } from '../../shared/runtime/budget.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { FAKE_DCR_ID, type FakeIngestion, startFakeIngestion } from '../support/fakeIngestion.js';
import { type FakeIdentity, startFakeIdentity } from '../support/identity.js';
import {
  ingestionClient,
  makeAlert,
  makeAlerts,
  receivedCounts,
  receivedIds,
  storeKinds,
} from './helpers.js';

let azurite: AzuriteTables;
let identity: FakeIdentity;
let restoreEnv: () => void;
beforeAll(async () => {
  azurite = await startAzurite();
  identity = await startFakeIdentity();
  restoreEnv = identity.install();
});
afterAll(async () => {
  restoreEnv?.();
  await identity?.close();
  await azurite?.stop();
});

const ids = (alerts: readonly Alert[]): string[] => alerts.map((a) => a.AlertId);
const sorted = (values: Iterable<string>): string[] => [...values].sort();

class CrashingOutbox extends AlertOutbox {
  crashes = 0;
  override async markDelivered(alertIds: readonly string[]): Promise<void> {
    if (this.crashes > 0) {
      this.crashes--;
      throw new Error('simulated crash between upload and markDelivered');
    }
    return super.markDelivered(alertIds);
  }
}

for (const kind of storeKinds(() => azurite)) {
  describe(`alert delivery from the outbox on ${kind.name}`, () => {
    let store: BaselineStore;
    let outbox: CrashingOutbox;
    let fake: FakeIngestion;
    let onRequest: (() => void) | undefined;
    let logs: string[];
    const log: LogFn = (level, message) => logs.push(`${level}: ${message}`);
    const uploader = (maxRetries = 3) =>
      new AlertUploader(ingestionClient(fake, maxRetries), FAKE_DCR_ID, ALERT_STREAM);

    beforeEach(async () => {
      store = await kind.open();
      outbox = new CrashingOutbox(store);
      onRequest = undefined;
      fake = await startFakeIngestion({ onRequest: () => onRequest?.() });
      logs = [];
    });
    afterEach(async () => {
      await fake.close();
      await store.close();
    });

    it('delivers each alert exactly once, as rows of the column file, then nothing more', async () => {
      const alerts = makeAlerts(12);
      await outbox.write(alerts);
      const result = await deliverPending(outbox, uploader(), { log });
      expect(result).toStrictEqual({ delivered: 12, failed: 0, pending: 0 });
      expect(fake.received).toStrictEqual(alerts.map(toRow));
      for (const row of fake.received)
        expect(Object.keys(row)).toStrictEqual(ALERT_COLUMNS.map((c) => c.name));
      expect(fake.requests).toHaveLength(1);
      expect(fake.requests[0]).toMatchObject({
        dcr: FAKE_DCR_ID,
        stream: ALERT_STREAM,
        apiVersion: '2023-01-01',
        contentEncoding: 'gzip',
        authorization: 'Bearer test-token:https://monitor.azure.com',
        status: 204,
      });

      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 0, failed: 0, pending: 0 });
      expect(fake.requests).toHaveLength(1); // an empty outbox sends nothing
    });

    it('writing the same alerts again, before or after delivery, sends nothing twice', async () => {
      const alerts = makeAlerts(6);
      await outbox.write(alerts);
      await outbox.write(alerts);
      expect(await outbox.countPending()).toBe(6);
      await deliverPending(outbox, uploader());
      await outbox.write(alerts); // a re-run of the same tick after delivery
      await outbox.write([...alerts.slice(0, 3), makeAlert(100)]);
      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 1, failed: 0, pending: 0 });
      expect(receivedIds(fake)).toStrictEqual([...ids(alerts), makeAlert(100).AlertId]);
    });

    it('keeps everything while the endpoint is down for several rounds, then delivers once, in order', async () => {
      const alerts = makeAlerts(10);
      await outbox.write(alerts.slice(0, 4));
      fake.setDown(true);
      for (let round = 1; round <= 3; round++) {
        if (round === 2) await outbox.write(alerts.slice(4)); // new alerts keep coming in meanwhile
        const result = await deliverPending(outbox, uploader(), { batchSize: 3, log });
        // The first batch fails and the round stops: later batches would fail the same way.
        expect(result).toStrictEqual({ delivered: 0, failed: 3, pending: round === 1 ? 4 : 10 });
      }
      expect(fake.received).toStrictEqual([]);
      expect(fake.requests.every((r) => r.status === 503)).toBe(true);
      const info = await outbox.pendingInfo();
      expect(info.map((i) => i.id)).toStrictEqual(ids(alerts));
      expect(info.slice(0, 3).map((i) => [i.attempts, i.lastError])).toStrictEqual(
        Array(3).fill([3, 'HTTP 503 ServiceUnavailable']),
      );
      expect(logs.some((l) => l.startsWith('warn: Logs Ingestion did not accept 3 alert(s): HTTP 503'))).toBe(
        true,
      );

      fake.setDown(false);
      const result = await deliverPending(outbox, uploader(), { batchSize: 3, log });
      expect(result).toStrictEqual({ delivered: 10, failed: 0, pending: 0 });
      expect(receivedIds(fake)).toStrictEqual(ids(alerts));
      expect(fake.received).toStrictEqual(alerts.map(toRow));
    });

    it('a failed chunk stays pending while the other chunks are delivered; the next round sends the rest', async () => {
      // ~300 KB of JSON each (far over Table Storage's 32K characters per property): 3 per ~1 MB chunk.
      const alerts = makeAlerts(8, { explanationChars: 300_000 });
      await outbox.write(alerts);
      fake.failNext('partial');
      const first = await deliverPending(outbox, uploader(0), { log });
      const chunks = fake.requests.filter((r) => r.rows > 0);
      expect(chunks.length).toBeGreaterThanOrEqual(3);
      expect(chunks.every((r) => r.rows < 8)).toBe(true);
      expect(fake.requests.filter((r) => r.status === 500)).toHaveLength(1);

      const failedIds = fake.rejected.map((r) => String(r.AlertId));
      expect(failedIds.length).toBeGreaterThan(0);
      expect(first).toStrictEqual({
        delivered: 8 - failedIds.length,
        failed: failedIds.length,
        pending: failedIds.length,
      });
      expect(sorted((await outbox.pendingInfo()).map((i) => i.id))).toStrictEqual(sorted(failedIds));
      expect(sorted(receivedIds(fake))).toStrictEqual(
        sorted(ids(alerts).filter((id) => !failedIds.includes(id))),
      );
      expect(
        (await outbox.pendingInfo()).every(
          (i) => i.attempts === 1 && i.lastError === 'HTTP 500 InternalServerError',
        ),
      ).toBe(true);

      const second = await deliverPending(outbox, uploader(0), { log });
      expect(second).toStrictEqual({ delivered: failedIds.length, failed: 0, pending: 0 });
      // Exactly once each, every row intact after its trip through the outbox.
      expect(sorted(receivedIds(fake))).toStrictEqual(sorted(ids(alerts)));
      const byId = new Map(fake.received.map((r) => [String(r.AlertId), r]));
      for (const alert of alerts) expect(byId.get(alert.AlertId)).toStrictEqual(toRow(alert));
    });

    it('a crash between upload and markDelivered re-sends that batch once; the copies share their AlertId', async () => {
      const alerts = makeAlerts(5);
      await outbox.write(alerts);
      outbox.crashes = 1;
      await expect(deliverPending(outbox, uploader())).rejects.toThrow(/simulated crash/);
      expect(receivedIds(fake)).toStrictEqual(ids(alerts)); // sent, but not recorded as delivered
      expect(await outbox.countPending()).toBe(5);

      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 5, failed: 0, pending: 0 });
      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 0, failed: 0, pending: 0 });
      const counts = receivedCounts(fake);
      expect(sorted(counts.keys())).toStrictEqual(sorted(ids(alerts)));
      expect([...counts.values()].every((n) => n === 2)).toBe(true);
      // Duplicates are identical rows: deduping on AlertId loses nothing.
      const first = fake.received.slice(0, 5);
      expect(fake.received.slice(5)).toStrictEqual(first);
    });

    it('stops cleanly between batches when the budget is spent, and the next run goes on', async () => {
      const alerts = makeAlerts(10);
      await outbox.write(alerts);
      let now = 0;
      onRequest = () => (now += 4_000); // each request "takes" 4 s of a 10 s budget
      const budget = new RunBudget(10_000, () => now);
      const first = await deliverPending(outbox, uploader(), { budget, batchSize: 2, log });
      expect(first).toStrictEqual({ delivered: 6, failed: 0, pending: 4 });
      expect(receivedIds(fake)).toStrictEqual(ids(alerts.slice(0, 6)));
      expect(logs).toContain(
        'warn: Run budget spent: alert delivery stopped, the rest stays pending for the next run',
      );

      const spent = await deliverPending(outbox, uploader(), { budget, batchSize: 2 });
      expect(spent).toStrictEqual({ delivered: 0, failed: 0, pending: 4 });

      const next = await deliverPending(outbox, uploader(), {
        budget: new RunBudget(10_000, () => now),
        batchSize: 5,
      });
      expect(next).toStrictEqual({ delivered: 4, failed: 0, pending: 0 });
      expect(receivedIds(fake)).toStrictEqual(ids(alerts));
    });

    it('a budget running out mid-request leaves the batch pending; only that batch may arrive twice', async () => {
      const alerts = makeAlerts(4);
      await outbox.write(alerts);
      fake.setDelay(1_500);
      const result = await deliverPending(outbox, uploader(0), { budget: new RunBudget(300), log });
      expect(result).toStrictEqual({ delivered: 0, failed: 4, pending: 4 });
      expect((await outbox.pendingInfo()).map((i) => i.lastError)).toStrictEqual(Array(4).fill('aborted'));

      fake.setDelay(0);
      await new Promise((r) => setTimeout(r, 1_500)); // let the abandoned request finish on the server
      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 4, failed: 0, pending: 0 });
      const counts = receivedCounts(fake);
      expect(sorted(counts.keys())).toStrictEqual(sorted(ids(alerts)));
      expect([...counts.values()].every((n) => n === 1 || n === 2)).toBe(true);
    });

    it('a row the service rejects is isolated: the others are delivered, it stays pending with the reason', async () => {
      const alerts = makeAlerts(9);
      const poison = { ...makeAlert(50, { minute: 4 }), RiskScore: 1.5 }; // not an int: HTTP 400
      await outbox.write([...alerts, poison]);
      const first = await deliverPending(outbox, uploader(), { log });
      expect(first).toStrictEqual({ delivered: 9, failed: 1, pending: 1 });
      expect(sorted(receivedIds(fake))).toStrictEqual(sorted(ids(alerts)));
      expect(await outbox.pendingInfo()).toMatchObject([
        { id: poison.AlertId, attempts: 1, lastError: 'HTTP 400 InvalidContent' },
      ]);
      expect(fake.requests.length).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(10)));
      expect(
        logs.some((l) =>
          l.startsWith('error: Logs Ingestion did not accept 1 alert(s): HTTP 400 InvalidContent'),
        ),
      ).toBe(true);

      const before = fake.requests.length;
      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 0, failed: 1, pending: 1 });
      expect(fake.requests.length).toBe(before + 1);
      expect(receivedCounts(fake).size).toBe(9);
    });

    it('an alert refused as too large (413) is sent again in its reduced form: same AlertId, lists cut', async () => {
      // As an older detector queued it: 1,000 findings of ~1.1 KB, a 1.1 MB row.
      const big = makeAlert(60);
      const finding = big.Explanation.operations[0]!;
      big.Explanation.operations = Array.from({ length: 1000 }, (_, i) => ({
        ...finding,
        operation: `Microsoft.Y/op${i}/write`,
        sentence: `${finding.sentence} ${randomBytes(500).toString('hex')}`,
      }));
      big.Operations = big.Explanation.operations.map((o) => o.operation);
      const alerts = [...makeAlerts(3), big];
      await outbox.write(alerts);
      const result = await deliverPending(outbox, uploader(), { log });
      expect(result).toStrictEqual({ delivered: 4, failed: 0, pending: 0 });
      expect(fake.requests.some((r) => r.status === 413)).toBe(true);
      const row = fake.received.find((r) => r.AlertId === big.AlertId)!;
      expect(Buffer.byteLength(JSON.stringify(row))).toBeLessThan(32 * 1024);
      expect((row.Explanation as Alert['Explanation']).omitted).toMatch(/^…and \d+ more$/);
      expect((row.Operations as string[]).at(-1)).toMatch(/^…and \d+ more$/);
      expect(sorted(receivedIds(fake))).toStrictEqual(sorted(ids(alerts)));
    });

    it('transient failures are retried by the SDK within the same run', async () => {
      const alerts = makeAlerts(3);
      await outbox.write(alerts);
      fake.failNext(500, 2);
      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 3, failed: 0, pending: 0 });
      expect(fake.requests.map((r) => r.status)).toStrictEqual([500, 500, 204]);
      expect(receivedIds(fake)).toStrictEqual(ids(alerts));
    });

    it('any other error fails the whole batch and loses nothing', async () => {
      const alerts = makeAlerts(3);
      await outbox.write(alerts);
      const wrongDcr = new AlertUploader(ingestionClient(fake), 'dcr-not-this-one', ALERT_STREAM);
      expect(await deliverPending(outbox, wrongDcr, { log })).toStrictEqual({
        delivered: 0,
        failed: 3,
        pending: 3,
      });
      expect((await outbox.pendingInfo())[0]?.lastError).toBe('HTTP 404 NotFound');
      expect(logs.some((l) => l.includes('check the DCR immutable id'))).toBe(true);

      const unreachable = await startFakeIngestion();
      await unreachable.close();
      const nowhere = new AlertUploader(ingestionClient(unreachable, 0), FAKE_DCR_ID, ALERT_STREAM);
      expect(await deliverPending(outbox, nowhere)).toStrictEqual({ delivered: 0, failed: 3, pending: 3 });
      expect((await outbox.pendingInfo())[0]).toMatchObject({
        attempts: 2,
        lastError: expect.stringMatching(/ECONNREFUSED/),
      });

      expect(await deliverPending(outbox, uploader())).toStrictEqual({ delivered: 3, failed: 0, pending: 0 });
      expect(receivedIds(fake)).toStrictEqual(ids(alerts));
    });
  });
}

describe('AlertUploader', () => {
  let fake: FakeIngestion;
  beforeEach(async () => {
    fake = await startFakeIngestion();
    return () => fake.close();
  });

  it('maps the chunks the SDK reports failed back to AlertIds, and sends an id given twice once', async () => {
    const alerts = makeAlerts(7, { explanationChars: 300_000 });
    fake.failNext('partial', 2);
    const uploader = new AlertUploader(ingestionClient(fake, 0), FAKE_DCR_ID, ALERT_STREAM, {
      maxConcurrency: 1,
    });
    const result = await uploader.upload([...alerts, alerts[0]!]);
    const rejected = fake.rejected.map((r) => String(r.AlertId));
    expect(fake.requests.map((r) => r.status)).toStrictEqual([204, 500, 500]); // one at a time: in order
    expect(result.failed.map((f) => f.id)).toStrictEqual(rejected);
    expect(result.failed.every((f) => f.error === 'HTTP 500 InternalServerError')).toBe(true);
    expect(result.delivered).toStrictEqual(receivedIds(fake));
    expect(sorted([...result.delivered, ...rejected])).toStrictEqual(sorted(ids(alerts)));
    expect(await uploader.upload([])).toStrictEqual({ delivered: [], failed: [] });
  });

  it('an abort between chunks never reports the chunks the SDK did not send as delivered', async () => {
    // Given several chunks, the SDK stops starting them once the signal is aborted and does not report the
    // ones it skipped; the uploader sends one chunk per SDK call, so it knows.
    const alerts = makeAlerts(7, { explanationChars: 300_000 }); // chunks of 3, 3 and 1
    // Abort exactly while the second chunk is in flight (when it reaches the service), whatever the machine's load.
    const abort = new AbortController();
    await fake.close();
    fake = await startFakeIngestion({
      onRequest: () => (fake.requests.length === 2 ? abort.abort() : undefined),
    });
    fake.setDelay(200);
    const uploader = new AlertUploader(ingestionClient(fake, 0), FAKE_DCR_ID, ALERT_STREAM, {
      maxConcurrency: 1,
    });
    const result = await uploader.upload(alerts, { abortSignal: abort.signal });
    expect(fake.requests).toHaveLength(2); // the third chunk was never sent
    expect(result.delivered).toStrictEqual(ids(alerts.slice(0, 3)));
    expect(result.failed.map((f) => f.id)).toStrictEqual(ids(alerts.slice(3)));
    expect(result.failed.map((f) => f.error)).toStrictEqual([
      ...Array(3).fill('aborted'),
      'not sent (aborted)',
    ]);
  });
});
