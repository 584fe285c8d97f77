import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import {
  decodeKey,
  encodeKey,
  isHashedKey,
  isWellFormed,
  MAX_ENCODED_KEY_LENGTH,
} from '../../shared/baseline/keys.js';
import { mulberry32 } from '../../shared/demo/random.js';

/** True if the string holds a character Table Storage rejects in PartitionKey/RowKey. */
function hasForbidden(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f) || '/\\#?'.includes(s.charAt(i))) return true;
  }
  return false;
}

/** Random well-formed strings biased towards the characters the encoding must handle. */
function randomKey(random: () => number): string {
  const pools: (() => string)[] = [
    () => 'abcXYZ019.-_ ~'.charAt(Math.floor(random() * 14)),
    () => "/\\#?%'!".charAt(Math.floor(random() * 7)),
    () => String.fromCharCode(Math.floor(random() * 0x20)), // C0 controls
    () => String.fromCharCode(0x7f + Math.floor(random() * 0x21)), // DEL and C1 controls
    () => '!2F', // input that looks like an escape sequence
    () => String.fromCharCode(0xa0 + Math.floor(random() * (0xd7ff - 0xa0))), // BMP below surrogates
    () => String.fromCharCode(0xe000 + Math.floor(random() * 0x1ffe)), // BMP above surrogates
    () => String.fromCodePoint(0x10000 + Math.floor(random() * 0xfffff)), // astral: surrogate pairs
  ];
  // Mostly short keys, sometimes long enough to be hashed.
  const length = random() < 0.8 ? Math.floor(random() * 40) : Math.floor(random() * 700);
  let s = '';
  while (s.length < length) s += pools[Math.floor(random() * pools.length)]!();
  return s;
}

describe('encodeKey / decodeKey', () => {
  it('encodes operation names readably', () => {
    expect(encodeKey('Microsoft.Compute/virtualMachines/write')).toBe(
      'Microsoft.Compute!2FvirtualMachines!2Fwrite',
    );
    expect(encodeKey("a\\b#c?d%e'f!g\u0000h\u009f")).toBe('a!5Cb!23c!3Fd!25e!27f!21g!00h!9F');
    expect(encodeKey('São Paulo 😀 ~op')).toBe('São Paulo 😀 ~op');
    expect(encodeKey('')).toBe('');
  });

  it('the forbidden-character check itself works', () => {
    for (const bad of ['a/b', 'a\\b', '#', '?', '\u0000', '\u001f', '\u007f', '\u009f'])
      expect(hasForbidden(bad)).toBe(true);
    for (const ok of ['a!2Fb', '%', "'", '\u00a0', '😀']) expect(hasForbidden(ok)).toBe(false);
  });

  it('round-trips, never emits forbidden characters, stays short and is injective (5,000 random keys)', () => {
    const seed = 20241130;
    const random = mulberry32(seed);
    const seen = new Map<string, string>();
    let hashed = 0;
    for (let i = 0; i < 5000; i++) {
      const key = randomKey(random);
      const encoded = encodeKey(key);
      const context = `seed ${seed}, case ${i}: ${JSON.stringify(key)}`;

      expect(hasForbidden(encoded), context).toBe(false);
      expect(encoded.length, context).toBeLessThanOrEqual(MAX_ENCODED_KEY_LENGTH);
      expect(isWellFormed(encoded), context).toBe(true);
      expect(encodeKey(key), context).toBe(encoded); // deterministic
      if (isHashedKey(encoded)) {
        hashed++;
        expect(() => decodeKey(encoded), context).toThrow(/cannot be decoded/);
      } else {
        expect(decodeKey(encoded), context).toBe(key);
      }
      const previous = seen.get(encoded);
      if (previous !== undefined) expect(previous, context).toBe(key);
      seen.set(encoded, key);
    }
    expect(hashed).toBeGreaterThan(50); // the long-key branch was really exercised
  });

  it('shortens long keys to a readable prefix plus the SHA-256 of the full encoding', () => {
    const long = `Microsoft.Op/${'x'.repeat(1000)}`;
    const encoded = encodeKey(long);
    const fullEncoding = `Microsoft.Op!2F${'x'.repeat(1000)}`;
    const digest = createHash('sha256').update(fullEncoding).digest('hex');
    expect(encoded).toBe(`${fullEncoding.slice(0, MAX_ENCODED_KEY_LENGTH - 66)}!H${digest}`);
    expect(encoded).toHaveLength(MAX_ENCODED_KEY_LENGTH);
    expect(isHashedKey(encoded)).toBe(true);
    expect(encodeKey(`${long}y`)).not.toBe(encoded);
    // The boundary: 400 encoded characters are kept as they are, 401 are hashed.
    expect(encodeKey('a'.repeat(400))).toBe('a'.repeat(400));
    expect(isHashedKey(encodeKey('a'.repeat(401)))).toBe(true);
    expect(isHashedKey(encodeKey('/'.repeat(134)))).toBe(true); // 402 encoded characters
  });

  it('never cuts an escape sequence or a surrogate pair when shortening', () => {
    for (let shift = 0; shift < 3; shift++) {
      const encoded = encodeKey(`${'a'.repeat(shift)}${'/'.repeat(300)}`);
      const prefix = encoded.slice(0, encoded.indexOf('!H'));
      expect(prefix.slice(shift)).toMatch(/^(!2F)+$/);
    }
    for (let shift = 0; shift < 2; shift++) {
      const encoded = encodeKey(`${'a'.repeat(shift)}${'😀'.repeat(300)}`);
      expect(isWellFormed(encoded)).toBe(true);
      expect(encoded.slice(0, encoded.indexOf('!H')).slice(shift)).toMatch(/^(😀)+$/u);
    }
  });

  it('rejects strings with lone surrogates', () => {
    for (const bad of ['\ud800', 'a\udc00b', '😀'.charAt(0), `x${'😀'.charAt(1)}`]) {
      expect(() => encodeKey(bad)).toThrow(RangeError);
    }
  });

  it('decodeKey accepts only canonical encodings', () => {
    for (const bad of ['a/b', '!2f', '!41', '!', '!2', '!ZZ', 'a\u0001', 'x'.repeat(401)]) {
      expect(() => decodeKey(bad), JSON.stringify(bad)).toThrow();
    }
    expect(decodeKey('a!21b')).toBe('a!b');
  });
});
