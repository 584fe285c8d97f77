/**
 * Issue 14, point 6: exceptions sent to telemetry carry no callers, IPs or keys unless
 * UC_TELEMETRY_INCLUDE_IDENTITIES allows identities (secrets never), and storage errors name partitions by tag,
 * never by key — through both store adapters (SQLite, Table Storage on Azurite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { BaselineStore } from '../../shared/baseline/store.js';
import { TableStorageStore } from '../../shared/baseline/tableStorage.js';
import { makeTelemetry, type TelemetryClientLike } from '../../shared/runtime/telemetry.js';
import { type AzuriteTables, startAzurite } from '../support/azurite.js';

const CALLER = 'eve.attacker@evil.example';
const SP = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const IP4 = '203.0.113.77';
const IP6 = '2001:db8:85a3::8a2e:370:7334';
const KEY = 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8xMjM0NQ==';

function capture(includeIdentities: boolean) {
  const sent: string[] = [];
  const client: TelemetryClientLike = {
    trackEvent: () => undefined,
    trackMetric: () => undefined,
    trackException: (t) =>
      sent.push(JSON.stringify({ message: t.exception.message, stack: t.exception.stack, p: t.properties })),
    flush: () => undefined,
  };
  return { telemetry: makeTelemetry(client, includeIdentities), text: () => sent.join('\n') };
}

const hostileError = (): Error =>
  new Error(
    `Cannot store alerts/"${CALLER}" for ${SP} from ${IP4} and [${IP6}]; ` +
      `DefaultEndpointsProtocol=https;AccountName=uc;AccountKey=${KEY};EndpointSuffix=core.windows.net ` +
      `Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJldmUifQ.c2lnbmF0dXJl url?sig=abcDEF123%3D&se=2027`,
    { cause: new Error(`row of ${CALLER}`) },
  );

describe('telemetry exceptions', () => {
  it('carry no caller, object id, IP or key by default; identities only when allowed, keys never', () => {
    const off = capture(false);
    off.telemetry.exception(hostileError(), { stage: `tick of ${CALLER}` });
    for (const secret of [CALLER, SP, IP4, IP6, KEY, 'eyJhbGciOiJIUzI1NiJ9', 'abcDEF123']) {
      expect(off.text()).not.toContain(secret);
    }
    expect(off.text()).toContain('Cannot store alerts');

    const on = capture(true);
    on.telemetry.exception(hostileError(), {});
    expect(on.text()).toContain(CALLER);
    expect(on.text()).toContain(IP4);
    for (const secret of [KEY, 'eyJhbGciOiJIUzI1NiJ9', 'abcDEF123']) expect(on.text()).not.toContain(secret);
  });
});

let azurite: AzuriteTables;
beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => azurite?.stop());

describe('storage errors name partitions by tag, not by key', () => {
  const failures = async (store: BaselineStore): Promise<string[]> => {
    const messages: string[] = [];
    const partition = `caller:${CALLER}`;
    // A row no store can hold (our validation), and a conflict-free write of a non-finite number.
    await store
      .updatePartition('tenant', partition, () => new Map([[CALLER, { n: Number.NaN }]]))
      .catch((e: Error) => messages.push(e.message));
    return messages;
  };

  it('SQLite and Table Storage: InvalidEntityError', async () => {
    const sqlite = SqliteStore.open(':memory:');
    const table = await TableStorageStore.open({
      endpoint: azurite.endpoint,
      credential: azurite.credential,
      tablePrefix: 'scrub',
      allowInsecureConnection: true,
    });
    for (const store of [sqlite, table]) {
      const messages = await failures(store);
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatch(/^Cannot store tenant\/#[0-9a-f]{12}\/#[0-9a-f]{12}: /);
      expect(messages.join('\n')).not.toContain('evil');
    }
  });

  it('Table Storage: an error from the service (the table is missing)', async () => {
    const store = await TableStorageStore.open({
      endpoint: azurite.endpoint,
      credential: azurite.credential,
      tablePrefix: 'missing',
      allowInsecureConnection: true,
      createTables: false,
    });
    const error = await store.readPartition('tenant', `caller:${CALLER}`).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /Table Storage failed to read missingTenant\/#[0-9a-f]{12} \(HTTP 404/,
    );
    expect((error as Error).message).not.toContain('evil');
    const rows = await store.readRows('tenant', `caller:${CALLER}`, [CALLER]).catch((e: Error) => e);
    expect((rows as Error).message).not.toContain('evil');
  });
});
