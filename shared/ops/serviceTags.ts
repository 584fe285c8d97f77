/**
 * Azure Service Tags: the JSON file Microsoft publishes weekly (ServiceTags_Public_<date>.json, also
 * `az network list-service-tags`), `{"changeNumber","cloud","values":[{"name","id","properties":{"addressPrefixes"}}]}`.
 * Only the names and address prefixes are used.
 */
import { type Cidr, internalRangeContaining, parseCidr } from '../geo/ip.js';

export interface ServiceTag {
  name: string;
  prefixes: Cidr[];
}

export interface ServiceTagsFile {
  cloud: string;
  changeNumber: number | undefined;
  /** By lower-cased name (tag names are case-insensitive in Azure). */
  tags: Map<string, ServiceTag>;
  /** Prefixes that were not valid CIDR blocks, or lay in internal ranges (never located, so never matched). */
  skipped: number;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses the file's text. Throws an Error naming `where` when it is not a service tags file. */
export function parseServiceTags(text: string, where: string): ServiceTagsFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new Error(`${where} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!isObject(doc) || !Array.isArray(doc.values)) {
    throw new Error(
      `${where} is not an Azure Service Tags file: expected {"values":[{"name":…,"properties":{"addressPrefixes":[…]}}]}`,
    );
  }
  const tags = new Map<string, ServiceTag>();
  let skipped = 0;
  for (const v of doc.values as unknown[]) {
    if (!isObject(v) || typeof v.name !== 'string' || v.name === '') continue;
    const props = isObject(v.properties) ? v.properties : {};
    const raw = Array.isArray(props.addressPrefixes) ? (props.addressPrefixes as unknown[]) : [];
    const prefixes: Cidr[] = [];
    for (const p of raw) {
      if (typeof p !== 'string') {
        skipped += 1;
        continue;
      }
      try {
        const cidr = parseCidr(p);
        if (internalRangeContaining(cidr) !== undefined) skipped += 1;
        else prefixes.push(cidr);
      } catch {
        skipped += 1;
      }
    }
    const key = v.name.toLowerCase();
    const existing = tags.get(key);
    if (existing) existing.prefixes.push(...prefixes);
    else tags.set(key, { name: v.name, prefixes });
  }
  return {
    cloud: typeof doc.cloud === 'string' ? doc.cloud : '',
    changeNumber: typeof doc.changeNumber === 'number' ? doc.changeNumber : undefined,
    tags,
    skipped,
  };
}
