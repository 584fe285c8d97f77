/**
 * The detector with a refreshed Service Tags document: refreshServiceTags stores ARM's answer in the blob (local
 * https ARM, managed identity, Azurite), and the next detection run keys an address in Microsoft's ranges as its
 * Azure region — the admin's credential used from an Azure VM in Brazil South alerts as `Azure brazilsouth`, not
 * as the city the GeoIP database guesses for that block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeDetectHandler } from '../../functions/detectUnusualCity.js';
import { makeServiceTagsRefreshHandler } from '../../functions/refreshServiceTags.js';
import { toActivityRow } from '../../shared/activity/formats.js';
import { loadSettings } from '../../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import { type Harness, startHarness } from '../support/e2eHarness.js';
import { ev } from '../support/events.js';
import { type FakeArm, startFakeArm } from '../support/fakeArm.js';
import { invocationContext, timer } from '../support/invocation.js';
import { LISTKEYS, londonTeam, replayInto } from '../support/londonTeam.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 9, 5);
const ATTACK = T0 + 10 * DAY + 3 * HOUR + 10 * MIN;
/** AzureCloud.brazilsouth 191.233.0.0/21 in the sample (and in the published file). */
const AZURE_VM = '191.233.7.10';

describe('the detector with Azure ranges refreshed from ARM (real SDK clients, local services)', () => {
  let harness: Harness;
  let blob: AzuriteBlob;
  let arm: FakeArm;
  let env: Record<string, string>;
  const now = { ms: ATTACK + 5 * MIN + 12_000 };
  const events = londonTeam(10);

  beforeAll(async () => {
    [harness, blob, arm] = await Promise.all([
      startHarness({ rows: events.map(toActivityRow) }),
      startAzuriteBlob(),
      startFakeArm(),
    ]);
    const base = harness.env();
    env = harness.env({
      UC_STORAGE_CONNECTION_STRING: `${base.UC_STORAGE_CONNECTION_STRING!};BlobEndpoint=${blob.endpoint}`,
      UC_SERVICE_TAGS_BLOB: 'geoip/ServiceTags.json',
      UC_SERVICE_TAGS_SUBSCRIPTION_ID: '6f1d2c3b-4a59-4e68-9d7c-0b1a2c3d4e5f',
      UC_ARM_ENDPOINT: arm.endpoint,
    });
    const store = await harness.tableStore(loadSettings(env).UC_TABLE_PREFIX);
    await replayInto(store, events, {
      settings: loadSettings({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' }),
      toMs: T0 + 10 * DAY,
    });
    harness.logs.rows.push(toActivityRow(ev(ATTACK, LISTKEYS, 'admin@contoso.com', AZURE_VM)));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([harness?.stop(), blob?.stop(), arm?.close()]);
  });

  it('refresh, then a run: the Azure VM is the place Azure brazilsouth, at São Paulo', async () => {
    const lines: string[] = [];
    await makeServiceTagsRefreshHandler({ env, tlsCa: arm.ca })(
      timer(),
      invocationContext('refreshServiceTags', 'r1', lines),
    );
    expect(lines.at(-1)).toMatch(/^information: refreshServiceTags: updated geoip\/ServiceTags\.json/);

    // Without the ranges the GeoIP database places the address in a city of its own.
    const city = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
    const guessed = city.locate(AZURE_VM);
    expect(guessed.kind === 'city' && guessed.city.key.startsWith('g:')).toBe(true);

    const detect = makeDetectHandler({ env, tlsCa: harness.ca, clock: () => now.ms });
    const report = await detect(timer(), invocationContext('detectUnusualCity', 'd1', lines));
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^information: Azure ranges loaded from blob geoip\/ServiceTags\.json \(etag "[^"]+"\): change number 63, 25 regions/,
      ),
    );
    expect(report.alerts).toBe(1);
    const row = harness.ingestion.received[0]!;
    expect(row.Caller).toBe('admin@contoso.com');
    expect(row.SrcIpAddr).toBe(AZURE_VM);
    expect(row.SrcGeoCity).toBe('Azure brazilsouth');
    expect(row.SrcGeoCountry).toBe('BR');
    expect([row.SrcGeoLatitude, row.SrcGeoLongitude]).toEqual([-23.55, -46.63]);
  });
});
