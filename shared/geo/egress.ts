import { type Cidr, CidrSet, internalRangeContaining, parseCidr, type ParsedIp } from './ip.js';

/** Name of the app setting parsed here, so error messages point at what to fix. */
export const EGRESS_RANGES_SETTING = 'UC_EGRESS_RANGES';

const FORMAT_HELP =
  'Expected "Label=cidr cidr ...;Label2=cidr,...": a label of letters, digits, "_", "-" or "." ' +
  '(e.g. AzureWestEurope, CorpVPN, Zscaler), "=", then one or more IPv4 or IPv6 CIDR blocks such as ' +
  '20.50.0.0/16 or 2a01:111::/32 separated by spaces or commas; groups separated by ";". An empty value means none.';

/** Labels become part of City keys (`e:<label>`) stored in baselines, so keep them to a plain, stable alphabet. */
const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Known egress ranges (cloud regions, corporate VPN, secure web gateways such as Zscaler). Callers from
 * these are keyed as their provider rather than a city: the city of a shared egress point says nothing
 * about where the user is, and would make every user of the VPN look like they travel.
 */
export class EgressRanges {
  static readonly none = new EgressRanges(new Map());

  private readonly set: CidrSet;

  /** Label → canonical CIDR texts, in setting order; for display and diagnostics. */
  readonly groups: ReadonlyMap<string, readonly string[]>;

  private constructor(groups: Map<string, Cidr[]>) {
    const entries: [Cidr, string][] = [];
    for (const [label, cidrs] of groups) for (const cidr of cidrs) entries.push([cidr, label]);
    this.set = new CidrSet(entries);
    this.groups = new Map([...groups].map(([label, cidrs]) => [label, cidrs.map((c) => c.text)]));
  }

  /** Builds from already-parsed groups; throws (like {@link parseEgressRanges}) on a conflicting duplicate. */
  static fromGroups(groups: Map<string, Cidr[]>): EgressRanges {
    try {
      return new EgressRanges(groups);
    } catch (error) {
      throw new Error(`${EGRESS_RANGES_SETTING}: ${(error as Error).message}. ${FORMAT_HELP}`, {
        cause: error,
      });
    }
  }

  /** Number of distinct CIDR blocks. */
  get size(): number {
    return this.set.size;
  }

  /** Label of the most specific range containing `ip`, or undefined. */
  match(ip: string | ParsedIp): string | undefined {
    return this.set.match(ip);
  }
}

/**
 * Parses UC_EGRESS_RANGES. Empty or whitespace (or undefined) means none. A label may appear in several
 * groups (its blocks are merged); nested blocks with different labels are allowed and the most specific
 * one wins (e.g. a VPN /28 inside a cloud region /16). Throws an Error naming the setting, quoting the bad
 * part and describing the format, for: a group without "=", an invalid label, a label without blocks, an
 * invalid CIDR, the same block under two labels, or a block that lies inside a private/internal range
 * (such addresses are classified as internal first, so the entry could never take effect).
 */
export function parseEgressRanges(setting: string | undefined): EgressRanges {
  if (setting === undefined || setting.trim() === '') return EgressRanges.none;
  const fail = (problem: string): never => {
    throw new Error(`${EGRESS_RANGES_SETTING}: ${problem}. ${FORMAT_HELP}`);
  };
  const groups = new Map<string, Cidr[]>();
  for (const rawGroup of setting.split(';')) {
    const group = rawGroup.trim();
    if (group === '') continue; // tolerate a trailing or doubled ";"
    const equals = group.indexOf('=');
    if (equals < 0) fail(`"${group}" has no "=" between a label and its CIDR blocks`);
    const label = group.slice(0, equals).trim();
    if (!LABEL.test(label)) {
      fail(
        label === ''
          ? `"${group}" has no label before "="`
          : `label "${label}" in "${group}" may only contain letters, digits, "_", "-" and "." (at most 64)`,
      );
    }
    const texts = group
      .slice(equals + 1)
      .split(/[\s,]+/)
      .filter((t) => t !== '');
    if (texts.length === 0) fail(`"${group}" lists no CIDR blocks after "="`);
    const cidrs = groups.get(label) ?? [];
    for (const text of texts) {
      let cidr: Cidr;
      try {
        cidr = parseCidr(text);
      } catch (error) {
        return fail(`invalid CIDR "${text}" in "${group}": ${(error as Error).message}`);
      }
      const internal = internalRangeContaining(cidr);
      if (internal !== undefined) {
        fail(
          `"${text}" in "${group}" is inside a ${internal} range; such addresses are treated as internal ` +
            'and never located, so it would have no effect',
        );
      }
      cidrs.push(cidr);
    }
    groups.set(label, cidrs);
  }
  return EgressRanges.fromGroups(groups);
}
