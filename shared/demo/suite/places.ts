/**
 * Where the suite's people, automation and attackers are. Every address is a real one that the embedded 2019
 * GeoLite2-City database places in the named city (test/demo/suite.test.ts checks each); the network kind says
 * what sort of address it is meant to stand for (the suite's own description: the City database has no ASN).
 */
export interface Place {
  /** MaxMind English city name the addresses resolve to. */
  city: string;
  /** ISO 3166-1 country code. */
  country: string;
  /** Hours from UTC (fixed: the suite spans autumn weeks and ignores daylight saving). */
  utcOffset: number;
  ips: readonly string[];
}

const place = (city: string, country: string, utcOffset: number, ips: string[]): Place => ({
  city,
  country,
  utcOffset,
  ips,
});

/** The four offices: the first address is the office's own egress, the rest home broadband in the city. */
export const OFFICES = {
  london: place('London', 'GB', 0, [
    '82.13.99.10',
    '5.10.99.10',
    '31.221.99.10',
    '45.8.201.10',
    '45.83.7.10',
    '51.145.99.10',
  ]),
  amsterdam: place('Amsterdam', 'NL', 1, [
    '24.132.99.10',
    '5.101.99.10',
    '5.153.7.10',
    '31.160.7.10',
    '31.160.201.10',
    '37.58.99.10',
  ]),
  mumbai: place('Mumbai', 'IN', 5.5, [
    '1.6.7.10',
    '14.143.99.10',
    '27.4.7.10',
    '27.4.99.10',
    '27.4.201.10',
    '27.106.7.10',
  ]),
  newYork: place('New York', 'US', -5, [
    '24.90.99.10',
    '24.103.7.10',
    '24.103.99.10',
    '24.97.201.10',
    '12.23.7.10',
    '23.246.99.10',
  ]),
} as const;
export type Office = keyof typeof OFFICES;

/** An attacker in an office city uses an address none of the staff there uses. */
export const OFFICE_CITY_ATTACKER: Record<Office, readonly string[]> = {
  london: ['212.36.50.20'],
  amsterdam: ['82.201.50.20', '213.93.50.20'],
  mumbai: ['42.107.7.10'],
  newYork: ['23.108.7.10'],
};

/** A day's work from a nearby town: broadband of a client site or co-working space. */
export const NEARBY: Record<Office, readonly Place[]> = {
  london: [
    place('Reading', 'GB', 0, ['81.133.99.10', '82.12.201.10']),
    place('Oxford', 'GB', 0, ['2.100.99.10', '81.110.99.10']),
    place('Cambridge', 'GB', 0, ['80.6.99.10', '86.145.99.10']),
  ],
  amsterdam: [
    place('Utrecht', 'NL', 1, ['31.20.7.10', '83.83.7.10']),
    place('Haarlem', 'NL', 1, ['62.145.201.10', '83.160.99.10']),
  ],
  mumbai: [place('Thane', 'IN', 5.5, ['43.229.201.10', '103.134.7.10'])],
  newYork: [place('Jersey City', 'US', -5, ['38.16.7.10', '67.130.7.10'])],
};

/** Same country, another city: where a new hire may live, or an attacker may sit (disjoint per seed). */
export const DOMESTIC: Record<Office, readonly Place[]> = {
  london: [
    place('Glasgow', 'GB', 0, ['2.97.201.10', '81.96.99.10']),
    place('Edinburgh', 'GB', 0, ['2.121.7.10', '77.101.99.10']),
    place('Leeds', 'GB', 0, ['2.124.99.10', '81.103.99.10']),
  ],
  amsterdam: [
    place('Eindhoven', 'NL', 1, ['31.201.7.10', '77.165.99.10']),
    place('The Hague', 'NL', 1, ['46.144.7.10', '83.84.99.10']),
  ],
  mumbai: [
    place('Kolkata', 'IN', 5.5, ['45.124.7.10', '103.85.99.10']),
    place('Hyderabad', 'IN', 5.5, ['14.141.7.10', '49.204.7.10']),
    place('Ahmedabad', 'IN', 5.5, ['43.228.99.10', '103.231.7.10']),
  ],
  newYork: [
    place('Chicago', 'US', -6, ['12.14.99.10', '12.160.7.10']),
    place('Philadelphia', 'US', -5, ['23.24.7.10', '50.73.201.10']),
    place('Boston', 'US', -5, ['24.218.201.10', '50.78.7.10']),
  ],
};

/** Mobile-carrier ranges that geolocate to a hub city far from the subscriber (Airtel, AT&T Mobility). */
export const MOBILE_HUB: Partial<Record<Office, Place>> = {
  mumbai: place('New Delhi', 'IN', 5.5, ['106.199.7.10', '106.201.7.10', '106.202.7.10', '106.202.99.10']),
  newYork: place('Atlanta', 'US', -5, ['107.84.7.10', '107.85.7.10', '107.93.7.10']),
};

/**
 * Corporate VPN egress: where it starts, and where it may move — gateways of one VPN hosting provider (M247,
 * AS9009 in the embedded @ip-location-db/asn table), so a move keeps the network and changes the city.
 */
export const VPN_HOME = place('Frankfurt am Main', 'DE', 1, ['5.181.127.10', '5.181.127.73']);
export const VPN_MOVES: readonly Place[] = [
  place('Paris', 'FR', 1, ['45.33.152.10', '45.33.152.73']),
  place('Manchester', 'GB', 0, ['5.61.60.10', '37.120.200.9']),
  place('Milan', 'IT', 1, ['45.8.197.10', '45.8.197.137']),
];

/** Holiday and conference destinations. */
export const ABROAD: readonly Place[] = [
  place('Lisbon', 'PT', 0, ['2.82.99.10', '46.50.7.10']),
  place('Madrid', 'ES', 1, ['2.136.7.10', '37.12.7.10']),
  place('Milan', 'IT', 1, ['2.32.99.10', '2.36.7.10']),
  place('Berlin', 'DE', 1, ['2.205.99.10', '37.44.7.10']),
  place('Stockholm', 'SE', 1, ['2.71.99.10', '5.150.201.10']),
  place('Tokyo', 'JP', 9, ['3.112.7.10', '3.113.99.10']),
];

/** Cities a credential thief works from (residential proxies or hosting). */
export const HOSTILE: readonly Place[] = [
  place('Lagos', 'NG', 1, ['41.58.99.10', '105.112.99.10']),
  place('Moscow', 'RU', 3, ['5.228.7.10', '31.173.7.10']),
  place('Kyiv', 'UA', 2, ['37.53.7.10', '46.119.7.10']),
  place('Hanoi', 'VN', 7, ['14.162.99.10', '14.177.7.10']),
  place('Jakarta', 'ID', 7, ['36.66.99.10', '36.70.7.10']),
  place('São Paulo', 'BR', -3, ['143.107.99.10', '45.234.99.10']),
  place('Istanbul', 'TR', 3, ['5.24.99.10', '31.145.7.10']),
  place('Bucharest', 'RO', 2, ['5.12.7.10', '46.97.99.10']),
  place('Warsaw', 'PL', 1, ['5.173.7.10', '37.47.7.10']),
];

/** IPv6 addresses the embedded database places in a city (a thief on an IPv6 residential line). */
export const HOSTILE_V6: readonly Place[] = [
  place('Minsk', 'BY', 3, ['2a0a:eac0::1', '2a0a:eac1::1']),
  place('Tehran', 'IR', 3.5, ['2a03:9380::1', '2a0a:74c0::1']),
  place('Sofia', 'BG', 2, ['2a00:7145::1', '2a06:9680::1']),
  place('Buenos Aires', 'AR', -3, ['2800:40::1', '2800:2141::1']),
];

/** Azure regions by the city their Microsoft datacentre ranges geolocate to (Microsoft's own prefixes). */
export const AZURE = {
  westEurope: place('Amsterdam', 'NL', 1, ['13.69.7.10', '13.80.99.10', '13.81.7.10']),
  northEurope: place('Dublin', 'IE', 0, ['13.74.7.10', '13.74.99.10', '13.79.7.10']),
  ukSouth: place('London', 'GB', 0, ['51.104.7.10', '51.105.64.10', '51.140.64.10']),
  eastUs2: place('Boydton', 'US', -5, ['13.68.7.10', '13.77.99.10']),
  eastUs: place('Washington', 'US', -5, ['13.82.7.10', '13.90.7.10']),
  centralIndia: place('Pune', 'IN', 5.5, ['20.192.7.10', '52.140.64.10']),
  centralUs: place('Des Moines', 'US', -6, ['13.86.7.10', '13.89.99.10']),
  southCentralUs: place('San Antonio', 'US', -6, ['13.65.7.10', '13.84.7.10']),
  southeastAsia: place('Singapore', 'SG', 8, ['13.67.7.10', '13.76.99.10']),
  australiaEast: place('Sydney', 'AU', 10, ['13.70.64.10', '20.37.201.10']),
  japanEast: place('Tokyo', 'JP', 9, ['13.78.7.10', '13.78.99.10']),
  canadaCentral: place('Toronto', 'CA', -5, ['52.228.7.10', '52.138.7.10']),
  ukWest: place('Cardiff', 'GB', 0, ['51.141.7.10', '51.141.99.10']),
  switzerlandNorth: place('Zurich', 'CH', 1, ['51.107.7.10', '51.107.64.10']),
  southIndia: place('Chennai', 'IN', 5.5, ['13.71.64.10', '20.40.7.10']),
  eastAsia: place('Central', 'HK', 8, ['13.75.7.10', '13.75.64.10']),
  australiaSoutheast: place('Melbourne', 'AU', 10, ['13.73.99.10', '13.77.7.10']),
  koreaCentral: place('Seoul', 'KR', 9, ['52.231.7.10', '52.231.64.10']),
  japanWest: place('Osaka', 'JP', 9, ['40.74.64.10', '40.74.99.10']),
  uaeNorth: place('Dubai', 'AE', 4, ['40.120.7.10', '40.120.64.10']),
  canadaEast: place('Québec', 'CA', -5, ['52.229.64.10', '52.229.99.10']),
  brazilSouth: place('Campinas', 'BR', -3, ['191.232.7.10', '191.233.7.10']),
  westCentralUs: place('Cheyenne', 'US', -7, ['13.71.201.10', '13.77.201.10']),
  westUs: place('San Jose', 'US', -8, ['13.64.7.10', '13.83.7.10']),
} as const;
export type AzureRegion = keyof typeof AZURE;

/** Regions the tenant's automation never uses: candidates for a new automation region. */
export const NEW_AUTOMATION_REGIONS: readonly AzureRegion[] = [
  'ukWest',
  'canadaCentral',
  'southIndia',
  'switzerlandNorth',
];

/** A VPS in a city where the tenant's automation runs daily (AWS and hosting ranges, not Microsoft's). */
export const VPS_IN_AUTOMATION_CITY: readonly Place[] = [
  place('Dublin', 'IE', 0, ['3.40.7.10', '3.41.99.10']),
  place('Amsterdam', 'NL', 1, ['37.139.7.10']),
];
