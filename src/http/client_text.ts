/**
 * Text a client sends, checked once where bodies are read so that no route has to remember:
 * Postgres refuses NUL in `text` (SQLSTATE 22021) and the other C0 controls only corrupt logs,
 * headers and pages. Tab, line feed and carriage return stay allowed: a textarea posts its
 * line breaks as CR LF (HTML §4.10.21.8).
 */

// deno-lint-ignore no-control-regex -- finding control characters is the point
const FORBIDDEN_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;

/**
 * Why `value` cannot be taken as text, or null when it can: a C0 control character other than
 * tab, LF and CR, or a lone UTF-16 surrogate (which Postgres would silently store as U+FFFD).
 *
 * @example
 * textProblem("a\u0000b"); // => "contains the control character U+0000"
 * textProblem("line one\r\nline two"); // => null
 */
export function textProblem(value: string): string | null {
  const control = FORBIDDEN_CONTROL.exec(value);
  if (control) {
    return `contains the control character U+${hex4(control[0])}`;
  }
  if (!value.isWellFormed()) return "is not valid Unicode (a lone surrogate)";
  return null;
}

/** A field name as shown in a message: quoted, cut to 50 characters, controls made visible. */
export function shownName(name: string): string {
  const visible = Array.from(name.toWellFormed()).slice(0, 50).join("");
  return `"${visible.replace(ANY_CONTROL, (char) => `\\u${hex4(char)}`)}"`;
}

// deno-lint-ignore no-control-regex -- making control characters visible is the point
const ANY_CONTROL = /[\u0000-\u001f]/g;

function hex4(char: string): string {
  return char.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
}
