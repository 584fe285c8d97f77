import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { runTsChild, sourceUrl } from './childProcess.js';
import { storeContract } from './contract.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'unusual-city-sqlite-'));
  tempDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

storeContract('SQLite', () => {
  const file = path.join(tempDir(), 'state.sqlite');
  const store = SqliteStore.open(file);
  const opened: BaselineStore[] = [store];
  return Promise.resolve({
    store,
    openPeer: () => {
      const peer = SqliteStore.open(file);
      opened.push(peer);
      return Promise.resolve(peer);
    },
    writeForeignRow: (table, partition, rowKey, count, label) => {
      // Another tool writing the same schema; the JSON text holds the integer verbatim.
      const db = new Database(file);
      try {
        db.prepare('INSERT INTO rows (tbl, pk, rk, data, version) VALUES (?, ?, ?, ?, 7)').run(
          table,
          partition,
          rowKey,
          `{"count":${count},"label":${JSON.stringify(label)}}`,
        );
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
    },
  });
});

/** Child: commits one row per updatePartition, reporting each id on stdout only after the commit returned. */
const COMMIT_LOOP = `
const [storeUrl, file] = process.argv.slice(2);
const { SqliteStore } = await import(storeUrl);
const store = SqliteStore.open(file);
for (let i = 0; ; i++) {
  const id = process.pid + '-' + i;
  await store.updatePartition('alerts', 'crash', () => new Map([[id, { i, pad: 'x'.repeat(500) }]]));
  process.stdout.write(id + '\\n');
}
`;

/** Child: n read-modify-write increments of one row. */
const INCREMENT = `
const [storeUrl, file, n] = process.argv.slice(2);
const { SqliteStore } = await import(storeUrl);
const store = SqliteStore.open(file);
process.stdout.write('ready\\n');
for (let i = 0; i < Number(n); i++) {
  await store.updatePartition('tenant', 'cities', (cur) => {
    const count = cur.get('hot')?.count ?? 0;
    return new Map([['hot', { count: count + 1 }]]);
  });
}
await store.close();
process.stdout.write('done\\n');
`;

describe('SqliteStore', () => {
  it('runs with WAL, synchronous=FULL and a busy timeout on every connection', async () => {
    const store = SqliteStore.open(path.join(tempDir(), 'state.sqlite'));
    try {
      expect(store.durability()).toStrictEqual({ journalMode: 'wal', synchronous: 2, busyTimeoutMs: 10_000 });
    } finally {
      await store.close();
    }
  });

  it('openDirectory creates the directory and state.sqlite in it', async () => {
    const dir = path.join(tempDir(), 'nested', 'state');
    const store = SqliteStore.openDirectory(dir);
    await store.updatePartition('state', 'checkpoint', () => new Map([['main', { at: 1 }]]));
    await store.close();
    expect(existsSync(path.join(dir, 'state.sqlite'))).toBe(true);
    const reopened = SqliteStore.openDirectory(dir);
    expect(await reopened.readPartition('state', 'checkpoint')).toStrictEqual(new Map([['main', { at: 1 }]]));
    await reopened.close();
  });

  it('keeps every update a child process reported as committed when it is killed with SIGKILL', async () => {
    const file = path.join(tempDir(), 'state.sqlite');
    const reported: string[] = [];
    // Several kills at random moments, each time continuing on the same file.
    for (let round = 0; round < 3; round++) {
      const child = runTsChild(COMMIT_LOOP, [sourceUrl('shared/baseline/sqlite.ts'), file]);
      await child.waitForLines(1);
      await sleep(50 + Math.random() * 300);
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      expect(signal).toBe('SIGKILL');
      expect(child.lines.length).toBeGreaterThan(0);
      reported.push(...child.lines);
    }

    const store = SqliteStore.open(file);
    try {
      const rows = await store.readPartition('alerts', 'crash');
      const missing = reported.filter((id) => !rows.has(id));
      expect(missing).toStrictEqual([]);
      // At most one commit per child can have landed after its last report.
      expect(rows.size).toBeGreaterThanOrEqual(reported.length);
      expect(rows.size).toBeLessThanOrEqual(reported.length + 3);
    } finally {
      await store.close();
    }
    const db = new Database(file, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('serialises read-modify-write across processes sharing the file', async () => {
    const file = path.join(tempDir(), 'state.sqlite');
    await SqliteStore.open(file).close(); // create the schema once so both children start writing at once
    const children = [0, 1].map(() =>
      runTsChild(INCREMENT, [sourceUrl('shared/baseline/sqlite.ts'), file, '150']),
    );
    const results = await Promise.all(children.map((c) => c.exited));
    for (const [i, r] of results.entries()) {
      expect(r, r.stderr).toMatchObject({ code: 0 });
      expect(children[i]!.lines).toStrictEqual(['ready', 'done']);
    }

    const store = SqliteStore.open(file);
    expect((await store.readRows('tenant', 'cities', ['hot'])).get('hot')).toStrictEqual({ count: 300 });
    await store.close();
  });

  it('is atomic over more than 100 rows: a write failing midway leaves the partition untouched', async () => {
    const file = path.join(tempDir(), 'state.sqlite');
    const store = SqliteStore.open(file);
    const keys = Array.from({ length: 250 }, (_, i) => `r${i}`);
    await store.updatePartition('baselines', 'p', () => new Map(keys.map((k) => [k, { gen: 1 }])));
    // Make the 201st row write fail inside SQLite, after 200 rows of the same update were written.
    const db = new Database(file);
    db.exec(`CREATE TRIGGER fail_r200 BEFORE UPDATE ON rows WHEN NEW.rk = 'r200'
             BEGIN SELECT RAISE(ABORT, 'injected write failure'); END`);
    db.close();

    const update = store.updatePartition('baselines', 'p', () => new Map(keys.map((k) => [k, { gen: 2 }])));
    await expect(update).rejects.toThrow(/injected write failure/);
    const rows = await store.readPartition('baselines', 'p');
    expect(rows.size).toBe(250);
    expect([...rows.values()].every((e) => e.gen === 1)).toBe(true);
    await store.close();
  });
});
