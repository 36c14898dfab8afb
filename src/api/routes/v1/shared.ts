import type { FastifyRequest } from 'fastify';
import { problems } from '../../schemas/common.ts';

/** Problems any GET of one resource may answer. */
export const READ_ONE = problems(400, 401, 403, 404, 500);
/** Problems a GET of a list may answer. */
export const READ_LIST = problems(400, 401, 403, 500);
/** Problems a mutating route may answer (the target's own answers included). */
export const WRITE = problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 507);

/**
 * preValidation for routes whose body is optional: no body counts as `{}`, so the body schema
 * (additionalProperties: false) still refuses unknown fields when one is sent.
 */
export async function optionalBody(request: FastifyRequest) {
  if (request.body === undefined || request.body === null) request.body = {};
}

const WAIT = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * preValidation for routes with `?wait=`: only a plain decimal integer (no sign, exponent, hex,
 * spaces, fraction or leading zeros), before the query coercion would read "1e2" as 100 or " 5" as
 * 5. The schema then checks the range 0..300.
 */
export async function strictWait(request: FastifyRequest) {
  const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
  if (schema?.properties?.['wait'] === undefined) return;
  const wait = (request.query as Record<string, unknown> | undefined)?.['wait'];
  if (wait === undefined || (typeof wait === 'string' && WAIT.test(wait))) return;
  throw Object.assign(new Error('invalid wait'), {
    statusCode: 400,
    validationContext: 'querystring',
    validation: [{ keyword: 'pattern', instancePath: '/wait', message: 'must be a whole number of seconds from 0 to 300, written in decimal digits' }],
  });
}
