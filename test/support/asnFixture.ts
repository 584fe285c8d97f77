/**
 * The documented fixture the network tests build their MaxMind ASN / ISP databases from (with
 * test/support/mmdbWriter.ts). Records use MaxMind's field names (maxmind/MaxMind-DB source-data
 * GeoLite2-ASN-Test.json and GeoIP2-ISP-Test.json): `autonomous_system_number`, `autonomous_system_organization`
 * (may be missing), and for ISP also `isp`, `organization`, `mobile_country_code`, `mobile_network_code`.
 * The networks are real allocations: the offline table of @ip-location-db/asn (June 2026) gives the same ASNs.
 *
 * | network              | ASN   | organisation          | why it is here                                 |
 * |----------------------|-------|-----------------------|------------------------------------------------|
 * | 1.128.0.0/11         | 1221  | Telstra Pty Ltd       | MaxMind's test data answers it (a mobile carrier)|
 * | 8.8.8.0/24           | 15169 | Google LLC            | the refresh's probe address 8.8.8.8             |
 * | 20.190.128.0/18      | 8075  | Microsoft Corporation | Microsoft (Entra ID front ends)                 |
 * | 81.2.69.0/24         | 20712 | (none)                | a record without an organisation               |
 * | 2001:4860::/32       | 15169 | Google LLC            | IPv6                                           |
 */
import type { MmdbValue } from './mmdbWriter.js';
import { writeMmdb } from './mmdbWriter.js';

/** build_epoch of the fixture databases: 2026-11-30T00:00:00Z. */
export const ASN_BUILD_EPOCH = 1_795_996_800;

const ASN_RECORDS: [string, Record<string, MmdbValue>][] = [
  ['1.128.0.0/11', { autonomous_system_number: 1221, autonomous_system_organization: 'Telstra Pty Ltd' }],
  ['8.8.8.0/24', { autonomous_system_number: 15169, autonomous_system_organization: 'Google LLC' }],
  [
    '20.190.128.0/18',
    { autonomous_system_number: 8075, autonomous_system_organization: 'Microsoft Corporation' },
  ],
  ['81.2.69.0/24', { autonomous_system_number: 20712 }],
  ['2001:4860::/32', { autonomous_system_number: 15169, autonomous_system_organization: 'Google LLC' }],
];

/** A GeoLite2-ASN database of the fixture. */
export function asnDatabase(epochSeconds = ASN_BUILD_EPOCH, databaseType = 'GeoLite2-ASN'): Buffer {
  return writeMmdb({ databaseType, buildEpoch: epochSeconds, networks: ASN_RECORDS });
}

/** A GeoIP2-ISP database of the fixture: the ASN records plus ISP fields (Telstra as a mobile carrier). */
export function ispDatabase(epochSeconds = ASN_BUILD_EPOCH): Buffer {
  const networks = ASN_RECORDS.map(([cidr, record]): [string, Record<string, MmdbValue>] => [
    cidr,
    cidr === '1.128.0.0/11'
      ? {
          ...record,
          isp: 'Telstra Internet',
          organization: 'Telstra Internet',
          mobile_country_code: '505',
          mobile_network_code: '01',
        }
      : {
          ...record,
          isp:
            typeof record.autonomous_system_organization === 'string'
              ? record.autonomous_system_organization
              : 'Unknown ISP',
        },
  ]);
  return writeMmdb({ databaseType: 'GeoIP2-ISP', buildEpoch: epochSeconds, networks });
}
