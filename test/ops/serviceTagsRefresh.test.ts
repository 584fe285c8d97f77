/**
 * refreshServiceTags against a local https ARM (the real Service Tags protocol: bearer token for the endpoint,
 * api-version, nextLink pages, ARM errors), the production credential chain answered by the local managed-identity
 * endpoint, and Azurite's Blob service; then the runs' provider reading the blob by its ETag.
 */
import type { InvocationContext, LogLevel } from '@azure/functions';
import type { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeServiceTagsRefreshHandler } from '../../functions/refreshServiceTags.js';
import { loadSettings } from '../../shared/config/settings.js';
import { AzureRangesProvider } from '../../shared/geo/azureRangesProvider.js';
import { SAMPLE_SERVICE_TAGS } from '../../shared/geo/azureSample.js';
import { blobServiceFromSettings } from '../../shared/runtime/clients.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import { type FakeArm, startFakeArm } from '../support/fakeArm.js';
import { type FakeIdentity, startFakeIdentity, tokenFor } from '../support/identity.js';
import { invocationContext, timer } from '../support/invocation.js';

const SUBSCRIPTION = '6f1d2c3b-4a59-4e68-9d7c-0b1a2c3d4e5f';

function invocation(): { context: InvocationContext; logs: { level: LogLevel; text: string }[] } {
  const logs: { level: LogLevel; text: string }[] = [];
  const context = invocationContext('refreshServiceTags', 'inv-tags', (level, text) =>
    logs.push({ level, text }),
  );
  return { context, logs };
}

describe('refreshServiceTags (local ARM, managed identity, Azurite)', () => {
  let azurite: AzuriteBlob;
  let arm: FakeArm;
  let identity: FakeIdentity;
  let restore: () => void;
  let blobs: BlobServiceClient;
  const env = (blob: string): Record<string, string> => ({
    UC_SERVICE_TAGS_BLOB: `geoip/${blob}`,
    UC_SERVICE_TAGS_SUBSCRIPTION_ID: SUBSCRIPTION,
    UC_ARM_ENDPOINT: arm.endpoint,
    UC_STORAGE_CONNECTION_STRING: azurite.connectionString,
  });
  const run = async (blob: string) => {
    const { context, logs } = invocation();
    const handler = makeServiceTagsRefreshHandler({ env: env(blob), tlsCa: arm.ca });
    const error = await handler(timer(), context).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    return { error, logs };
  };
  const read = async (blob: string) => {
    const client = blobs.getContainerClient('geoip').getBlobClient(blob);
    return {
      text: (await client.downloadToBuffer()).toString('utf8'),
      etag: (await client.getProperties()).etag,
    };
  };

  beforeAll(async () => {
    [azurite, arm, identity] = await Promise.all([startAzuriteBlob(), startFakeArm(), startFakeIdentity()]);
    restore = identity.install();
    blobs = blobServiceFromSettings(
      loadSettings({ UC_STORAGE_CONNECTION_STRING: azurite.connectionString }),
      {},
    )!;
  });
  afterAll(async () => {
    restore?.();
    await Promise.all([azurite?.stop(), arm?.close(), identity?.close()]);
  });

  it('good: reads both pages with the identity, stores the document, then reports unchanged', async () => {
    arm.mode = 'good';
    arm.requests.length = 0;
    const first = await run('good.json');
    expect(first.error).toBeUndefined();
    expect(first.logs.at(-1)).toEqual({
      level: 'information',
      text: 'refreshServiceTags: updated geoip/good.json (change number 63, 25 regions, 154 blocks).',
    });
    expect(arm.requests.map((r) => r.url)).toEqual([
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Network/locations/westeurope/serviceTags?api-version=2025-05-01`,
      `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Network/locations/westeurope/serviceTags?api-version=2025-05-01&$skipToken=2`,
    ]);
    expect(new Set(arm.requests.map((r) => r.authorization))).toEqual(
      new Set([`Bearer ${tokenFor(arm.endpoint)}`]),
    );
    const stored = JSON.parse((await read('good.json')).text) as { changeNumber: string; values: unknown[] };
    expect(stored.changeNumber).toBe('63');
    expect(stored.values).toHaveLength((SAMPLE_SERVICE_TAGS as { values: unknown[] }).values.length);
    expect(stored).not.toHaveProperty('nextLink');

    const before = (await read('good.json')).etag;
    const second = await run('good.json');
    expect(second.logs.at(-1)?.text).toBe(
      'refreshServiceTags: unchanged geoip/good.json (change number 63, 25 regions, 154 blocks).',
    );
    expect((await read('good.json')).etag).toBe(before);
  });

  it('403: fails the invocation naming the role to grant, and writes nothing', async () => {
    arm.mode = 'forbidden';
    const { error, logs } = await run('forbidden.json');
    expect(error?.message).toMatch(
      /^refreshServiceTags failed, blob left as it was: ARM answered HTTP 403 \(AuthorizationFailed: .*serviceTags\/read.*\): the function's identity may not read the Service Tags of subscription 6f1d2c3b-4a59-4e68-9d7c-0b1a2c3d4e5f\. Grant it the custom role "unusual-city Service Tags Reader"/,
    );
    expect(logs.filter((l) => l.level === 'error').map((l) => l.text)).toEqual([error!.message]);
    await expect(blobs.getContainerClient('geoip').getBlobClient('forbidden.json').exists()).resolves.toBe(
      false,
    );
  });

  it('a nextLink to another host is not followed (the token stays with ARM)', async () => {
    arm.mode = 'foreign-next';
    arm.requests.length = 0;
    const { error } = await run('foreign.json');
    expect(error?.message).toBe(
      `refreshServiceTags failed, blob left as it was: nextLink leaves ${arm.endpoint} (https://management.example.invalid): not followed`,
    );
    expect(arm.requests).toHaveLength(1);
    arm.mode = 'good';
  });

  it('malformed: fails and keeps the previous document in the blob', async () => {
    arm.mode = 'good';
    arm.changeNumber = '63';
    await run('kept.json');
    const before = await read('kept.json');
    arm.mode = 'malformed';
    arm.changeNumber = '64';
    const { error, logs } = await run('kept.json');
    expect(logs.filter((l) => l.level === 'error').map((l) => l.text)).toEqual([error?.message]);
    expect(error?.message).toMatch(
      /blob left as it was: malformed service tags \(the ARM serviceTags answer: values\[\d+\] \(Broken\.Tag\) has no addressPrefixes list of strings;/,
    );
    expect(await read('kept.json')).toEqual(before);
    arm.mode = 'good';
  });

  it('the runs read the blob by its ETag, keep the last good document, and say when it is missing', async () => {
    const settings = loadSettings(env('runs.json'));
    expect(AzureRangesProvider.fromSettings({ ...settings, UC_AZURE_RANGES: 'off' }, blobs)).toBeUndefined();
    const provider = AzureRangesProvider.fromSettings(settings, blobs)!;
    const lines: string[] = [];
    const log = (level: string, text: string) => lines.push(`${level}: ${text}`);

    expect(await provider.current(log)).toBeUndefined();
    expect(await provider.current(log)).toBeUndefined();
    expect(lines).toHaveLength(1); // reported once, not on every run
    expect(lines[0]).toMatch(
      /^warn: Azure ranges blob geoip\/runs\.json \(UC_SERVICE_TAGS_BLOB\) does not exist yet: .*refreshServiceTags/,
    );

    arm.changeNumber = '70';
    await run('runs.json');
    const loaded = await provider.current(log);
    expect(loaded?.ranges.changeNumber).toBe('70');
    expect(loaded?.ranges.match('13.69.7.10')).toBe('westeurope');
    expect(await provider.current(log)).toBe(loaded); // same ETag: nothing downloaded again

    // An operator uploads something that is not a service tags document: the previous one stays.
    const client = blobs.getContainerClient('geoip').getBlockBlobClient('runs.json');
    await client.upload('{"values":[]}', 13);
    expect(await provider.current(log)).toBe(loaded);
    expect(lines.at(-1)).toMatch(/^warn: .*no tag has a region.*Still using etag/);

    // The published ServiceTags_Public JSON uploaded by hand is the alternative source.
    const published = JSON.stringify(SAMPLE_SERVICE_TAGS);
    await client.upload(published, Buffer.byteLength(published));
    const manual = await provider.current(log);
    expect(manual?.ranges.changeNumber).toBe('400');
    expect(manual?.ranges.match('191.233.7.10')).toBe('brazilsouth');
  });
});
