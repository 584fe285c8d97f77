import { describe, expect, it } from 'vitest';

import { EgressRanges, parseEgressRanges } from '../../shared/geo/egress.js';

describe('parseEgressRanges', () => {
  it('treats undefined, empty and blank as none', () => {
    for (const setting of [undefined, '', '   ', ';', ' ; ; ']) {
      const ranges = parseEgressRanges(setting);
      expect(ranges.size).toBe(0);
      expect(ranges.match('20.50.1.1')).toBeUndefined();
    }
    expect(parseEgressRanges('')).toBe(EgressRanges.none);
  });

  it('parses labels with CIDRs separated by spaces or commas, groups by ";"', () => {
    const ranges = parseEgressRanges(
      'AzureWestEurope=20.50.0.0/16 20.61.0.0/16,2a01:111::/32; CorpVPN = 81.2.69.0/24 ;Zscaler=165.225.0.0/17, ,136.226.0.0/16;',
    );
    expect(ranges.size).toBe(6);
    expect([...ranges.groups]).toEqual([
      ['AzureWestEurope', ['20.50.0.0/16', '20.61.0.0/16', '2a01:111::/32']],
      ['CorpVPN', ['81.2.69.0/24']],
      ['Zscaler', ['165.225.0.0/17', '136.226.0.0/16']],
    ]);
    expect(ranges.match('20.50.255.255')).toBe('AzureWestEurope');
    expect(ranges.match('20.61.0.1')).toBe('AzureWestEurope');
    expect(ranges.match('20.62.0.1')).toBeUndefined();
    expect(ranges.match('2a01:111:f400::1')).toBe('AzureWestEurope');
    expect(ranges.match('[2a01:111::5]:443')).toBe('AzureWestEurope');
    expect(ranges.match('81.2.69.142')).toBe('CorpVPN');
    expect(ranges.match('::ffff:81.2.69.142')).toBe('CorpVPN');
    expect(ranges.match('165.225.127.255')).toBe('Zscaler');
    expect(ranges.match('165.225.128.0')).toBeUndefined();
    expect(ranges.match('136.226.3.4')).toBe('Zscaler');
  });

  it('accepts newlines and tabs as separators, merges a repeated label, and picks the most specific range', () => {
    const ranges = parseEgressRanges('Cloud=20.0.0.0/8\n\t20.50.0.0/16;VPN=20.50.7.0/24;Cloud=52.0.0.0/8');
    expect(ranges.groups.get('Cloud')).toEqual(['20.0.0.0/8', '20.50.0.0/16', '52.0.0.0/8']);
    expect(ranges.match('20.50.7.9')).toBe('VPN');
    expect(ranges.match('20.50.8.9')).toBe('Cloud');
    expect(ranges.match('52.1.1.1')).toBe('Cloud');
  });

  it.each([
    ['CorpVPN 81.2.69.0/24', '"CorpVPN 81.2.69.0/24" has no "="'],
    ['=81.2.69.0/24', '"=81.2.69.0/24" has no label'],
    ['Corp VPN=81.2.69.0/24', 'label "Corp VPN" in "Corp VPN=81.2.69.0/24" may only contain'],
    ['e:x=81.2.69.0/24', 'label "e:x"'],
    [`${'L'.repeat(65)}=81.2.69.0/24`, 'at most 64'],
    ['CorpVPN=', '"CorpVPN=" lists no CIDR blocks'],
    ['CorpVPN= , ', 'lists no CIDR blocks'],
    ['CorpVPN=81.2.69.0/33', 'invalid CIDR "81.2.69.0/33" in "CorpVPN=81.2.69.0/33": prefix length "/33"'],
    ['CorpVPN=81.2.69.1/24', 'invalid CIDR "81.2.69.1/24" in "CorpVPN=81.2.69.1/24": host bits are set'],
    ['A=81.2.69.0/24;B=81.2.300.0/24', 'invalid CIDR "81.2.300.0/24" in "B=81.2.300.0/24"'],
    ['CorpVPN=81.2.69.0/24;Other=81.2.69.0/24', '81.2.69.0/24 is listed twice, as "CorpVPN" and as "Other"'],
    ['CorpVPN=10.1.0.0/16', '"10.1.0.0/16" in "CorpVPN=10.1.0.0/16" is inside a private range'],
    ['Lab=2001:db8:1::/48', 'inside a documentation range'],
    ['CorpVPN=81.2.69.0/24=x', 'invalid CIDR "81.2.69.0/24=x"'],
  ])('rejects %j, naming the setting, quoting the bad part and explaining the format', (setting, problem) => {
    let message = '';
    try {
      parseEgressRanges(setting);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^UC_EGRESS_RANGES: /);
    expect(message).toContain(problem);
    expect(message).toContain('Expected "Label=cidr cidr ...;Label2=cidr,..."');
  });

  it('allows a range that only partly overlaps an internal one (internal addresses still win)', () => {
    const ranges = parseEgressRanges('Everything=0.0.0.0/0');
    expect(ranges.match('8.8.8.8')).toBe('Everything');
  });
});
