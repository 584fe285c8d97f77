/**
 * The lean transaction writer (shared/baseline/tableTransaction.ts) against the SDK's submitTransaction: the same
 * request (body byte for byte but for the random boundaries, the same headers), and on the same Azurite the same
 * outcome — rows and ETags on success; on a stale ETag, an existing row or a missing row the same status, service
 * code and message, naming the same operation, with nothing written.
 */
import { randomBytes } from 'node:crypto';

import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { TableClient, type TransactionAction } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MAX_ENTITY_BYTES, MAX_STRING_LENGTH } from '../../shared/baseline/entity.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import {
  type BatchOperation,
  type BatchValue,
  entityJson,
  submitBatch,
} from '../../shared/baseline/tableTransaction.js';
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

async function newTable(): Promise<TableClient> {
  const c = client(`x${randomBytes(5).toString('hex')}`);
  await c.createTable();
  return c;
}

type Props = Record<string, BatchValue>;
const lean = (partitionKey: string, rowKey: string, props: Props = {}) => ({
  partitionKey,
  rowKey,
  json: entityJson(partitionKey, rowKey, props),
});
const sdk = (partitionKey: string, rowKey: string, props: Props = {}) => ({ partitionKey, rowKey, ...props });

/** Keys the URL and OData literals must carry intact (Table Storage forbids only / \ # ? and controls). */
const P = "p'1 é+&=:@$,;()*~";
const KEYS = ["a'b", 'ü ñ 漢字 😀', 'x+y&z=1', '!21 (x) ~'];

/** The same operations in both forms. */
function operations(etags: Record<string, string>): { lean: BatchOperation[]; sdk: TransactionAction[] } {
  const props: Props = { n: { value: '2.5', type: 'Double' }, s: 'é "quoted" \\ \u0001', b: true, i: 3 };
  return {
    lean: [
      { kind: 'create', entity: lean(P, KEYS[0]!, props) },
      { kind: 'update', entity: lean(P, KEYS[1]!, props), mode: 'Replace', etag: etags[KEYS[1]!]! },
      { kind: 'update', entity: lean(P, KEYS[2]!, { b: false }), mode: 'Merge', etag: etags[KEYS[2]!]! },
      { kind: 'upsert', entity: lean(P, 'u1', props), mode: 'Replace' },
      { kind: 'upsert', entity: lean(P, 'u2', props), mode: 'Merge' },
      { kind: 'delete', partitionKey: P, rowKey: KEYS[3]!, etag: etags[KEYS[3]!]! },
    ],
    sdk: [
      ['create', sdk(P, KEYS[0]!, props)],
      ['update', sdk(P, KEYS[1]!, props), 'Replace', { etag: etags[KEYS[1]!]! }],
      ['update', sdk(P, KEYS[2]!, { b: false }), 'Merge', { etag: etags[KEYS[2]!]! }],
      ['upsert', sdk(P, 'u1', props), 'Replace'],
      ['upsert', sdk(P, 'u2', props), 'Merge'],
      // The SDK's delete action takes no ETag and sends `If-Match: *`; the store's old policy rewrote it.
      ['delete', { partitionKey: P, rowKey: KEYS[3]! }],
    ],
  };
}

interface Captured {
  body: string;
  headers: Record<string, string>;
}

/** Records the `$batch` request a client sends; `stop` answers it without reaching the service. */
function capture(c: TableClient, stop: boolean): Captured[] {
  const seen: Captured[] = [];
  const policy: PipelinePolicy = {
    name: `capture${randomBytes(3).toString('hex')}`,
    async sendRequest(request, next) {
      if (!request.url.endsWith('$batch')) return next(request);
      const body = typeof request.body === 'string' ? request.body : '';
      const batch = /--batch_([0-9a-f-]+)/.exec(body)?.[1] ?? '';
      const changeset = /boundary=changeset_([0-9a-f-]+)/.exec(body)?.[1] ?? '';
      expect(batch).not.toBe('');
      expect(changeset).not.toBe('');
      const normalise = (s: string) => s.split(batch).join('B').split(changeset).join('C');
      const headers: Record<string, string> = {};
      for (const [name, value] of request.headers) {
        if (!['x-ms-client-request-id', 'x-ms-date', 'authorization'].includes(name.toLowerCase())) {
          headers[name.toLowerCase()] = normalise(value);
        }
      }
      seen.push({ body: normalise(body), headers });
      if (!stop) return next(request);
      return { request, status: 400, headers: request.headers, bodyAsText: '' }; // not retried
    },
  };
  c.pipeline.addPolicy(policy, { afterPhase: 'Sign' });
  return seen;
}

/** Seeds rows KEYS[1..3] and returns their ETags. */
async function seed(c: TableClient): Promise<Record<string, string>> {
  const etags: Record<string, string> = {};
  for (const key of KEYS.slice(1)) {
    etags[key] = (await c.createEntity({ partitionKey: P, rowKey: key, old: 'yes' })).etag!;
  }
  return etags;
}

async function rows(c: TableClient): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const e of c.listEntities()) {
    const { etag, timestamp, ...rest } = e;
    out.push({ ...rest, etag: typeof etag, timestamp: typeof timestamp });
  }
  return out.sort((a, b) => String(a.rowKey).localeCompare(String(b.rowKey)));
}

async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as { statusCode?: number; code?: string; message?: string; operationIndex?: number } | undefined;
  expect(err, 'the transaction should fail').toBeDefined();
  return {
    statusCode: err?.statusCode,
    code: err?.code,
    // The message ends with the service's request id and time.
    message: err?.message?.split('\nRequestId:')[0],
  };
}

describe('submitBatch (a hand-built $batch) and TableClient.submitTransaction', () => {
  it('send the same request: body byte for byte, headers', async () => {
    const c = client('sametable');
    const sdkSeen = capture(c, true);
    const leanClient = client('sametable');
    const leanSeen = capture(leanClient, true);
    const ops = operations({ [KEYS[1]!]: 'W/"e1"', [KEYS[2]!]: 'W/"e2"', [KEYS[3]!]: '*' });
    await expect(c.submitTransaction(ops.sdk)).rejects.toThrow();
    await expect(submitBatch(leanClient, ops.lean, true)).rejects.toThrow();
    expect(sdkSeen).toHaveLength(1);
    expect(leanSeen).toHaveLength(1);
    expect(leanSeen[0]!.body).toBe(sdkSeen[0]!.body);
    expect(leanSeen[0]!.headers).toEqual(sdkSeen[0]!.headers);
  });

  it('write the same rows and return the service’s ETags', async () => {
    const [a, b] = [await newTable(), await newTable()];
    const [etagsA, etagsB] = [await seed(a), await seed(b)];
    await a.submitTransaction(operations(etagsA).sdk.slice(0, 5));
    const result = await submitBatch(b, operations(etagsB).lean.slice(0, 5), true);
    expect(await rows(b)).toEqual(await rows(a));
    expect(result.operations.map((o) => o.status)).toEqual([204, 204, 204, 204, 204]);
    for (const [i, key] of [KEYS[0]!, KEYS[1]!, KEYS[2]!, 'u1', 'u2'].entries()) {
      expect(result.operations[i]!.etag).toBe((await b.getEntity(P, key)).etag);
    }
    // The conditional delete of a row still as read.
    const deleted = await submitBatch(b, [operations(etagsB).lean[5]!], true);
    expect(deleted.operations).toEqual([{ status: 204 }]);
    expect((await rows(b)).map((r) => r.rowKey)).not.toContain(KEYS[3]);
  });

  it('fail as the SDK does on a stale ETag (412), naming the same operation, and write nothing', async () => {
    const [a, b] = [await newTable(), await newTable()];
    const [etagsA, etagsB] = [await seed(a), await seed(b)];
    for (const c of [a, b]) await c.updateEntity({ partitionKey: P, rowKey: KEYS[1]!, old: 'no' }, 'Replace');
    const expected = await failure(a.submitTransaction(operations(etagsA).sdk.slice(0, 2)));
    const actual = await failure(submitBatch(b, operations(etagsB).lean.slice(0, 2), true));
    expect(actual).toEqual(expected);
    expect(actual).toMatchObject({ statusCode: 412, code: 'UpdateConditionNotSatisfied', message: /^1:/ });
    const err = await submitBatch(b, operations(etagsB).lean.slice(0, 2), true).catch((e: unknown) => e);
    expect((err as { operationIndex?: number }).operationIndex).toBe(1);
    expect(await rows(b)).toEqual(await rows(a));
    expect((await rows(b)).map((r) => r.rowKey)).not.toContain(KEYS[0]);
  });

  it('fail as the SDK does on a create of an existing row (409) and a delete of a missing one (404)', async () => {
    const [a, b] = [await newTable(), await newTable()];
    await Promise.all([seed(a), seed(b)]);
    const create = { kind: 'create', entity: lean(P, KEYS[2]!, { x: 'y' }) } as const;
    const first = { kind: 'create', entity: lean(P, 'new', {}) } as const;
    const conflict = await failure(submitBatch(b, [first, create], true));
    expect(conflict).toEqual(
      await failure(
        a.submitTransaction([
          ['create', sdk(P, 'new')],
          ['create', sdk(P, KEYS[2]!, { x: 'y' })],
        ]),
      ),
    );
    expect(conflict).toMatchObject({ statusCode: 409, code: 'EntityAlreadyExists', message: /^1:/ });
    const missing = await failure(
      submitBatch(b, [{ kind: 'delete', partitionKey: P, rowKey: 'absent', etag: '*' }], true),
    );
    expect(missing).toEqual(
      await failure(a.submitTransaction([['delete', { partitionKey: P, rowKey: 'absent' }]])),
    );
    expect(missing).toMatchObject({ statusCode: 404, code: 'ResourceNotFound', message: /^0:/ });
    expect(await rows(b)).toEqual(await rows(a));
  });

  it('fail as the SDK does when the whole batch is refused (a missing table)', async () => {
    const name = `missing${randomBytes(4).toString('hex')}`;
    const expected = await failure(client(name).submitTransaction([['create', sdk(P, 'r')]]));
    const actual = await failure(submitBatch(client(name), [{ kind: 'create', entity: lean(P, 'r') }], true));
    expect(actual).toEqual(expected);
    expect(actual.statusCode).toBe(404);
  });
});

describe('TableStorageStore through the lean writer', () => {
  it('stores a row at the size budget and keys that need escaping, and reads them back', async () => {
    const store = await TableStorageStore.open({
      endpoint: azurite.endpoint,
      credential: azurite.credential,
      tablePrefix: `t${randomBytes(6).toString('hex')}`,
      allowInsecureConnection: true,
    });
    // 15 strings of 32 Ki characters, two of them not ASCII (UTF-8 grows, the service's size formula does not):
    // just under the entity limit by that formula.
    const big: Record<string, string | number> = {};
    for (let i = 0; i < 15; i++) big[`p${i}`] = (i < 2 ? 'é' : 'x').repeat(MAX_STRING_LENGTH);
    big.count = 0.1;
    const size = Object.entries(big).reduce(
      (sum, [k, v]) => sum + 8 + 2 * k.length + (typeof v === 'string' ? 4 + 2 * v.length : 8),
      0,
    );
    expect(size).toBeGreaterThan(MAX_ENTITY_BYTES * 0.93);
    expect(size).toBeLessThanOrEqual(MAX_ENTITY_BYTES);
    const partition = "Microsoft.Compute/virtualMachines/write?x#y%z'!é";
    const keys = ['a/b\\c', "it's 100% ü!", 'plain', ' spaces and + & = '];
    await store.updatePartition('baselines', partition, () => new Map(keys.map((k) => [k, big])));
    const read = await store.readPartition('baselines', partition);
    expect([...read.keys()].sort()).toEqual([...keys].sort());
    for (const k of keys) expect(read.get(k)).toEqual(big);
    // Updates (conditioned on the ETags read) and deletes of the same keys go through the URL.
    await store.updatePartition(
      'baselines',
      partition,
      (rows) =>
        new Map([...rows.keys()].map((k) => [k, k === keys[0] || k === keys[2] ? null : { count: 2 }])),
    );
    const after = await store.readPartition('baselines', partition);
    expect(Object.fromEntries(after)).toEqual({ [keys[1]!]: { count: 2 }, [keys[3]!]: { count: 2 } });
    await store.close();
  });
});
