/**
 * The lean entity query (shared/baseline/tableQuery.ts) against the SDK's listEntities on the same Azurite
 * table: the same entities, property for property and type for type, over several pages; the same errors.
 */
import { randomBytes } from 'node:crypto';

import { odata, TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { queryEntities } from '../../shared/baseline/tableQuery.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';

let azurite: AzuriteTables;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

const client = (table: string): TableClient =>
  new TableClient(azurite.endpoint, table, azurite.credential, { allowInsecureConnection: true });

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('queryEntities (one JSON.parse) and TableClient.listEntities', () => {
  it('yield the same entities, of every Edm type, across pages', async () => {
    const table = `q${randomBytes(5).toString('hex')}`;
    const c = client(table);
    await c.createTable();
    const kinds = [
      { s: 'text', n: 3, d: 2.5, b: true },
      { big: 9007199254740993n, when: new Date('2026-11-02T08:00:00.123Z') },
      {
        id: { value: '6f9619ff-8b86-d011-b42d-00c04fc964ff', type: 'Guid' },
        bytes: new Uint8Array([0, 1, 254]),
      },
      { whole: { value: '4', type: 'Double' }, i32: { value: '7', type: 'Int32' }, empty: '' },
      { unicode: 'Zürich – 東京 \u{1F600}', neg: -0.125, f: false },
    ];
    // 1,100 rows in one partition: Azurite pages at 1,000, so the continuation headers are used.
    for (let start = 0; start < 1100; start += 100) {
      await c.submitTransaction(
        Array.from({ length: 100 }, (_, i) => {
          const n = start + i;
          return [
            'create',
            { partitionKey: 'p', rowKey: `r${String(n).padStart(5, '0')}`, ...kinds[n % 5] },
          ] as ['create', { partitionKey: string; rowKey: string }];
        }),
      );
    }
    await c.createEntity({ partitionKey: 'other', rowKey: 'x', s: 'not in the filter' });
    const filter = odata`PartitionKey eq ${'p'}`;
    const sdk = await collect(c.listEntities<Record<string, unknown>>({ queryOptions: { filter } }));
    const lean = await collect(queryEntities(c, filter, true));
    expect(sdk).toHaveLength(1100);
    expect(lean).toEqual(sdk);
    // Types, not only values: bigint, Date, Uint8Array and the Guid object as the SDK gives them.
    expect(typeof lean[1]!.big).toBe('bigint');
    expect(lean[1]!.when).toBeInstanceOf(Date);
    expect(lean[2]!.bytes).toBeInstanceOf(Uint8Array);
    expect(lean[2]!.id).toEqual({ value: '6f9619ff-8b86-d011-b42d-00c04fc964ff', type: 'Guid' });
    expect(lean.map((e) => e.etag)).toEqual(sdk.map((e) => e.etag));
    expect(lean[0]!.etag).toMatch(/^W\/"/);
  });

  it('fail as the SDK does: the status and the service code of the error', async () => {
    const c = client(`missing${randomBytes(4).toString('hex')}`);
    const filter = odata`PartitionKey eq ${'p'}`;
    const sdk = await collect(c.listEntities({ queryOptions: { filter } })).catch((e: unknown) => e);
    const lean = await collect(queryEntities(c, filter, true)).catch((e: unknown) => e);
    expect(sdk).toMatchObject({ statusCode: 404 });
    expect(lean).toMatchObject({ name: 'RestError', statusCode: 404 });
    const code = (e: unknown) => (e as { code?: string; details?: { errorCode?: string } }).code;
    expect(code(lean)).toBe('TableNotFound');
    expect((lean as { details?: { errorCode?: string } }).details?.errorCode).toBe(
      (sdk as { details?: { errorCode?: string } }).details?.errorCode ?? code(sdk),
    );
  });

  it('parse each page once: the pipeline has already parsed it', async () => {
    const table = `q${randomBytes(5).toString('hex')}`;
    const c = client(table);
    await c.createTable();
    for (let i = 0; i < 3; i++)
      await c.createEntity({ partitionKey: 'p', rowKey: `r${i}`, marker: 'parse-once' });
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const lean = await collect(queryEntities(c, odata`PartitionKey eq ${'p'}`, true));
      expect(lean).toHaveLength(3);
      const pages = parse.mock.calls.filter(
        ([text]) => typeof text === 'string' && text.includes('parse-once'),
      );
      expect(pages).toHaveLength(1);
    } finally {
      parse.mockRestore();
    }
  });
});
