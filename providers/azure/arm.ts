/**
 * The ARM session: the credential, the ComputeManagementClient, and the one way every call is made.
 *
 * - The SDK never retries and never sleeps on Retry-After (`retryOptions.maxRetries: 0`): with a
 *   5-minute per-disk snapshot window a throttled call could sleep inside the SDK for minutes. A
 *   429 surfaces at once as `throttled` with `retryAfterMs`, and the engine decides.
 * - Expired token mid-job: ARM answers 401 ExpiredAuthenticationToken (or InvalidAuthenticationToken
 *   when the token was revoked). Two caches hold the old token: MSAL's (in the credential) and the
 *   bearer-token policy's token cycler (in the client's pipeline), which refreshes only near the
 *   token's own expiry and ignores a 401 without a WWW-Authenticate challenge. So `renew()` makes a
 *   NEW credential and a NEW client (cheap: no I/O until the next call), and `call()` repeats the
 *   call once with them. ARM refused the request, so repeating it is safe; for a long-running
 *   operation whose poll got the 401, the repeat is a re-PUT/re-DELETE of the same deterministic
 *   name, which Azure treats as an update.
 * - Every error goes through errors.ts `fromAzureError` with the secrets to redact.
 */
import { ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { ComputeManagementClient } from '@azure/arm-compute';
import type { TokenCredential } from '@azure/core-auth';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import type { CallContext, Logger } from '../contract.ts';
import { fromAzureError, isExpiredToken, type AzureCallInfo } from './errors.ts';
import { PUBLIC_AUTHORITY, secretsOf, type AzureOptions } from './options.ts';

/** The api-versions @azure/arm-compute 24.1 sends (checked against the fake's request log in the tests). */
export const COMPUTE_API_VERSIONS = { virtualMachines: '2026-03-01', disks: '2025-01-02', snapshots: '2025-01-02' } as const;

export type CredentialFactory = () => TokenCredential;

/**
 * `requestTimeoutSec` for each HTTP request (an LRO's polls each get their own), as a pipeline
 * policy: the SDK's own `requestOptions.timeout` leaves its timer running when the connection
 * fails (ts-http-runtime 0.3 nodeHttpClient clears it only after a response), which holds a
 * process open for the whole timeout.
 */
function requestTimeoutPolicy(ms: number): PipelinePolicy {
  return {
    name: 'snapvisorRequestTimeout',
    async sendRequest(request, next) {
      const both = new AbortController();
      const outer = request.abortSignal;
      const abort = () => both.abort();
      if (outer?.aborted) both.abort();
      outer?.addEventListener('abort', abort);
      const timer = setTimeout(abort, ms);
      timer.unref();
      request.abortSignal = both.signal;
      try {
        return await next(request);
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener('abort', abort);
      }
    },
  };
}

export function credentialFactory(options: AzureOptions): CredentialFactory {
  const auth = options.auth;
  const tls = options.ca ? { tlsOptions: { ca: options.ca } } : {};
  switch (auth.type) {
    case 'secret':
      return () =>
        new ClientSecretCredential(auth.tenantId, auth.clientId, auth.clientSecret, {
          authorityHost: auth.authorityHost,
          // MSAL would first ask the public cloud's instance discovery about a non-public authority.
          ...(auth.authorityHost === PUBLIC_AUTHORITY ? {} : { disableInstanceDiscovery: true }),
          ...tls,
        });
    case 'managedIdentity':
      return () => new ManagedIdentityCredential(tls);
    case 'default':
      return () => new DefaultAzureCredential(tls);
  }
}

export interface ArmSession {
  /** Runs `fn` with the current client; one repeat with a fresh token after an expired-token 401. */
  call<T>(info: AzureCallInfo, ctx: CallContext, fn: (client: ComputeManagementClient) => Promise<T>): Promise<T>;
  /** Options for every SDK call and long-running operation: the job's signal and the poll interval. */
  opts(ctx: CallContext): { abortSignal: AbortSignal; updateIntervalInMs: number };
  /** How many times a fresh credential was made (1 at start). */
  readonly credentialsMade: number;
  secrets: readonly string[];
}

export function createArmSession(options: AzureOptions, log: Logger, makeCredential: CredentialFactory = credentialFactory(options)): ArmSession {
  let made = 0;
  const build = (): ComputeManagementClient => {
    made++;
    const client = new ComputeManagementClient(makeCredential(), options.subscriptionId, {
      endpoint: options.endpoint,
      credentials: { scopes: [`${options.endpoint}/.default`] },
      ...(options.ca ? { tlsOptions: { ca: options.ca } } : {}),
      retryOptions: { maxRetries: 0 },
    });
    client.pipeline.addPolicy(requestTimeoutPolicy(options.requestTimeoutMs));
    return client;
  };
  let client: ComputeManagementClient | undefined;
  const secrets = secretsOf(options);
  const session: ArmSession = {
    secrets,
    get credentialsMade() {
      return made;
    },
    opts: (ctx) => ({ abortSignal: ctx.signal, updateIntervalInMs: options.pollIntervalMs }),
    async call(info, ctx, fn) {
      client ??= build();
      try {
        return await fn(client);
      } catch (e) {
        if (!isExpiredToken(e) || ctx.signal.aborted) throw fromAzureError(e, info, secrets, ctx.signal);
        log.info({ what: info.what }, 'Azure refused the access token as expired or invalid; getting a new one and trying once more');
        client = build();
        try {
          return await fn(client);
        } catch (again) {
          throw fromAzureError(again, info, secrets, ctx.signal);
        }
      }
    },
  };
  return session;
}
