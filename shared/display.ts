/**
 * Text that came from logs (operation names, callers, record ids, whatever a hostile file holds) made safe to
 * show: on a terminal, in a one-line table cell, in Sentinel's and the workbook's text fields. C0 and C1 control
 * characters (the ESC that starts ANSI sequences, CR, LF, BEL, backspace, NUL), DEL, the line and paragraph
 * separators and the Unicode bidirectional controls (which make a line display something other than what it
 * holds) are written as visible escapes (`\x1b`, `\u202e`); everything else is kept.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function displaySafe(text: string, maxLength = Number.POSITIVE_INFINITY): string {
  const s = text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return s.length > maxLength ? `${s.slice(0, Math.max(0, maxLength - 1))}…` : s;
}
