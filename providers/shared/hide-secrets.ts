/** Every occurrence of each secret in `text` replaced by `[redacted]` (empty secrets are ignored). Pure. */
export function hideSecrets(text: string, secrets: readonly string[]): string {
  return secrets.reduce((acc, s) => (s === '' ? acc : acc.split(s).join('[redacted]')), text);
}
