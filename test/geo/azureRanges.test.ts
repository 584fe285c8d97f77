import { beforeAll, describe, expect, it } from 'vitest';

import { AZURE } from '../../shared/demo/suite/places.js';
import {
  AzureRanges,
  azureRangesFromServiceTags,
  readServiceTagsDocument,
  withAzureRanges,
} from '../../shared/geo/azureRanges.js';
import { SAMPLE_SERVICE_TAGS, sampleAzureRanges } from '../../shared/geo/azureSample.js';
import { parseEgressRanges } from '../../shared/geo/egress.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import type { City, Geolocator } from '../../shared/geo/types.js';
import { parseCityKey } from '../../shared/ops/allowlist.js';

/** The ARM serviceTags response shape: change numbers as strings, ids as resource ids, networkFeatures absent. */
const ARM_DOC = {
  name: 'public',
  id: '/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Network/serviceTags/public',
  type: 'Microsoft.Network/serviceTags',
  changeNumber: '63',
  cloud: 'Public',
  values: [
    {
      name: 'AzureCloud',
      id: 'AzureCloud',
      properties: { changeNumber: '9', region: '', systemService: '', addressPrefixes: ['13.64.0.0/11'] },
    },
    {
      name: 'AzureCloud.westeurope',
      id: 'AzureCloud.westeurope',
      properties: {
        changeNumber: '3',
        region: 'westeurope',
        systemService: '',
        addressPrefixes: ['13.69.0.0/17', '2603:1020:200::/46', 'not-a-cidr', '10.0.0.0/8'],
        state: 'GA',
      },
    },
    {
      name: 'AzureCloud.newregion9',
      id: 'AzureCloud.newregion9',
      properties: { changeNumber: '1', region: 'newregion9', addressPrefixes: ['13.80.0.0/15'] },
    },
    {
      // A service tag naming a block of another region: AzureCloud.<region> wins.
      name: 'Storage.NorthEurope',
      id: 'Storage.NorthEurope',
      properties: {
        changeNumber: '2',
        region: 'northeurope',
        addressPrefixes: ['13.69.0.0/17', '13.74.0.0/16'],
      },
    },
  ],
};

let city: Geolocator;
beforeAll(async () => {
  city = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
});

const placeOf = (geo: Geolocator, ip: string): City => {
  const r = geo.locate(ip);
  if (r.kind !== 'city') throw new Error(`${ip}: ${r.kind}`);
  return r.city;
};

describe('service tags documents', () => {
  it('reads the ARM shape: regions from tags with a region, AzureCloud.<region> first, bad prefixes skipped', () => {
    const ranges = azureRangesFromServiceTags(ARM_DOC);
    expect(ranges.changeNumber).toBe('63');
    expect(ranges.cloud).toBe('Public');
    expect(ranges.match('13.69.7.10')).toBe('westeurope');
    expect(ranges.match('2603:1020:200::1')).toBe('westeurope');
    expect(ranges.match('13.74.7.10')).toBe('northeurope');
    expect(ranges.match('13.81.7.10')).toBe('newregion9');
    // Only in the global AzureCloud tag: not a region.
    expect(ranges.match('13.100.0.1')).toBeUndefined();
    expect(ranges.skipped).toBe(2); // 'not-a-cidr' and the private 10.0.0.0/8
    expect(ranges.conflicts).toBe(1); // 13.69.0.0/17 under northeurope
    expect([...ranges.regions.keys()].sort()).toEqual(['newregion9', 'northeurope', 'westeurope']);
  });

  it('reads the published ServiceTags_Public shape (numbers) the same way', () => {
    const ranges = sampleAzureRanges();
    expect(ranges.changeNumber).toBe('400');
    expect(ranges.match('13.69.7.10')).toBe('westeurope');
    expect(ranges.match('51.107.7.10')).toBe('switzerlandn');
    expect(ranges.regions.size).toBe(25);
    expect(azureRangesFromServiceTags(SAMPLE_SERVICE_TAGS).size).toBe(ranges.size);
  });

  it('rejects what is not a service tags document, naming the problem', () => {
    const bad: [unknown, RegExp][] = [
      [null, /expected an Azure Service Tags document/],
      [{ value: [] }, /expected an Azure Service Tags document/],
      [{ values: [{ id: 'x' }] }, /values\[0\] has no name/],
      [{ values: [{ name: 'A' }] }, /values\[0\] \(A\) has no properties/],
      [
        { values: [{ name: 'A', properties: { addressPrefixes: [1] } }] },
        /no addressPrefixes list of strings/,
      ],
      [
        { values: [{ name: 'A', properties: { region: 5, addressPrefixes: [] } }] },
        /region that is not a string/,
      ],
      [
        { values: [{ name: 'AzureCloud', properties: { addressPrefixes: ['13.64.0.0/11'] } }] },
        /no tag has a region/,
      ],
      [{ values: [] }, /no tag has a region/],
    ];
    for (const [doc, message] of bad) expect(() => readServiceTagsDocument(doc, 'blob x')).toThrow(message);
    expect(() => readServiceTagsDocument(null, 'blob geoip/ServiceTags.json')).toThrow(
      /^blob geoip\/ServiceTags.json: /,
    );
  });
});

describe('withAzureRanges', () => {
  it('keys an Azure address as its region, placed at the region city; other addresses as the City database does', () => {
    const geo = withAzureRanges(city, azureRangesFromServiceTags(ARM_DOC));
    expect(placeOf(geo, '13.69.7.10')).toEqual({
      key: 'e:Azure.westeurope',
      name: 'Azure westeurope',
      region: '',
      country: 'NL',
      countryName: 'Netherlands',
      latitude: 52.37,
      longitude: 4.9,
    });
    // Not an egress range: no score cap (a broadband user's credential used from an Azure VM is still scored).
    expect(placeOf(geo, '13.69.7.10').egress).toBeUndefined();
    expect(placeOf(geo, '82.13.99.10')).toEqual(placeOf(city, '82.13.99.10'));
    expect(geo.locate('10.1.2.3')).toEqual({ kind: 'internal' });
    expect(geo.locate('nonsense')).toEqual({ kind: 'invalid' });
  });

  it('an unknown region has no country and keeps the City database position', () => {
    const geo = withAzureRanges(city, azureRangesFromServiceTags(ARM_DOC));
    const raw = placeOf(city, '13.81.7.10');
    expect(placeOf(geo, '13.81.7.10')).toEqual({
      key: 'e:Azure.newregion9',
      name: 'Azure newregion9',
      region: '',
      country: '',
      countryName: '',
      latitude: raw.latitude,
      longitude: raw.longitude,
    });
  });

  it('UC_EGRESS_RANGES is matched first and wins', async () => {
    const egress = await openGeolocator({
      databasePath: embeddedDatabasePath()!,
      noCityMode: 'skip',
      egress: parseEgressRanges('CorpVPN=13.69.7.0/24'),
    });
    const geo = withAzureRanges(egress, azureRangesFromServiceTags(ARM_DOC));
    expect(placeOf(geo, '13.69.7.10')).toMatchObject({ key: 'e:CorpVPN', egress: 'CorpVPN' });
    expect(placeOf(geo, '13.69.8.10').key).toBe('e:Azure.westeurope');
    expect(geo.stats.egress).toBe(2);
  });

  it('keys are valid allow-rule city keys, and no ranges leave the geolocator as it is', () => {
    const key = placeOf(withAzureRanges(city, sampleAzureRanges()), '51.107.7.10').key;
    expect(key).toBe('e:Azure.switzerlandn');
    expect(parseCityKey(key)).toBe(key);
    expect(withAzureRanges(city, AzureRanges.none)).toBe(city);
  });
});

describe('the offline sample covers the suite', () => {
  // The real file puts one of the suite's "UAE North" addresses in UAE Central; switzerlandn is the file's spelling.
  const REGION_OF: Record<string, string> = { '40.120.7.10': 'uaecentral' };

  it('every Azure address of the suite is keyed as its region, at the city of the region', () => {
    const geo = withAzureRanges(city, sampleAzureRanges());
    for (const [name, place] of Object.entries(AZURE)) {
      for (const ip of place.ips) {
        const region = REGION_OF[ip] ?? (name === 'switzerlandNorth' ? 'switzerlandn' : name.toLowerCase());
        const found = placeOf(geo, ip);
        expect(found.key, ip).toBe(`e:Azure.${region}`);
        expect(found.country, ip).toBe(place.country);
      }
    }
  });
});
