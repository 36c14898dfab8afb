/**
 * Schema helpers shared by every route. Nullable scalars and enums are written as plain JSON
 * Schema (`type: ['string', 'null']`, `type: 'string', enum`) instead of TypeBox unions: the
 * serializer (fast-json-stringify) has a fast path for them, whereas `anyOf` makes it validate
 * each value at run time — that matters for large snapshot trees.
 */
import { Type, type Static, type TSchema } from 'typebox';

export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function NullableEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number] | null>({ type: ['string', 'null'], enum: [...values, null], ...options });
}

export function NullableString(options: Record<string, unknown> = {}) {
  return Type.Unsafe<string | null>({ type: ['string', 'null'], ...options });
}

export function NullableBoolean(options: Record<string, unknown> = {}) {
  return Type.Unsafe<boolean | null>({ type: ['boolean', 'null'], ...options });
}

/** A nullable object: the object schema with `null` added to its type. */
export function NullableObject<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, type: ['object', 'null'] });
}

export const IsoTime = Type.String({ format: 'date-time', description: 'ISO 8601 UTC timestamp' });
export const NullableIsoTime = NullableString({ format: 'date-time', description: 'ISO 8601 UTC timestamp, or null' });

export const Id = Type.String({ minLength: 1, maxLength: 200, description: 'Snapvisor id (UUID)' });

/** RFC 9457 problem details, as every error response carries them. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'urn:snapvisor:problem:<kind>' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String(),
    code: Type.String({ description: 'Stable machine-readable code, SNAPVISOR_ERR_*' }),
    requestId: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
    retryAfter: Type.Optional(Type.Integer({ description: 'Seconds to wait before retrying' })),
    reason: Type.Optional(Type.String()),
  },
  { $id: 'Problem', title: 'Problem', additionalProperties: true },
);
export type ProblemBody = Static<typeof Problem>;

const ProblemRef = Type.Ref('Problem');

/** Error responses a route may give, by status. Every route lists the ones it can return. */
export function problems<const S extends readonly number[]>(...statuses: S): Record<S[number], typeof ProblemRef> {
  const out: Record<number, typeof ProblemRef> = {};
  for (const status of statuses) out[status] = ProblemRef;
  return out as Record<S[number], typeof ProblemRef>;
}

/** Every authenticated route can answer these, whatever it does. */
export const AUTH_PROBLEMS = [401, 403, 500] as const;

/** Routes without a body still refuse one with unknown fields (see emptyBody in routes/v1/shared.ts). */
export const EmptyBody = Type.Object({}, { additionalProperties: false });

/** 304: the representation named by If-None-Match is still current; no body. */
export const NotModified = Type.Null({ description: 'Not modified: the ETag sent in If-None-Match is current' });

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ maxLength: 500 })),
};
