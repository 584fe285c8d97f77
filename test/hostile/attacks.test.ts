/**
 * Issue 14, points 1 and 2: no input value can stop detection for others. The attacks of test/hostile/scenario.ts
 * replayed through the SQLite store and the real Table Storage adapter (Azurite): the replay completes, both
 * attackers are alerted, everyone else gets exactly the clean run's alerts, and every alert row stays small.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { ALERT_BUDGETS } from '../../shared/config/budgets.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { type Attack, ATTACKERS, bystanders, ISSUE_ATTACK, rowBytes, run, scenario } from './scenario.js';

let azurite: AzuriteTables;
let tables = 0;
beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => azurite?.stop());

/** Azurite is slow: the same attacks with 120 operations in dev2's slot (an uncut alert would be ~130 KB). */
const SMALLER: Attack = { ...ISSUE_ATTACK, manyOperations: 120 };

const backends: [string, Attack, () => Promise<BaselineStore>][] = [
  ['SQLite', ISSUE_ATTACK, () => Promise.resolve(SqliteStore.open(':memory:'))],
  [
    'Table Storage (Azurite)',
    SMALLER,
    () =>
      TableStorageStore.open({
        endpoint: azurite.endpoint,
        credential: azurite.credential,
        tablePrefix: `hostile${++tables}`,
        allowInsecureConnection: true,
      }),
  ],
];

describe.each(backends)('the issue 14 attacks through %s', (_name, attack, open) => {
  it('complete, alert both attackers, leave everyone else the clean run alerts, and keep rows small', async () => {
    const events = scenario(attack);
    const clean = await run(await open(), events.clean);
    const attacked = await run(await open(), events.attacked);

    const callers = new Set(attacked.alerts.map((a) => a.Caller));
    for (const attacker of ATTACKERS) expect(callers, `${attacker} is alerted`).toContain(attacker);
    expect(bystanders(clean.alerts).size).toBeGreaterThan(0);
    expect(bystanders(attacked.alerts)).toEqual(bystanders(clean.alerts));
    expect(attacked.summary.ticks).toBe(clean.summary.ticks);
    for (const a of attacked.alerts) {
      expect(rowBytes(a), `alert of ${a.Caller.slice(0, 20)}`).toBeLessThanOrEqual(ALERT_BUDGETS.rowBytes);
    }
    // The lists were cut with a marker; the top finding stays first.
    const many = attacked.alerts.find((a) => a.Caller === 'dev2@contoso.com')!;
    expect(many.Operations.at(-1)).toMatch(/^…and \d+ more$/);
    expect(many.Explanation.omitted).toMatch(/^…and \d+ more$/);
    expect(many.Explanation.operations[0]!.score).toBe(many.AnomalyScore);
  }, 600_000);
});
