/**
 * The one list of log paths pino must never print: credentials wherever they could appear (the
 * request's Authorization header, and secret-named fields of any logged object).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.password',
  '*.privateKey',
  '*.passphrase',
  '*.clientSecret',
  '*.token',
];

export const REDACT = { paths: REDACT_PATHS, censor: '[redacted]' };
