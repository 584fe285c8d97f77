import { describe, expect, it } from 'vitest';

import { CidrSet, internalRange, isInternal, normaliseIp, parseCidr, parseIp } from '../../shared/geo/ip.js';

describe('normaliseIp', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4'],
    ['  89.160.20.112 \t', '89.160.20.112'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['1.2.3.4:443', '1.2.3.4'],
    ['1.2.3.4:0', '1.2.3.4'],
    ['1.2.3.4:65535', '1.2.3.4'],
  ])('IPv4 %j → %j', (raw, expected) => {
    expect(normaliseIp(raw)).toBe(expected);
  });

  it.each([
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['::ffff:102:304', '1.2.3.4'],
    ['0:0:0:0:0:ffff:5aa0:1470', '90.160.20.112'],
    ['[::ffff:1.2.3.4]:8080', '1.2.3.4'],
    ['::ffff:255.255.255.255', '255.255.255.255'],
  ])('IPv4-mapped IPv6 %j → %j', (raw, expected) => {
    expect(normaliseIp(raw)).toBe(expected);
  });

  it.each([
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs is compressed
    ['2001:db8:0:0:0:1:0:0', '2001:db8::1:0:0'], // the longer (here earlier) run is compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // longest run wins over an earlier shorter one
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2A00:1450:4001:0800:0000:0000:0000:200E', '2a00:1450:4001:800::200e'],
    ['2a00:1450:4001:800::200e', '2a00:1450:4001:800::200e'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated) is not mapped: stays IPv6
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:DB8::1]:443', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%25eth0]:22', 'fe80::1'],
    [' 2001:db8::1 ', '2001:db8::1'],
  ])('IPv6 %j → %j', (raw, expected) => {
    expect(normaliseIp(raw)).toBe(expected);
  });

  it('gives equal strings for equal IPv6 addresses written differently', () => {
    const forms = ['2a01:4f8::1', '2A01:04F8:0:0:0:0:0:1', '2a01:4f8:0::0:1', '[2a01:4f8::0001]:80'];
    expect(new Set(forms.map(normaliseIp))).toEqual(new Set(['2a01:4f8::1']));
  });

  it.each([
    '',
    '   ',
    'not an ip',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '01.2.3.4',
    '0x1.2.3.4',
    '1.2.3.4:',
    '1.2.3.4:65536',
    '1.2.3.4:123456',
    '1.2.3.4:80:80',
    '1.2.3.4:http',
    '[1.2.3.4]',
    '[::1',
    '[::1]x',
    '[::1]:',
    '[::1]:99999',
    '::ffff:1.2.3.4:80',
    '1::2::3',
    '12345::',
    'gggg::1',
    '1.2.3.4/32',
  ])('rejects %j', (raw) => {
    expect(normaliseIp(raw)).toBeUndefined();
  });
});

describe('parseIp', () => {
  it('gives IPv4 values as unsigned 32-bit numbers', () => {
    expect(parseIp('255.255.255.255')).toEqual({ version: 4, text: '255.255.255.255', value: 0xffffffff });
    expect(parseIp('1.2.3.4')).toEqual({ version: 4, text: '1.2.3.4', value: 0x01020304 });
    expect(parseIp('::ffff:128.0.0.1')).toEqual({ version: 4, text: '128.0.0.1', value: 0x80000001 });
  });

  it('gives IPv6 values as 128-bit bigints', () => {
    expect(parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')?.value).toBe((1n << 128n) - 1n);
    expect(parseIp('2001:db8::1')).toEqual({
      version: 6,
      text: '2001:db8::1',
      value: (0x20010db8n << 96n) | 1n,
    });
  });
});

describe('internal ranges', () => {
  // [label, first address, last address, just before (public or undefined), just after (public or undefined)]
  const ranges: [string, string, string, string | undefined, string | undefined][] = [
    ['unspecified', '0.0.0.0', '0.255.255.255', undefined, '1.0.0.0'],
    ['private', '10.0.0.0', '10.255.255.255', '9.255.255.255', '11.0.0.0'],
    ['cgnat', '100.64.0.0', '100.127.255.255', '100.63.255.255', '100.128.0.0'],
    ['loopback', '127.0.0.0', '127.255.255.255', '126.255.255.255', '128.0.0.0'],
    ['link-local', '169.254.0.0', '169.254.255.255', '169.253.255.255', '169.255.0.0'],
    ['private', '172.16.0.0', '172.31.255.255', '172.15.255.255', '172.32.0.0'],
    ['documentation', '192.0.2.0', '192.0.2.255', '192.0.1.255', '192.0.3.0'],
    ['private', '192.168.0.0', '192.168.255.255', '192.167.255.255', '192.169.0.0'],
    ['benchmarking', '198.18.0.0', '198.19.255.255', '198.17.255.255', '198.20.0.0'],
    ['documentation', '198.51.100.0', '198.51.100.255', '198.51.99.255', '198.51.101.0'],
    ['documentation', '203.0.113.0', '203.0.113.255', '203.0.112.255', '203.0.114.0'],
    ['multicast', '224.0.0.0', '239.255.255.255', '223.255.255.255', undefined],
    ['reserved', '240.0.0.0', '255.255.255.254', undefined, undefined],
    ['broadcast', '255.255.255.255', '255.255.255.255', undefined, undefined],
    ['unspecified', '::', '::', undefined, undefined],
    ['loopback', '::1', '::1', undefined, '::2'],
    [
      'private',
      'fc00::',
      'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'fe00::',
    ],
    [
      'link-local',
      'fe80::',
      'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'fec0::',
    ],
    [
      'multicast',
      'ff00::',
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      undefined,
    ],
    [
      'documentation',
      '2001:db8::',
      '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
      '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff',
      '2001:db9::',
    ],
    [
      'documentation',
      '3fff::',
      '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff',
      '3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      '3fff:1000::',
    ],
  ];

  it.each(ranges)('%s %s – %s', (label, first, last, before, after) => {
    expect(internalRange(first)).toBe(label);
    expect(internalRange(last)).toBe(label);
    expect(isInternal(first)).toBe(true);
    expect(isInternal(last)).toBe(true);
    if (before !== undefined) {
      expect(internalRange(before)).toBeUndefined();
      expect(isInternal(before)).toBe(false);
    }
    if (after !== undefined) {
      expect(internalRange(after)).toBeUndefined();
      expect(isInternal(after)).toBe(false);
    }
  });

  it('treats IPv4-mapped internal addresses as internal', () => {
    expect(internalRange('::ffff:10.1.2.3')).toBe('private');
    expect(internalRange('::ffff:7f00:1')).toBe('loopback');
    expect(isInternal('::ffff:89.160.20.112')).toBe(false);
  });

  it('accepts a pre-parsed address and ignores non-addresses', () => {
    expect(isInternal(parseIp('192.168.1.1')!)).toBe(true);
    expect(isInternal('8.8.8.8')).toBe(false);
    expect(isInternal('2a00:1450:4001:800::200e')).toBe(false);
    expect(isInternal('not an ip')).toBe(false);
  });
});

describe('parseCidr', () => {
  it('parses IPv4 and IPv6 blocks with their bounds', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({
      version: 4,
      text: '10.0.0.0/8',
      prefix: 8,
      first: 0x0a000000,
      last: 0x0affffff,
    });
    expect(parseCidr('0.0.0.0/0')).toMatchObject({ first: 0, last: 0xffffffff });
    expect(parseCidr(' 2001:DB8::/32 ')).toEqual({
      version: 6,
      text: '2001:db8::/32',
      prefix: 32,
      first: 0x20010db8n << 96n,
      last: (0x20010db8n << 96n) | ((1n << 96n) - 1n),
    });
    expect(parseCidr('::/0')).toMatchObject({ first: 0n, last: (1n << 128n) - 1n });
  });

  it('reads a bare address as a single host', () => {
    expect(parseCidr('1.2.3.4')).toMatchObject({ text: '1.2.3.4/32', first: 0x01020304, last: 0x01020304 });
    expect(parseCidr('2001:db8::1')).toMatchObject({ text: '2001:db8::1/128', prefix: 128 });
  });

  it('turns IPv4-mapped IPv6 blocks into IPv4 blocks', () => {
    expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ version: 4, text: '10.0.0.0/8' });
    expect(parseCidr('::ffff:0:0/96')).toMatchObject({ version: 4, text: '0.0.0.0/0' });
  });

  it.each([
    ['10.1.0.0/8', /host bits are set \(did you mean 10\.0\.0\.0\/8\?\)/],
    ['2001:db8::1/32', /host bits are set \(did you mean 2001:db8::\/32\?\)/],
    ['10.0.0.0/33', /from 0 to 32 for IPv4/],
    ['2001:db8::/129', /from 0 to 128 for IPv6/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/8/8', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/ 8', /prefix length/],
    ['10.0.0/8', /"10\.0\.0" is not an IPv4 or IPv6 address/],
    ['example.com/8', /not an IPv4 or IPv6 address/],
    ['', /not an IPv4 or IPv6 address/],
  ])('rejects %j', (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
  });
});

/** Small deterministic PRNG so the randomised comparison below is reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function formatV4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

describe('CidrSet', () => {
  it('returns the most specific label, for IPv4 and IPv6', () => {
    const set = new CidrSet([
      ['20.0.0.0/8', 'wide'],
      ['20.50.0.0/16', 'region'],
      ['20.50.7.0/24', 'vpn'],
      ['20.50.7.128/25', 'vpn-b'],
      ['2a01:111::/32', 'v6-wide'],
      ['2a01:111:f400::/48', 'v6-narrow'],
    ]);
    expect(set.size).toBe(6);
    expect(set.match('20.1.1.1')).toBe('wide');
    expect(set.match('20.50.0.0')).toBe('region');
    expect(set.match('20.50.6.255')).toBe('region');
    expect(set.match('20.50.7.0')).toBe('vpn');
    expect(set.match('20.50.7.127')).toBe('vpn');
    expect(set.match('20.50.7.128')).toBe('vpn-b');
    expect(set.match('20.50.7.255')).toBe('vpn-b');
    expect(set.match('20.50.8.0')).toBe('region');
    expect(set.match('20.255.255.255')).toBe('wide');
    expect(set.match('19.255.255.255')).toBeUndefined();
    expect(set.match('21.0.0.0')).toBeUndefined();
    expect(set.match('::ffff:20.50.7.200')).toBe('vpn-b');
    expect(set.match('2a01:111:1::1')).toBe('v6-wide');
    expect(set.match('2a01:111:f400:ffff::1')).toBe('v6-narrow');
    expect(set.match('2a01:112::')).toBeUndefined();
    expect(set.match('not an ip')).toBeUndefined();
    expect(set.match(parseIp('20.50.7.1')!)).toBe('vpn');
  });

  it('matches nothing when empty, and matches everything with /0', () => {
    expect(new CidrSet([]).match('1.2.3.4')).toBeUndefined();
    const all = new CidrSet([
      ['0.0.0.0/0', 'any4'],
      ['::/0', 'any6'],
    ]);
    expect(all.match('0.0.0.0')).toBe('any4');
    expect(all.match('255.255.255.255')).toBe('any4');
    expect(all.match('ffff::')).toBe('any6');
  });

  it('merges an identical duplicate but rejects one block under two labels', () => {
    expect(
      new CidrSet([
        ['20.0.0.0/8', 'a'],
        ['20.0.0.0/8', 'a'],
      ]).size,
    ).toBe(1);
    expect(
      () =>
        new CidrSet([
          ['20.0.0.0/8', 'a'],
          ['20.0.0.0/8', 'b'],
        ]),
    ).toThrow('20.0.0.0/8 is listed twice, as "a" and as "b"');
  });

  it('agrees with a brute-force most-specific match on random nested blocks', () => {
    const random = mulberry32(42);
    const blocks: { first: number; last: number; prefix: number; label: string }[] = [];
    for (let i = 0; i < 400; i++) {
      // Concentrate blocks in 20.0.0.0/8 so they nest often.
      const prefix = 8 + Math.floor(random() * 25);
      const size = 2 ** (32 - prefix);
      const address = 0x14000000 + Math.floor(random() * 2 ** 24);
      const first = address - (address % size);
      const text = `${formatV4(first)}/${prefix}`;
      blocks.push({ first, last: first + size - 1, prefix, label: text });
    }
    const set = new CidrSet(blocks.map((b) => [b.label, b.label] as const));
    const probes: number[] = [];
    for (const b of blocks) probes.push(b.first, b.last, b.first - 1, b.last + 1);
    for (let i = 0; i < 2000; i++) probes.push(0x14000000 + Math.floor(random() * 2 ** 24));
    for (const probe of probes) {
      let best: (typeof blocks)[number] | undefined;
      for (const b of blocks) {
        if (b.first <= probe && probe <= b.last && (best === undefined || b.prefix > best.prefix)) best = b;
      }
      expect(set.match(formatV4(probe)), formatV4(probe)).toBe(best?.label);
    }
  });
});
