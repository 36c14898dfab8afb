/**
 * Errors the HTTP layer itself raises (authentication, scopes, method not allowed). Domain and
 * provider errors stay SnapvisorError / ProviderError; plugins/problem.ts turns all of them into
 * problem+json in one place.
 */
export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  constructor(
    readonly status: number,
    /** The problem type's last segment: urn:snapvisor:problem:<kind>. */
    readonly kind: string,
    readonly code: string,
    readonly title: string,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export const unauthenticated = (detail: string, error?: 'invalid_token') =>
  new HttpProblem(401, 'unauthenticated', error ? 'SNAPVISOR_ERR_INVALID_TOKEN' : 'SNAPVISOR_ERR_UNAUTHENTICATED', 'Unauthorized', detail, {
    'www-authenticate': error ? `Bearer realm="snapvisor", error="${error}"` : 'Bearer realm="snapvisor"',
  });

export const forbidden = (scope: string, detail = `this request needs the '${scope}' scope`) =>
  new HttpProblem(403, 'forbidden', 'SNAPVISOR_ERR_FORBIDDEN', 'Forbidden', detail, {
    'www-authenticate': `Bearer realm="snapvisor", error="insufficient_scope", scope="${scope}"`,
  });
