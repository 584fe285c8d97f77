/**
 * Issue 14: no input value can stop detection for others. Property test over operation names, callers and
 * explanation sizes at and beyond every limit (names up to the reader's 512/256 characters made of `"`, `\`,
 * non-ASCII and bidi characters; up to 100 callers of a city; findings past the alert's budgets), through the
 * SQLite store and the real Table Storage adapter (Azurite): the replay completes, both attackers are alerted,
 * every other caller's alerts are exactly those of the clean run, and every alert row stays within its budget.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { ALERT_BUDGETS } from '../../shared/config/budgets.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';
import { type Attack, ATTACKERS, bystanders, rowBytes, run, scenario } from './scenario.js';

const HOSTILE_CHARS = ['"', '\\', '"', '\\', 'é', '\u202e', '€', '𝔘', 'a', '/'];
const hostileText = (min: number, max: number) =>
  fc.array(fc.constantFrom(...HOSTILE_CHARS), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

/** Operation names of at most 512 characters, callers of at most 256: the longest the readers accept. */
const attack = (maxOperations: number): fc.Arbitrary<Attack> =>
  fc.record({
    longOperations: fc
      .array(hostileText(1, 480), { minLength: 1, maxLength: 70 })
      .map((names) => names.map((n, i) => `MICROSOFT.X/${i}/${n}`.slice(0, 512))),
    manyOperations: fc.integer({ min: 1, max: maxOperations }),
    callers: fc
      .array(hostileText(1, 240), { minLength: 0, maxLength: 100 })
      .map((names) => names.map((n, i) => `${i}-${n}`.slice(0, 256))),
  });

let azurite: AzuriteTables;
let tables = 0;
beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => azurite?.stop());

async function holds(a: Attack, open: () => Promise<BaselineStore>): Promise<void> {
  const events = scenario(a);
  const clean = await run(await open(), events.clean);
  const attacked = await run(await open(), events.attacked);
  const callers = new Set(attacked.alerts.map((x) => x.Caller));
  for (const attacker of ATTACKERS) expect(callers).toContain(attacker);
  expect(bystanders(attacked.alerts)).toEqual(bystanders(clean.alerts));
  for (const x of attacked.alerts) expect(rowBytes(x)).toBeLessThanOrEqual(ALERT_BUDGETS.rowBytes);
}

describe('no input value can stop detection for others', () => {
  it('SQLite: any operation names, callers and explanation sizes', async () => {
    await fc.assert(
      fc.asyncProperty(attack(300), (a) => holds(a, () => Promise.resolve(SqliteStore.open(':memory:')))),
      { numRuns: 4, endOnFailure: true },
    );
  }, 600_000);

  it('Table Storage (Azurite): any operation names, callers and explanation sizes', async () => {
    await fc.assert(
      fc.asyncProperty(attack(80), (a) =>
        holds(a, () =>
          TableStorageStore.open({
            endpoint: azurite.endpoint,
            credential: azurite.credential,
            tablePrefix: `prop${++tables}`,
            allowInsecureConnection: true,
          }),
        ),
      ),
      { numRuns: 2, endOnFailure: true },
    );
  }, 900_000);
});
