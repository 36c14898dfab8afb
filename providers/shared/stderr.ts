/**
 * The one line of a tool's stderr that goes into an error message (never the whole stderr: it
 * can be long and is not meant for API clients).
 */

/** The first line with text, trimmed, skipping lines `skip` matches (e.g. progress output); undefined when there is none. */
export function firstLine(text: string, skip?: RegExp): string | undefined {
  return text
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !(skip?.test(l) ?? false));
}
