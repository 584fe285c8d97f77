import type { InvocationContext, LogLevel, Timer } from '@azure/functions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  makeRefreshHandler,
  type RefreshDeps,
  refreshGeoIpDatabaseTimer,
} from '../../functions/refreshGeoIpDatabase.js';
import { loadSettings } from '../../shared/config/settings.js';
import type { RefreshOptions, RefreshResult } from '../../shared/geo/maxmind.js';
import { blobServiceFromSettings } from '../../shared/runtime/clients.js';
import { ASN_BUILD_EPOCH, asnDatabase } from '../support/asnFixture.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import {
  CITY_BUILD_EPOCH,
  cityDatabase,
  type FakeMaxMind,
  sha256Hex,
  startFakeMaxMind,
} from '../support/fakeMaxMind.js';
import { invocationContext, timer as hostTimer } from '../support/invocation.js';

/** The weekly schedule's timer. */
const timer = (isPastDue = false): Timer =>
  hostTimer(isPastDue, {
    schedule: { adjustForDST: true },
    scheduleStatus: {
      last: '2024-01-01T04:00:00.000Z',
      next: '2024-01-08T04:00:00.000Z',
      lastUpdated: '2024-01-01T04:00:00.000Z',
    },
  });

function invocation(): { context: InvocationContext; logs: { level: LogLevel; text: string }[] } {
  const logs: { level: LogLevel; text: string }[] = [];
  const context = invocationContext(
    'refreshGeoIpDatabase',
    'c0ffee00-0000-4000-8000-000000000001',
    (level, text) => logs.push({ level, text }),
  );
  return { context, logs };
}

describe('refreshGeoIpDatabase function', () => {
  let azurite: AzuriteBlob;
  let fake: FakeMaxMind;
  let env: Record<string, string>;

  beforeAll(async () => {
    [azurite, fake] = await Promise.all([startAzuriteBlob(), startFakeMaxMind()]);
  });
  afterAll(async () => {
    await Promise.all([azurite?.stop(), fake?.close()]);
  });
  beforeEach(() => {
    fake.mode = 'good';
    env = {
      UC_GEOIP_BLOB: 'geoip/GeoLite2-City.mmdb',
      UC_MAXMIND_ACCOUNT_ID: fake.accountId,
      UC_MAXMIND_LICENSE_KEY: fake.licenceKey,
      UC_MAXMIND_DOWNLOAD_URL: fake.baseUrl,
      UC_STORAGE_CONNECTION_STRING: azurite.connectionString,
    };
  });

  it('exports the registered handler', () => {
    expect(typeof refreshGeoIpDatabaseTimer).toBe('function');
  });

  it('refreshes both blobs (City and ASN) through Azurite from the settings, then reports unchanged; clients are built once', async () => {
    let built = 0;
    const handler = makeRefreshHandler({
      env,
      blobService: (settings, e) => {
        built++;
        return blobServiceFromSettings(settings, e);
      },
      download: { tls: { ca: fake.ca } },
    });

    const first = invocation();
    await handler(timer(), first.context);
    const reports = (logs: { text: string }[]) => logs.filter((l) => /^refreshGeoIpDatabase: /.test(l.text));
    expect(reports(first.logs)).toEqual([
      {
        level: 'information',
        text: `refreshGeoIpDatabase: updated geoip/GeoLite2-City.mmdb, built 2019-12-24, SHA-256 ${sha256Hex(cityDatabase())}.`,
      },
      {
        level: 'information',
        text: `refreshGeoIpDatabase: updated geoip/GeoLite2-ASN.mmdb, built 2026-11-30, SHA-256 ${sha256Hex(asnDatabase())}.`,
      },
    ]);
    expect(
      first.logs.filter((l) => l.level === 'information' && /checksum verified/.test(l.text)),
    ).toHaveLength(2);

    const second = invocation();
    await handler(timer(true), second.context);
    expect(second.logs.map((l) => l.text)).toContain('refreshGeoIpDatabase: this run is late (past due).');
    expect(reports(second.logs).map((l) => l.text)).toEqual([
      'refreshGeoIpDatabase: this run is late (past due).',
      expect.stringMatching(
        /^refreshGeoIpDatabase: geoip\/GeoLite2-City\.mmdb unchanged, built 2019-12-24 \(MaxMind still serves/,
      ),
      expect.stringMatching(
        /^refreshGeoIpDatabase: geoip\/GeoLite2-ASN\.mmdb unchanged, built 2026-11-30 \(MaxMind still serves/,
      ),
    ]);
    expect(built).toBe(1);

    const properties = await blobServiceFromSettings(loadSettings(env), {})!
      .getContainerClient('geoip')
      .getBlobClient('GeoLite2-City.mmdb')
      .getProperties();
    expect(properties.metadata?.buildepoch).toBe(String(CITY_BUILD_EPOCH));
    const asn = await blobServiceFromSettings(loadSettings(env), {})!
      .getContainerClient('geoip')
      .getBlobClient('GeoLite2-ASN.mmdb')
      .getProperties();
    expect(asn.metadata).toMatchObject({ edition: 'GeoLite2-ASN', buildepoch: String(ASN_BUILD_EPOCH) });
  });

  it('a failed refresh is logged as an error and fails the invocation, without the licence key anywhere; the other edition still runs', async () => {
    fake.mode = 'unauthorized';
    const handler = makeRefreshHandler({ env, download: { tls: { ca: fake.ca } } });
    const { context, logs } = invocation();
    const error = await handler(timer(), context).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^refreshGeoIpDatabase failed, geoip\/GeoLite2-City\.mmdb left as it was: MaxMind rejected the account id \/ licence key \(HTTP 401\)/,
    );
    expect(logs.filter((l) => l.level === 'error').map((l) => l.text)).toEqual([(error as Error).message]);
    // The City edition failing did not stop the ASN edition (refreshed, or already current from a test above).
    expect(
      logs.some((l) =>
        /^refreshGeoIpDatabase: (updated geoip\/GeoLite2-ASN\.mmdb|geoip\/GeoLite2-ASN\.mmdb unchanged)/.test(
          l.text,
        ),
      ),
    ).toBe(true);
    for (const text of [...logs.map((l) => l.text), (error as Error).message]) {
      expect(text).not.toContain(fake.licenceKey);
      expect(text).not.toContain(fake.accountId);
    }
  });

  it('maps the log levels to the context and passes settings, client and budget to refresh', async () => {
    const calls: RefreshOptions[] = [];
    let next: RefreshResult = {
      status: 'updated',
      buildDate: new Date('2024-01-02T00:00:00Z'),
      sha256: 'ab'.repeat(32),
    };
    const refresh: RefreshDeps['refresh'] = (opts) => {
      calls.push(opts);
      opts.log('info', 'i');
      opts.log('warn', 'w');
      opts.log('error', 'e');
      return Promise.resolve(next);
    };
    const handler = makeRefreshHandler({
      env: { ...env, UC_RUN_BUDGET: '2m' },
      refresh,
      clock: () => 1_000_000,
    });
    const { context, logs } = invocation();
    await handler(timer(), context);
    const levels = [
      { level: 'information', text: 'i' },
      { level: 'warning', text: 'w' },
      { level: 'error', text: 'e' },
    ];
    expect(logs).toEqual([
      ...levels,
      {
        level: 'information',
        text: `refreshGeoIpDatabase: updated geoip/GeoLite2-City.mmdb, built 2024-01-02, SHA-256 ${'ab'.repeat(32)}.`,
      },
      ...levels,
      {
        level: 'information',
        text: `refreshGeoIpDatabase: updated geoip/GeoLite2-ASN.mmdb, built 2024-01-02, SHA-256 ${'ab'.repeat(32)}.`,
      },
    ]);
    expect(calls.map((c) => c.edition)).toEqual(['city', 'asn']);
    expect(calls[0]?.settings.UC_GEOIP_BLOB).toBe('geoip/GeoLite2-City.mmdb');
    // One budget for the run, shared by both editions.
    expect(calls[0]?.budget.deadlineMs).toBe(1_000_000 + 120_000);
    expect(calls[1]?.budget).toBe(calls[0]?.budget);
    expect(calls[0]?.blobService.url.replace(/\/$/, '')).toBe(azurite.endpoint);

    next = { status: 'failed', reason: 'checksum mismatch: …' };
    const failed = invocation();
    const error = await handler(timer(), failed.context).catch((e: unknown) => e as Error);
    expect((error as Error).message).toBe(
      'refreshGeoIpDatabase failed, geoip/GeoLite2-City.mmdb left as it was: checksum mismatch: …\n' +
        'refreshGeoIpDatabase failed, geoip/GeoLite2-ASN.mmdb left as it was: checksum mismatch: …',
    );
    expect(failed.logs.filter((l) => l.level === 'error').map((l) => l.text)).toEqual([
      'e',
      'refreshGeoIpDatabase failed, geoip/GeoLite2-City.mmdb left as it was: checksum mismatch: …',
      'e',
      'refreshGeoIpDatabase failed, geoip/GeoLite2-ASN.mmdb left as it was: checksum mismatch: …',
    ]);
  });

  it('the ASN edition failing does not stop the City one, and fails the run naming only the ASN blob', async () => {
    const results: Record<string, RefreshResult> = {
      city: { status: 'unchanged', reason: 'same' },
      asn: { status: 'failed', reason: 'checksum mismatch: x' },
    };
    const handler = makeRefreshHandler({
      env,
      refresh: (opts) => Promise.resolve(results[opts.edition ?? 'city']!),
    });
    const { context, logs } = invocation();
    await expect(handler(timer(), context)).rejects.toThrow(
      /^refreshGeoIpDatabase failed, geoip\/GeoLite2-ASN\.mmdb left as it was: checksum mismatch: x$/,
    );
    expect(logs.map((l) => [l.level, l.text])).toEqual([
      ['information', 'refreshGeoIpDatabase: geoip/GeoLite2-City.mmdb unchanged (same).'],
      ['error', 'refreshGeoIpDatabase failed, geoip/GeoLite2-ASN.mmdb left as it was: checksum mismatch: x'],
    ]);
  });

  it('refreshes only the City edition when UC_ASN_EDITION=off', async () => {
    const editions: (string | undefined)[] = [];
    const handler = makeRefreshHandler({
      env: { ...env, UC_ASN_EDITION: 'off' },
      refresh: (opts) => {
        editions.push(opts.edition);
        return Promise.resolve({ status: 'unchanged', reason: 'same' });
      },
    });
    await handler(timer(), invocation().context);
    expect(editions).toEqual(['city']);
  });

  it('does nothing (successfully) when UC_GEOIP_BLOB is not set', async () => {
    let called = false;
    const handler = makeRefreshHandler({
      env: { ...env, UC_GEOIP_BLOB: '' },
      refresh: () => {
        called = true;
        return Promise.resolve({ status: 'unchanged' });
      },
    });
    const { context, logs } = invocation();
    await handler(timer(), context);
    expect(called).toBe(false);
    expect(logs).toEqual([
      {
        level: 'information',
        text: 'refreshGeoIpDatabase: UC_GEOIP_BLOB is not set, so there is no GeoIP database blob to refresh.',
      },
    ]);
  });

  it('fails clearly when UC_GEOIP_BLOB is set but no Blob service is configured', async () => {
    const handler = makeRefreshHandler({ env: { ...env, UC_STORAGE_CONNECTION_STRING: '' } });
    const { context, logs } = invocation();
    await expect(handler(timer(), context)).rejects.toThrow(
      /UC_GEOIP_BLOB=geoip\/GeoLite2-City\.mmdb needs a Blob service: set UC_BLOB_ENDPOINT/,
    );
    expect(logs.at(-1)?.level).toBe('error');
  });

  it('a bad setting fails the run with the secret masked, and is read again on the next run', async () => {
    const mutable: Record<string, string> = { ...env, UC_MAXMIND_LICENSE_KEY: 'not a valid key!' };
    const handler = makeRefreshHandler({
      env: mutable,
      refresh: () => Promise.resolve({ status: 'unchanged', reason: 'same' }),
    });
    const error = await handler(timer(), invocation().context).catch((e: unknown) => e as Error);
    expect((error as Error).message).toContain(
      'Invalid app setting UC_MAXMIND_LICENSE_KEY=(secret, not shown)',
    );
    expect((error as Error).message).not.toContain('not a valid key!');

    mutable.UC_MAXMIND_LICENSE_KEY = fake.licenceKey;
    const { context, logs } = invocation();
    await handler(timer(), context);
    expect(logs.map((l) => l.text)).toEqual([
      'refreshGeoIpDatabase: geoip/GeoLite2-City.mmdb unchanged (same).',
      'refreshGeoIpDatabase: geoip/GeoLite2-ASN.mmdb unchanged (same).',
    ]);
  });
});
