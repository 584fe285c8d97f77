/**
 * Encoding of logical keys (any well-formed string, e.g. `Microsoft.Compute/virtualMachines/write`) into
 * Table Storage PartitionKey/RowKey values.
 *
 * Table Storage rejects `/`, `\`, `#`, `?` and the control characters U+0000–U+001F and U+007F–U+009F in keys,
 * and limits a key to 1 KiB (512 UTF-16 code units). We additionally escape:
 * - `%`: the service URL-decodes keys in point operations, so keys holding `%` fail to update/delete
 *   (documented Azure Storage issue; also Azurite #1418);
 * - `'`: it delimits OData string literals; the SDK doubles it, but other tools (Storage Explorer) do not;
 * - `!`: our escape character, so the encoding stays reversible.
 * Each is written as `!` + two upper-case hex digits of its UTF-16 code unit (all such characters are < U+0100).
 *
 * Keys whose encoding exceeds {@link MAX_ENCODED_KEY_LENGTH} keep an encoded prefix followed by `!H` and the
 * SHA-256 of the full encoding. Such keys are NOT reversible: adapters store the logical key in a property
 * and never need {@link decodeKey} on the hot path. The encoding is deterministic and must never change,
 * because stored rows are addressed by it.
 */
import { createHash } from 'node:crypto';

const ESCAPE = '!';
const HASH_MARKER = 'H'; // not a hex digit, so `!H` cannot be confused with an escape
/** Well below the 512-code-unit limit, leaving room for a future key prefix without re-keying. */
export const MAX_ENCODED_KEY_LENGTH = 400;
const HASH_SUFFIX_LENGTH = ESCAPE.length + HASH_MARKER.length + 64;

function mustEscape(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2f /* / */ ||
    code === 0x5c /* \ */ ||
    code === 0x23 /* # */ ||
    code === 0x3f /* ? */ ||
    code === 0x25 /* % */ ||
    code === 0x27 /* ' */ ||
    code === 0x21 /* ! */
  );
}

/** Matches a UTF-16 surrogate that is not part of a pair (the `u` flag makes proper pairs one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/** True when the string can be converted to UTF-8 (JSON, SQLite, HTTP) and back without loss. */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/**
 * Encodes a logical key into a Table Storage-safe key. Deterministic; injective except for the (astronomically
 * unlikely) SHA-256 collisions between keys longer than the limit.
 * @throws RangeError for strings with lone surrogates: they cannot survive UTF-8, so no backend could store them.
 */
export function encodeKey(s: string): string {
  if (!isWellFormed(s)) {
    throw new RangeError(`Key contains a lone UTF-16 surrogate and cannot be stored: ${JSON.stringify(s)}`);
  }
  let out = '';
  let plainFrom = 0;
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (mustEscape(code)) {
      out += s.slice(plainFrom, i) + ESCAPE + code.toString(16).toUpperCase().padStart(2, '0');
      plainFrom = i + 1;
    }
  }
  out += s.slice(plainFrom);
  if (out.length <= MAX_ENCODED_KEY_LENGTH) return out;

  let cut = MAX_ENCODED_KEY_LENGTH - HASH_SUFFIX_LENGTH;
  // Keep the prefix readable and valid: never split an escape triple or a surrogate pair.
  if (out[cut - 1] === ESCAPE) cut -= 1;
  else if (out[cut - 2] === ESCAPE) cut -= 2;
  const last = out.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut -= 1;
  // Hash the encoding, not the input: the encoding is well-formed, so its UTF-8 bytes are unambiguous.
  const digest = createHash('sha256').update(out, 'utf8').digest('hex');
  return out.slice(0, cut) + ESCAPE + HASH_MARKER + digest;
}

/** True for keys produced by the hashing branch of {@link encodeKey}. */
export function isHashedKey(k: string): boolean {
  return hashMarkerIndex(k) >= 0;
}

function hashMarkerIndex(k: string): number {
  const at = k.length - HASH_SUFFIX_LENGTH;
  return at >= 0 && k[at] === ESCAPE && k[at + 1] === HASH_MARKER && /^[0-9a-f]{64}$/.test(k.slice(at + 2))
    ? at
    : -1;
}

/**
 * Inverse of {@link encodeKey} for keys that were not hashed. Strict: accepts only canonical encodings, so
 * `encodeKey(decodeKey(k)) === k` whenever it returns.
 * @throws Error for hashed keys (not reversible) and for strings encodeKey cannot have produced.
 */
export function decodeKey(k: string): string {
  if (hashMarkerIndex(k) >= 0) {
    throw new Error(`Key was shortened with a hash and cannot be decoded: ${JSON.stringify(k)}`);
  }
  if (k.length > MAX_ENCODED_KEY_LENGTH || !isWellFormed(k)) {
    throw new Error(`Not an encodeKey output (too long or malformed): ${JSON.stringify(k.slice(0, 60))}`);
  }
  let out = '';
  let plainFrom = 0;
  for (let i = 0; i < k.length; i++) {
    const code = k.charCodeAt(i);
    if (code === 0x21 /* ! */) {
      const hex = k.slice(i + 1, i + 3);
      const decoded = /^[0-9A-F]{2}$/.test(hex) ? Number.parseInt(hex, 16) : -1;
      if (decoded < 0 || !mustEscape(decoded)) {
        throw new Error(`Invalid escape at offset ${i} in encoded key ${JSON.stringify(k)}`);
      }
      out += k.slice(plainFrom, i) + String.fromCharCode(decoded);
      i += 2;
      plainFrom = i + 1;
    } else if (mustEscape(code)) {
      throw new Error(`Unescaped reserved character at offset ${i} in encoded key ${JSON.stringify(k)}`);
    }
  }
  return out + k.slice(plainFrom);
}
