/**
 * Speed work must not move the model (issue 16): the demo tenant and one seed of the scenario suite, replayed by
 * the compiled CLI with `--state`, give exactly the alerts and the stored baselines recorded in
 * test/fixtures/identity.json — every alert column and every row of every table, as SHA-256 over a canonical
 * dump (rows sorted by table, partition and row key, properties sorted by name).
 *
 * The fixture was recorded before the performance changes of issue 16. A deliberate model change records it again:
 *   UC_RECORD_IDENTITY=1 npx vitest run test/scale/identity.test.ts
 * and says so in its commit.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { writeJsonLines } from '../../shared/activity/formats.js';
import { writeActivityJsonl } from '../../shared/demo/suite/activity.js';
import { generateSuiteTenant } from '../../shared/demo/suite/suite.js';
import { generateTenant } from '../../shared/demo/tenant.js';
import { spawnCli } from '../support/builtCli.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/identity.json', import.meta.url));
const RECORD = process.env.UC_RECORD_IDENTITY === '1';

interface Fingerprint {
  alerts: { count: number; sha256: string };
  tables: Record<string, { rows: number; sha256: string }>;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Alerts as the CLI wrote them, each with its keys sorted, in file order (the order is part of the contract). */
async function alertsPrint(file: string): Promise<Fingerprint['alerts']> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
  const canon = lines.map((l) => canonical(JSON.parse(l) as unknown));
  return { count: lines.length, sha256: sha(canon.join('\n')) };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * Every row of the replay's state.sqlite (one SQLite table holds the store's tables), grouped by store table and
 * sorted by partition and row key; the entity's properties parsed, so their order does not count. The row
 * version (the store's ETag) is left out: it counts writes, not what is stored.
 */
function statePrint(stateDir: string): Fingerprint['tables'] {
  const db = new Database(path.join(stateDir, 'state.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('select tbl, pk, rk, data from rows order by tbl, pk, rk').all() as {
      tbl: string;
      pk: string;
      rk: string;
      data: string;
    }[];
    const byTable = new Map<string, string[]>();
    for (const r of rows) {
      const canon = canonical([r.pk, r.rk, JSON.parse(r.data) as unknown]);
      byTable.set(r.tbl, [...(byTable.get(r.tbl) ?? []), canon]);
    }
    const out: Fingerprint['tables'] = {};
    for (const [tbl, list] of byTable) out[tbl] = { rows: list.length, sha256: sha(list.join('\n')) };
    return out;
  } finally {
    db.close();
  }
}

let tmp = '';
const seen: Record<string, Fingerprint> = {};

async function replayWithState(name: string, activity: string): Promise<Fingerprint> {
  const state = path.join(tmp, `${name}-state`);
  const alerts = path.join(tmp, `${name}-alerts.jsonl`);
  const { result } = spawnCli(['replay', activity, '--state', state, '--out', alerts, '--quiet'], {
    cwd: tmp,
    timeoutMs: 240_000,
  });
  const r = await result;
  expect(r.stderr, r.stderr).not.toMatch(/Error|error:/);
  expect(r.code).toBe(0);
  return { alerts: await alertsPrint(alerts), tables: statePrint(state) };
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'uc-identity-'));
});

afterAll(async () => {
  if (RECORD) await writeFile(FIXTURE, JSON.stringify(seen, null, 2) + '\n');
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

async function expected(name: string): Promise<Fingerprint | undefined> {
  if (RECORD) return undefined;
  const want = (JSON.parse(await readFile(FIXTURE, 'utf8')) as Record<string, Fingerprint>)[name];
  if (want === undefined) throw new Error(`${FIXTURE} has no ${name}: record it (UC_RECORD_IDENTITY=1)`);
  return want;
}

describe('the model before and after the speed work: identical alerts and baselines', () => {
  test('the demo tenant (21 days)', async () => {
    const file = path.join(tmp, 'demo.jsonl');
    await writeJsonLines(generateTenant(21).events, file);
    const got = (seen.demo = await replayWithState('demo', file));
    expect(got.alerts.count).toBeGreaterThan(0);
    const want = await expected('demo');
    if (want) expect(got).toEqual(want);
  }, 300_000);

  test('the scenario suite, seed 1 (14 days)', async () => {
    const t = generateSuiteTenant(1, 14);
    const file = path.join(tmp, 'suite.jsonl');
    await writeActivityJsonl(t.events, t.tokenIps, file);
    const got = (seen.suite = await replayWithState('suite', file));
    expect(got.alerts.count).toBeGreaterThan(0);
    const want = await expected('suite');
    if (want) expect(got).toEqual(want);
  }, 300_000);
});
