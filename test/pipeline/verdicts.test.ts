import { describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import { addAllowRule, readAllowTable } from '../../shared/ops/allowlist.js';
import { readAudit } from '../../shared/ops/audit.js';
import { readCallerCities, updateCallerHistories } from '../../shared/pipeline/callers.js';
import { ledgerFromEntity } from '../../shared/pipeline/state.js';
import {
  ALERT_INDEX_PARTITION,
  alertIndexEntity,
  applyVerdicts,
  CONFIRMED_UNTIL_MS,
  parseVerdictLines,
  type Verdict,
  VerdictFeed,
  type VerdictPolicy,
  verdictToRecord,
} from '../../shared/pipeline/verdicts.js';

const DAY = 86_400_000;
const T = Date.UTC(2026, 10, 2, 9);
const ALERT = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const CALLER = 'Dev1@contoso.com';
const CITY = 'g:5128581';

const verdict = (over: Partial<Verdict> = {}): Verdict => ({
  incidentNumber: 42,
  incidentName: '',
  classification: 'BenignPositive',
  reason: 'SuspiciousButExpected',
  comment: 'at the New York office',
  owner: 'ana@contoso.com',
  modifiedBy: 'ana@contoso.com',
  closedTimeMs: T,
  alertId: ALERT,
  ...over,
});

async function storeWithAlert(network = '', org = ''): Promise<SqliteStore> {
  const store = SqliteStore.open(':memory:');
  const row = alertIndexEntity({
    caller: CALLER,
    cityKey: CITY,
    network,
    ...(org !== '' ? { org } : {}),
    hourMs: T - DAY,
    score: 80,
  });
  await store.updateRows('state', ALERT_INDEX_PARTITION, [ALERT], () => new Map([[ALERT, row]]));
  return store;
}

const policy = (store: SqliteStore, over: Partial<VerdictPolicy> = {}): VerdictPolicy => ({
  allowNetwork: false,
  allowDays: 90,
  allow: (rule, change) => addAllowRule(store, rule, change),
  ...over,
});

describe('verdict files (JSON Lines)', () => {
  it('reads the file format and the query columns; a bad line is skipped with its line number', () => {
    const good = JSON.stringify(verdictToRecord(verdict()));
    const pascal = JSON.stringify({
      IncidentNumber: 43,
      Classification: 'TruePositive',
      ClassificationReason: 'SuspiciousActivity',
      ClosedTime: new Date(T).toISOString(),
      AlertId: ALERT.toUpperCase(),
      Owner: 'ben@contoso.com',
    });
    const text = [
      good,
      '',
      'not json',
      JSON.stringify({ ...verdictToRecord(verdict()), alertId: 'x' }),
      JSON.stringify({ ...verdictToRecord(verdict()), classification: 'Benign' }),
      JSON.stringify({ ...verdictToRecord(verdict()), closedTime: '' }),
      pascal,
      '[1]',
    ].join('\n');
    const r = parseVerdictLines(text);
    expect(r.verdicts).toEqual([
      verdict(),
      verdict({
        incidentNumber: 43,
        classification: 'TruePositive',
        reason: 'SuspiciousActivity',
        comment: '',
        owner: 'ben@contoso.com',
        modifiedBy: '',
      }),
    ]);
    expect(r.skipped.map((s) => s.position)).toEqual([3, 4, 5, 6, 8]);
    expect(r.skipped[1]!.reason).toMatch(/AlertId "x" is not GUID-shaped/);
    expect(r.skipped[2]!.reason).toMatch(/Classification "Benign" is not one of/);
  });
});

describe('applyVerdicts', () => {
  it('benign: allows the (caller, city) with an expiry, audited with the incident and the analyst; applied once', async () => {
    const store = await storeWithAlert();
    const s = await applyVerdicts(store, [verdict()], policy(store));
    expect(s).toMatchObject({ applied: 1, benign: 1, confirmed: 0 });
    expect(await readAllowTable(store)).toEqual([
      expect.objectContaining({
        kind: 'caller+city',
        value: `dev1@contoso.com ${CITY}`,
        by: 'ana@contoso.com',
        reason: 'incident 42: BenignPositive/SuspiciousButExpected: at the New York office',
        expiresMs: T + 90 * DAY,
      }),
    ]);
    expect(await applyVerdicts(store, [verdict()], policy(store))).toMatchObject({
      applied: 0,
      alreadyApplied: 1,
    });
    expect(await readAudit(store)).toHaveLength(1);
    await store.close();
  });

  it('the network too under UC_VERDICT_ALLOW_NETWORK; no expiry with 0 days; a long comment is bounded', async () => {
    const store = await storeWithAlert('AS3320');
    await applyVerdicts(
      store,
      [verdict({ classification: 'FalsePositive', reason: '', comment: 'x'.repeat(5000) })],
      policy(store, { allowNetwork: true, allowDays: 0 }),
    );
    const rules = await readAllowTable(store);
    expect(rules.map((r) => `${r.kind} ${r.value}`).sort()).toEqual([
      `caller+city dev1@contoso.com ${CITY}`,
      'caller+network dev1@contoso.com AS3320',
    ]);
    expect(rules.every((r) => r.expiresMs === undefined)).toBe(true);
    expect(rules[0]!.reason!.length).toBeLessThan(600);
    expect(rules[0]!.reason!.startsWith('incident 42: FalsePositive/-: xxx')).toBe(true);
    await store.close();
  });

  it('the (city, network) too under UC_VERDICT_ALLOW_CITY_NETWORK, with the same expiry and audit; never without a network', async () => {
    const store = await storeWithAlert('AS45609', 'Bharti Airtel Limited');
    await applyVerdicts(store, [verdict()], policy(store, { allowCityNetwork: true }));
    const rules = await readAllowTable(store);
    expect(rules.map((r) => `${r.kind} ${r.value} ${r.expiresMs} ${r.org}`).sort()).toEqual([
      `caller+city dev1@contoso.com ${CITY} ${T + 90 * DAY} undefined`,
      `city+network ${CITY} AS45609 ${T + 90 * DAY} Bharti Airtel Limited`,
    ]);
    expect((await readAudit(store)).map((a) => a.subject).sort()).toEqual([
      `caller+city dev1@contoso.com ${CITY}`,
      `city+network ${CITY} AS45609`,
    ]);
    await store.close();

    const unknown = await storeWithAlert('');
    await applyVerdicts(unknown, [verdict()], policy(unknown, { allowCityNetwork: true }));
    expect((await readAllowTable(unknown)).map((r) => r.kind)).toEqual(['caller+city']);
    await unknown.close();
  });

  it('true positive: the quarantine no longer ages out and the ledger remembers the confirmed alert; a reclassification applies again', async () => {
    const store = await storeWithAlert();
    const mark = { cityKey: CITY, hourMs: T - DAY, quarantineUntilMs: T + 13 * DAY, markOnly: true };
    await updateCallerHistories(store, new Map([[CALLER, [mark]]]), new Map());
    const s = await applyVerdicts(store, [verdict({ classification: 'TruePositive' })], policy(store));
    expect(s).toMatchObject({ applied: 1, confirmed: 1 });
    expect((await readCallerCities(store, CALLER)).get(CITY)?.quarantinedUntilMs).toBe(CONFIRMED_UNTIL_MS);
    const ledger = (await store.readRows('alerts', CALLER, [CITY])).get(CITY)!;
    expect(ledgerFromEntity(ledger).confirmedAlertId).toBe(ALERT);
    expect(await readAllowTable(store)).toEqual([]);
    // Reclassified as benign later: applied again, the quarantine lifted, the confirmation dropped.
    const again = await applyVerdicts(store, [verdict({ closedTimeMs: T + DAY })], policy(store));
    expect(again).toMatchObject({ applied: 1, benign: 1 });
    expect((await readCallerCities(store, CALLER)).get(CITY)?.quarantinedUntilMs ?? 0).toBe(0);
    const after = (await store.readRows('alerts', CALLER, [CITY])).get(CITY)!;
    expect(ledgerFromEntity(after).confirmedAlertId).toBeUndefined();
    await store.close();
  });

  it('undetermined verdicts and alerts this detector never raised change nothing', async () => {
    const store = await storeWithAlert();
    const s = await applyVerdicts(
      store,
      [
        verdict({ classification: 'Undetermined' }),
        verdict({ alertId: 'ffffffff-ffff-4fff-8fff-ffffffffffff' }),
      ],
      policy(store),
    );
    expect(s).toMatchObject({ applied: 0, undetermined: 1, unknownAlert: 1 });
    expect(await readAllowTable(store)).toEqual([]);
    await store.close();
  });

  it('VerdictFeed applies each verdict at the first run at or after its ClosedTime', async () => {
    const store = await storeWithAlert();
    const feed = new VerdictFeed(store, policy(store), [verdict({ closedTimeMs: T + 30 * 60_000 })]);
    expect(await feed.due(T)).toBe(false);
    expect(await readAllowTable(store)).toEqual([]);
    expect(await feed.due(T + 30 * 60_000)).toBe(true);
    expect(feed.size).toBe(0);
    expect(feed.stats.benign).toBe(1);
    expect(await readAllowTable(store)).toHaveLength(1);
    await store.close();
  });
});
