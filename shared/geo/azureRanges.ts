/**
 * Microsoft's own datacentre addresses, per Azure region, from the Azure Service Tags: either the ARM response of
 * `GET …/providers/Microsoft.Network/locations/{location}/serviceTags` (change numbers as strings) or the weekly
 * published ServiceTags_Public_<date>.json (numbers). Every tag with a region contributes its prefixes to that
 * region (`AzureCloud.<region>` covers all of it; service tags such as `Storage.WestEurope` are subsets).
 *
 * An address in such a range is keyed as the place `e:Azure.<region>`, shown as `Azure <region>`, placed at the
 * region's city when {@link azureRegionSite} knows it: an automation or first-party identity that roams Azure
 * regions meets a handful of stable places, not every city the GeoIP database guesses for Microsoft's ranges.
 * It is not an egress range (no score cap): a person whose history is their home broadband is still scored when
 * their credential calls from an Azure VM. UC_EGRESS_RANGES is matched first and wins.
 */
import { azureRegionSite } from './azureRegions.js';
import { type Cidr, CidrSet, internalRangeContaining, parseCidr, type ParsedIp } from './ip.js';
import type { City, Geolocator, GeoResult, GeoStats } from './types.js';

/** One tag as both document shapes have it; only what is used. */
export interface ServiceTagEntry {
  name: string;
  /** '' for a global tag. */
  region: string;
  addressPrefixes: string[];
}

/** A validated service tags document (either shape). */
export interface ServiceTagsDocument {
  cloud: string;
  /** The document's change number as text ('' when absent): rises with any change. */
  changeNumber: string;
  values: ServiceTagEntry[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const SHAPE =
  'expected an Azure Service Tags document: {"values":[{"name":…,"properties":{"region":…,"addressPrefixes":[…]}}]} ' +
  '(the ARM serviceTags response or the published ServiceTags_Public JSON)';

/** One value of `values`, or a description of what is wrong with it. */
function readEntry(v: unknown, i: number): ServiceTagEntry | string {
  if (!isObject(v) || typeof v.name !== 'string' || v.name === '') return `values[${i}] has no name`;
  const p = v.properties;
  if (!isObject(p)) return `values[${i}] (${v.name}) has no properties`;
  const prefixes = p.addressPrefixes;
  if (!Array.isArray(prefixes) || prefixes.some((x) => typeof x !== 'string'))
    return `values[${i}] (${v.name}) has no addressPrefixes list of strings`;
  if (p.region !== undefined && typeof p.region !== 'string')
    return `values[${i}] (${v.name}) has a region that is not a string`;
  return { name: v.name, region: p.region ?? '', addressPrefixes: prefixes as string[] };
}

/**
 * Validates a parsed document (either shape). Throws an Error naming `where` and the first problem when it is not
 * one, when a tag is malformed, or when no tag has a region (a truncated or foreign document).
 */
export function readServiceTagsDocument(doc: unknown, where = 'the document'): ServiceTagsDocument {
  if (!isObject(doc) || !Array.isArray(doc.values)) throw new Error(`${where}: ${SHAPE}`);
  const values: ServiceTagEntry[] = [];
  for (const [i, v] of (doc.values as unknown[]).entries()) {
    const entry = readEntry(v, i);
    if (typeof entry === 'string') throw new Error(`${where}: ${entry}; ${SHAPE}`);
    values.push(entry);
  }
  if (!values.some((v) => v.region !== '' && v.addressPrefixes.length > 0))
    throw new Error(`${where}: no tag has a region with address prefixes; ${SHAPE}`);
  const change = doc.changeNumber;
  return {
    cloud: typeof doc.cloud === 'string' ? doc.cloud : '',
    changeNumber: typeof change === 'string' || typeof change === 'number' ? String(change) : '',
    values,
  };
}

/** Region names become part of City keys (`e:Azure.<region>`, see CITY_KEY in shared/ops/allowlist.ts). */
const REGION = /^[a-z0-9]{1,50}$/;

/** The regional prefixes of a document: AzureCloud.<region> tags first, so they name a block listed twice. */
function regionalPrefixes(doc: ServiceTagsDocument): {
  blocks: Map<string, { cidr: Cidr; region: string }>;
  skipped: number;
  conflicts: number;
} {
  const blocks = new Map<string, { cidr: Cidr; region: string }>();
  let skipped = 0;
  let conflicts = 0;
  const ordered = [...doc.values].sort(
    (a, b) => Number(!/^AzureCloud\./i.test(a.name)) - Number(!/^AzureCloud\./i.test(b.name)),
  );
  for (const tag of ordered) {
    const region = tag.region.toLowerCase();
    if (region === '') continue;
    if (!REGION.test(region)) {
      skipped += tag.addressPrefixes.length;
      continue;
    }
    for (const text of tag.addressPrefixes) {
      let cidr: Cidr;
      try {
        cidr = parseCidr(text);
      } catch {
        skipped++;
        continue;
      }
      if (internalRangeContaining(cidr) !== undefined) skipped++;
      else if (!blocks.has(cidr.text)) blocks.set(cidr.text, { cidr, region });
      else if (blocks.get(cidr.text)!.region !== region) conflicts++;
    }
  }
  return { blocks, skipped, conflicts };
}

/** The per-region Microsoft ranges of one service tags document, searchable by address. */
export class AzureRanges {
  static readonly none = new AzureRanges(new Map(), 0, 0, '', '');

  private readonly set: CidrSet;
  /** Region → number of blocks. */
  readonly regions: ReadonlyMap<string, number>;

  private constructor(
    blocks: Map<string, { cidr: Cidr; region: string }>,
    /** Prefixes that were not CIDR blocks, lay in internal ranges, or had an unusable region name. */
    readonly skipped: number,
    /** Blocks listed under two regions (the first, AzureCloud.<region> if any, is kept). */
    readonly conflicts: number,
    readonly cloud: string,
    readonly changeNumber: string,
  ) {
    this.set = new CidrSet([...blocks.values()].map(({ cidr, region }) => [cidr, region] as const));
    const regions = new Map<string, number>();
    for (const { region } of blocks.values()) regions.set(region, (regions.get(region) ?? 0) + 1);
    this.regions = regions;
  }

  static fromDocument(doc: ServiceTagsDocument): AzureRanges {
    const { blocks, skipped, conflicts } = regionalPrefixes(doc);
    return new AzureRanges(blocks, skipped, conflicts, doc.cloud, doc.changeNumber);
  }

  /** Number of distinct blocks. */
  get size(): number {
    return this.set.size;
  }

  /** The region (lower case, as the tags name it) of the most specific block containing `ip`, or undefined. */
  match(ip: string | ParsedIp): string | undefined {
    return this.set.match(ip);
  }
}

/**
 * The Azure ranges of a parsed service tags document (ARM response or ServiceTags_Public JSON). Throws an Error
 * saying what is wrong when it is not such a document.
 */
export function azureRangesFromServiceTags(doc: unknown): AzureRanges {
  return AzureRanges.fromDocument(readServiceTagsDocument(doc));
}

/** The place an Azure region is: `e:Azure.<region>`, at the region's city when known. */
export function azureRegionCity(region: string, fallback?: { latitude: number; longitude: number }): City {
  const site = azureRegionSite(region);
  return {
    key: `e:Azure.${region}`,
    name: `Azure ${region}`,
    region: '',
    country: site?.country ?? '',
    countryName: site?.countryName ?? '',
    latitude: site?.latitude ?? fallback?.latitude ?? 0,
    longitude: site?.longitude ?? fallback?.longitude ?? 0,
  };
}

/**
 * A geolocator that keys addresses in `ranges` as their Azure region. The inner geolocator answers first:
 * internal and invalid addresses and UC_EGRESS_RANGES matches (its `egress` places) are returned as they are.
 */
export function withAzureRanges(geo: Geolocator, ranges: AzureRanges): Geolocator {
  return ranges.size === 0 ? geo : new AzureRangesGeolocator(geo, ranges);
}

class AzureRangesGeolocator implements Geolocator {
  private hits = 0;
  /** One frozen result per region the table places (shared, like the inner geolocator's cached results). */
  private readonly placed = new Map<string, GeoResult>();

  constructor(
    readonly inner: Geolocator,
    readonly ranges: AzureRanges,
  ) {}

  get databaseBuildDate(): Date {
    return this.inner.databaseBuildDate;
  }

  get databaseType(): string {
    return this.inner.databaseType;
  }

  /** The inner counts; addresses keyed as an Azure region count as egress. */
  get stats(): GeoStats {
    const s = this.inner.stats;
    return { ...s, egress: s.egress + this.hits };
  }

  locate(ip: string): GeoResult {
    const result = this.inner.locate(ip);
    if (result.kind === 'internal' || result.kind === 'invalid') return result;
    if (result.kind === 'city' && result.city.egress !== undefined) return result;
    const region = this.ranges.match(ip);
    if (region === undefined) return result;
    this.hits++;
    const known = this.placed.get(region);
    if (known !== undefined) return known;
    const fallback = result.kind === 'city' ? result.city : undefined;
    const placed = freeze(azureRegionCity(region, fallback));
    if (azureRegionSite(region) !== undefined) this.placed.set(region, placed);
    return placed;
  }
}

const freeze = (city: City): GeoResult => Object.freeze({ kind: 'city', city: Object.freeze(city) });
