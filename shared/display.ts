/**
 * Text that came from logs (operation names, callers, record ids, whatever a hostile file holds) made safe to
 * show: on a terminal, in a one-line table cell, in Sentinel's and the workbook's text fields. Control characters
 * (Unicode category Cc: C0 with the ESC that starts ANSI sequences, CR, LF, BEL, backspace, NUL; DEL; C1), format
 * characters (category Cf: the bidirectional controls, which make a line display something other than what it
 * holds, zero-width spaces and joiners, the BOM, soft hyphens, invisible tags) and the line and paragraph
 * separators are written as visible escapes (`\x1b`, `\u202e`, `\u{e0041}`); everything else is kept.
 */
export const UNSAFE_DISPLAY = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

export function displaySafe(text: string, maxLength = Number.POSITIVE_INFINITY): string {
  const s = text.replace(UNSAFE_DISPLAY, (c) => {
    const code = c.codePointAt(0)!;
    if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
    return code <= 0xffff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\u{${code.toString(16)}}`;
  });
  return s.length > maxLength ? `${s.slice(0, Math.max(0, maxLength - 1))}…` : s;
}
