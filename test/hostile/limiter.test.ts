/** The reader's DepthLimiter (issue 14, point 4): the same text when shallow, valid JSON when cut, any chunking. */
import fc from 'fast-check';
import { expect, it } from 'vitest';

import { DepthLimiter } from '../../shared/activity/read.js';

const through = (text: string, max: number, cuts: number[]): string => {
  const buf = Buffer.from(text);
  const limiter = new DepthLimiter(max);
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of [...points, buf.length]) {
    parts.push(limiter.filter(buf.subarray(from, p)));
    from = p;
  }
  return Buffer.concat(parts).toString();
};

it('passes JSON within the depth unchanged and cuts deeper values to 0, however the input is chunked', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (value, cuts) => {
      const text = JSON.stringify(value);
      expect(through(text, 100, cuts)).toBe(text);
      const cut = through(text, 3, cuts);
      expect(() => JSON.parse(cut) as unknown).not.toThrow();
    }),
    { numRuns: 500 },
  );
  expect(through('{"a":[[1,"]]"],[2]],"b":"\\\\"}', 2, [3, 9, 17])).toBe('{"a":[0,0],"b":"\\\\"}');
});
