/**
 * Options of a `kind: azure` target, validated eagerly when the provider is created: unknown keys
 * are refused and every problem names its key, never its value (`credential.clientSecret` and `ca`
 * arrive resolved from `env:`/`file:` references and must not be echoed).
 */
import { Type, type Static } from 'typebox';
import { OfflineOptionsSchema, offlineOptions, validOptions, type OfflineOptions } from '../shared/options.ts';

export const PROVIDER = 'azure';

export const PUBLIC_ENDPOINT = 'https://management.azure.com';
export const PUBLIC_AUTHORITY = 'https://login.microsoftonline.com';

const GUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/** An Entra ID app registration (service principal) with a client secret. */
const CredentialSchema = Type.Object(
  {
    tenantId: Type.String({ minLength: 1 }),
    clientId: Type.String({ minLength: 1 }),
    /** A secret: write it as `env:NAME` or `file:/path` in the configuration. */
    clientSecret: Type.String({ minLength: 1 }),
    /** Default https://login.microsoftonline.com (sovereign clouds and the tests' fake set their own). */
    authorityHost: Type.Optional(Type.String({ pattern: '^https://' })),
  },
  { additionalProperties: false },
);

export const AzureOptionsSchema = Type.Object(
  {
    subscriptionId: Type.String({ pattern: GUID }),
    /** The resource groups whose VMs (and snapshots) this target serves. */
    resourceGroups: Type.Array(Type.String({ minLength: 1, maxLength: 90 }), { minItems: 1 }),
    /** A service principal; exclusive with managedIdentity. Neither: the DefaultAzureCredential chain. */
    credential: Type.Optional(CredentialSchema),
    managedIdentity: Type.Optional(Type.Literal(true)),
    /** The ARM endpoint (default https://management.azure.com). */
    endpoint: Type.Optional(Type.String({ pattern: '^https://' })),
    /** Extra trusted CA certificate(s), PEM text (private endpoints, the tests' fake). */
    ca: Type.Optional(Type.String({ minLength: 1 })),
    /** Incremental disk snapshots (default true): only the changes since the previous one are stored. */
    incremental: Type.Optional(Type.Boolean({ default: true })),
    offline: Type.Optional(
      Type.Object(
        {
          /** How the VM is stopped for an offline snapshot: deallocate (default; no compute billed) or powerOff. */
          stop: Type.Optional(Type.Union([Type.Literal('deallocate'), Type.Literal('powerOff')], { default: 'deallocate' })),
          ...OfflineOptionsSchema.properties,
        },
        { additionalProperties: false },
      ),
    ),
    /** Azure's per-disk snapshot budget (documented: 7 incremental snapshots per disk every 5 minutes). */
    snapshotRate: Type.Optional(
      Type.Object(
        {
          max: Type.Optional(Type.Integer({ minimum: 1, default: 7 })),
          windowSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 300 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Interval between polls of a long-running operation (default 2000 ms). */
    pollIntervalMs: Type.Optional(Type.Integer({ minimum: 1, default: 2000 })),
    /**
     * How long a resource group's listing of snapshots and disks is reused (default 10 s; 0: list for
     * every call). ARM lists only whole groups: reusing the listing keeps a burst of jobs from listing
     * a large group once per job. Snapvisor's own writes show at once; changes made outside it after
     * at most this long.
     */
    listCacheSec: Type.Optional(Type.Number({ minimum: 0, default: 10 })),
    /** Longest wait for one ARM request, not counting a long-running operation's polls (default 60 s). */
    requestTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 60 })),
  },
  { additionalProperties: false },
);

export type AzureOptionsInput = Static<typeof AzureOptionsSchema>;

export type AzureAuth =
  | { type: 'secret'; tenantId: string; clientId: string; clientSecret: string; authorityHost: string }
  | { type: 'managedIdentity' }
  | { type: 'default' };

export interface AzureOptions {
  subscriptionId: string;
  resourceGroups: string[];
  auth: AzureAuth;
  endpoint: string;
  ca: string | undefined;
  incremental: boolean;
  offline: OfflineOptions & { stop: 'deallocate' | 'powerOff' };
  snapshotRate: { max: number; windowMs: number };
  pollIntervalMs: number;
  requestTimeoutMs: number;
  listCacheMs: number;
}

const trimSlash = (url: string) => url.replace(/\/+$/, '');

/** Throws ProviderError `invalid` naming every bad, unknown or missing key (values never shown). */
export function parseOptions(target: string, input: unknown): AzureOptions {
  const o = validOptions(PROVIDER, target, AzureOptionsSchema, input, (v) => {
    const problems: string[] = [];
    if (v.credential && v.managedIdentity) problems.push("options 'credential' and 'managedIdentity' exclude each other: give one");
    const seen = new Set<string>();
    for (const rg of v.resourceGroups) {
      if (seen.has(rg.toLowerCase())) problems.push(`option 'resourceGroups' names '${rg}' twice`);
      seen.add(rg.toLowerCase());
    }
    return problems;
  });
  const auth: AzureAuth = o.credential
    ? { type: 'secret', tenantId: o.credential.tenantId, clientId: o.credential.clientId, clientSecret: o.credential.clientSecret, authorityHost: trimSlash(o.credential.authorityHost ?? PUBLIC_AUTHORITY) }
    : o.managedIdentity
      ? { type: 'managedIdentity' }
      : { type: 'default' };
  return {
    subscriptionId: o.subscriptionId,
    resourceGroups: [...o.resourceGroups],
    auth,
    endpoint: trimSlash(o.endpoint ?? PUBLIC_ENDPOINT),
    ca: o.ca,
    incremental: o.incremental ?? true,
    offline: { ...offlineOptions(o.offline), stop: o.offline?.stop ?? 'deallocate' },
    snapshotRate: { max: o.snapshotRate?.max ?? 7, windowMs: Math.round((o.snapshotRate?.windowSec ?? 300) * 1000) },
    pollIntervalMs: o.pollIntervalMs ?? 2000,
    requestTimeoutMs: Math.round((o.requestTimeoutSec ?? 60) * 1000),
    listCacheMs: Math.round((o.listCacheSec ?? 10) * 1000),
  };
}

/** The secrets among the options: kept out of every message and log line. */
export function secretsOf(options: AzureOptions): string[] {
  return options.auth.type === 'secret' ? [options.auth.clientSecret] : [];
}
