/**
 * Hostile strings and values for the fuzz tests: control characters and ANSI escapes, bidirectional overrides,
 * lone surrogates, every character Table Storage forbids in keys, CSV-injection prefixes, non-BMP text, and
 * (with `huge`) strings of a megabyte.
 */
import fc from 'fast-check';

export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  '\u001b[31mRED\u001b[0m',
  '\u001b]8;;https://evil.example/\u0007click\u001b]8;;\u0007',
  'line\r\nbreak',
  '\u202eevil\u202c',
  '\ud800',
  'a\udfffb',
  "/\\#?%'!",
  '\u007f\u0085\u009f',
  "=cmd|' /C calc'!A0",
  "+SUM(1+1)*cmd|' /C calc'!A0",
  "-2+3+cmd|' /C calc'!A0",
  '@SUM(1+1)',
  '\t=1+1',
  'Ünïcødé ✓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🙂',
  'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE',
  'null',
  '{"json":true}',
  '[1,2,3]',
];

/** One of the hostile strings, random text of any code points, or a mix of both. */
export function hostileString(opts: { huge?: boolean } = {}): fc.Arbitrary<string> {
  const parts = fc.oneof(
    fc.constantFrom(...HOSTILE_STRINGS),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
  );
  const mixed = fc.array(parts, { maxLength: 4 }).map((xs) => xs.join(''));
  if (opts.huge !== true) return mixed;
  return fc.oneof(
    { weight: 5, arbitrary: mixed },
    { weight: 1, arbitrary: fc.constantFrom('x', '\u001b', '=', '\ud800').map((c) => c.repeat(1 << 20)) },
  );
}

/** Any JSON-ish value, hostile strings included: for dynamic columns, wrong types and nulls. */
export function hostileValue(opts: { huge?: boolean } = {}): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 4, arbitrary: hostileString(opts) },
    fc.constant(null),
    fc.constant(undefined),
    fc.boolean(),
    fc.double(),
    fc.integer(),
    fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e20, -1e15, 0, 2 ** 53),
    fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
  );
}

/** True when `s` holds no C0/C1 control character, DEL, line/paragraph separator or bidi control. */
export function isDisplaySafe(s: string): boolean {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return !/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(s);
}

export const hasLoneSurrogate = (s: string): boolean => /\p{Cs}/u.test(s);

/** AzureActivity column names (and legacy ones) a hostile row may carry. */
export const ACTIVITY_COLUMNS: readonly string[] = [
  'TimeGenerated',
  'EventSubmissionTimestamp',
  'OperationNameValue',
  'OperationName',
  'Caller',
  'CallerIpAddress',
  'Claims_d',
  'Claims',
  'Authorization_d',
  'Properties_d',
  'CategoryValue',
  'ActivityStatusValue',
  'EventDataId',
  'CorrelationId',
  'SubscriptionId',
  'ResourceGroup',
  '_ResourceId',
];

/** Any AzureActivity-shaped object: any subset of the columns, any values (huge ones with `huge`). */
export function hostileRow(opts: { huge?: boolean } = {}): fc.Arbitrary<Record<string, unknown>> {
  return fc.dictionary(fc.constantFrom(...ACTIVITY_COLUMNS), hostileValue(opts), {
    maxKeys: ACTIVITY_COLUMNS.length,
  });
}
