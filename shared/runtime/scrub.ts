/**
 * Exceptions scrubbed before they leave the process for telemetry: secrets always (keys, signatures, tokens,
 * passwords), identities — callers (UPNs, e-mail addresses, object ids) and IP addresses — unless
 * UC_TELEMETRY_INCLUDE_IDENTITIES allows them. Messages of our own errors already name keys by tag (keyTag); this
 * catches what a library or the service put in theirs.
 */
const SECRETS: [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*/g, '$1 <redacted>'],
  [
    /\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig|key|secret|password|pwd|token|license_key|licenseKey|InstrumentationKey|client_secret)(["']?\s*[=:]\s*["']?)[^\s;&"',}]+/gi,
    '$1$2<redacted>',
  ],
  // A MaxMind licence key or a storage key on its own (40+ base64 characters).
  [/\b[A-Za-z0-9+/]{40,}={0,2}/g, '<redacted>'],
];

const IDENTITIES: [RegExp, string][] = [
  [/[^\s"'<>()[\]{},;:/\\]+@[^\s"'<>()[\]{},;:/\\]+/g, '<caller>'],
  [/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>'],
  [/\b(?:\d{1,3}\.){3}\d{1,3}\b/g, '<ip>'],
  [/(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}(?::|[0-9a-f]{1,4})(?![\w:])/gi, '<ip>'],
  [/(?<![\w:])(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?(?![\w:])/gi, '<ip>'],
];

/** `text` without secrets, and without identities unless `includeIdentities`. */
export function scrubText(text: string, includeIdentities: boolean): string {
  let out = text;
  for (const [pattern, replacement] of SECRETS) out = out.replace(pattern, replacement);
  if (!includeIdentities)
    for (const [pattern, replacement] of IDENTITIES) out = out.replace(pattern, replacement);
  return out;
}

/** A copy of `error` (name, message, stack, and its causes' messages) scrubbed by {@link scrubText}. */
export function scrubError(error: Error, includeIdentities: boolean): Error {
  const causes: string[] = [];
  for (let c: unknown = error.cause, depth = 0; c !== undefined && depth < 4; depth++) {
    causes.push(c instanceof Error ? `${c.name}: ${c.message}` : typeof c === 'string' ? c : typeof c);
    c = c instanceof Error ? c.cause : undefined;
  }
  const message = [error.message, ...causes.map((c) => `caused by ${c}`)].join('; ');
  const scrubbed = new Error(scrubText(message, includeIdentities));
  scrubbed.name = error.name;
  scrubbed.stack = error.stack === undefined ? undefined : scrubText(error.stack, includeIdentities);
  return scrubbed;
}
