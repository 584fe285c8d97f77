/**
 * A place callers come from. `key` is the CityKey used in baselines:
 *  - `g:<geonameId>`            a MaxMind city (geoname id is the identity, names are for display)
 *  - `c:<ISO country>`          country-level place (only when UC_NO_CITY_MODE=country)
 *  - `e:<provider>`             a configured egress / cloud range, keyed as its provider/region
 */
export interface City {
  key: string;
  geonameId?: number;
  name: string;
  /** First subdivision (state / region) name, '' if unknown. */
  region: string;
  /** ISO 3166-1 alpha-2 country code, '' if unknown. */
  country: string;
  countryName: string;
  latitude: number;
  longitude: number;
  accuracyRadiusKm?: number;
  /** Set when the IP fell in a configured egress / cloud range. */
  egress?: string;
}

export type GeoResult =
  | { kind: 'city'; city: City }
  /** Private, loopback, link-local, CGNAT, documentation, unspecified or empty: never looked up, never alerted on. */
  | { kind: 'internal' }
  /** Found a country but no city, and UC_NO_CITY_MODE=skip. */
  | { kind: 'no-city'; country: string }
  /** Not in the database. */
  | { kind: 'not-found' }
  /** Not an IP address. */
  | { kind: 'invalid' };

export interface GeoStats {
  lookups: number;
  cacheHits: number;
  internal: number;
  noCity: number;
  notFound: number;
  invalid: number;
  egress: number;
}

export interface Geolocator {
  locate(ip: string): GeoResult;
  readonly stats: GeoStats;
  /** Build date of the database, for the "your GeoIP data is old" warning. */
  readonly databaseBuildDate: Date;
  readonly databaseType: string;
}

/**
 * The autonomous system an address is announced by: who runs the network (a VPN provider, a mobile carrier,
 * Microsoft, a home broadband ISP). Per-caller familiarity with networks makes a city new to a caller through a
 * network they already use far less surprising than one through a network they never used.
 */
export interface Network {
  /** Autonomous system number (e.g. 8075 for Microsoft). */
  asn: number;
  /** The AS organisation, '' when the database has none (bounded, display only). */
  org: string;
}

/** Looks up the network (ASN) of an address: a MaxMind ASN/ISP database or the embedded offline table. */
export interface NetworkLocator {
  /** undefined: internal, invalid or not in the database. */
  network(ip: string): Network | undefined;
  /** Build date of the data, for the staleness warning. */
  readonly databaseBuildDate: Date;
  /** `GeoLite2-ASN`, `GeoIP2-ISP`, `ip-location-db asn` … */
  readonly databaseType: string;
}
