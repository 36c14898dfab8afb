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
