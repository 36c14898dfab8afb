/**
 * Options of a `kind: vmware` target, validated eagerly when the provider is created: unknown keys
 * are rejected and every problem names its key. `password` and `ca` arrive already resolved from
 * `env:`/`file:` by src/config (its SECRET_KEYS); values are never echoed back in a problem.
 */
import { Type, type Static } from 'typebox';
import { OfflineOptionsSchema, offlineOptions, validOptions, type OfflineOptions } from '../shared/options.ts';

export const PROVIDER = 'vmware';

/** SHA-1 of the server certificate as vSphere shows it: 20 colon-separated hex bytes. */
const THUMBPRINT_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){19}$/;

export const VmwareOptionsSchema = Type.Object(
  {
    /** The vim25 endpoint, e.g. https://vc.example/sdk (http:// only for local test servers). */
    url: Type.String({ minLength: 1 }),
    username: Type.String({ minLength: 1 }),
    password: Type.String({ minLength: 1 }),
    /** PEM certificate(s) to trust instead of the system CAs: the vCenter's CA or its own certificate. */
    ca: Type.Optional(Type.String({ minLength: 1 })),
    /** Pin the server certificate by its SHA-1 thumbprint (AB:CD:…), as the vSphere client shows it. */
    thumbprint: Type.Optional(Type.String({ minLength: 1 })),
    /** Skip certificate verification. Only for labs; logged as a warning. */
    insecure: Type.Optional(Type.Boolean({ default: false })),
    /** One SOAP request may take this long. */
    requestTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 60 })),
    /** A vSphere task (snapshot, revert, consolidate…) may run this long before we give up waiting. */
    taskTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 3600 })),
    /** Objects per PropertyCollector page (RetrieveOptions.maxObjects). */
    pageSize: Type.Optional(Type.Integer({ minimum: 1, default: 1000 })),
    offline: Type.Optional(OfflineOptionsSchema),
  },
  { additionalProperties: false },
);

export type VmwareOptionsInput = Static<typeof VmwareOptionsSchema>;

export type TlsPolicy = { kind: 'system' } | { kind: 'ca'; ca: string } | { kind: 'thumbprint'; thumbprint: string } | { kind: 'insecure' } | { kind: 'plain' };

export interface VmwareOptions {
  url: string;
  username: string;
  password: string;
  tls: TlsPolicy;
  requestTimeoutSec: number;
  taskTimeoutSec: number;
  pageSize: number;
  offline: OfflineOptions;
}

/** What the schema cannot say about the endpoint and its certificate options. */
function endpointProblems(o: VmwareOptionsInput): string[] {
  const problems: string[] = [];
  let url: URL | undefined;
  try {
    url = new URL(o.url);
  } catch {
    problems.push("option 'url' is not a URL (expected https://host/sdk)");
  }
  if (url && url.protocol !== 'https:' && url.protocol !== 'http:') problems.push("option 'url' must be an https:// URL");
  if (url && (url.username !== '' || url.password !== '')) problems.push("option 'url' must not carry credentials: use username and password");
  const pins = [o.ca !== undefined, o.thumbprint !== undefined, o.insecure === true].filter(Boolean).length;
  if (pins > 1) problems.push("options 'ca', 'thumbprint' and 'insecure: true' exclude each other: give at most one");
  if (o.thumbprint !== undefined && !THUMBPRINT_RE.test(o.thumbprint)) problems.push("option 'thumbprint' must be a SHA-1 thumbprint (20 colon-separated hex bytes)");
  if (o.ca !== undefined && !o.ca.includes('-----BEGIN CERTIFICATE-----')) problems.push("option 'ca' must be a PEM certificate");
  if (url?.protocol === 'http:' && pins > 0) problems.push("options 'ca', 'thumbprint' and 'insecure' need an https:// url");
  return problems;
}

/** Throws ProviderError `invalid` naming every bad, unknown or missing key. */
export function parseOptions(target: string, input: unknown): VmwareOptions {
  const o: VmwareOptionsInput = validOptions(PROVIDER, target, VmwareOptionsSchema, input, endpointProblems);
  const url = new URL(o.url); // endpointProblems accepted it
  const tls: TlsPolicy =
    url.protocol === 'http:'
      ? { kind: 'plain' }
      : o.ca !== undefined
        ? { kind: 'ca', ca: o.ca }
        : o.thumbprint !== undefined
          ? { kind: 'thumbprint', thumbprint: o.thumbprint.toUpperCase() }
          : o.insecure === true
            ? { kind: 'insecure' }
            : { kind: 'system' };
  return {
    url: url.href,
    username: o.username,
    password: o.password,
    tls,
    requestTimeoutSec: o.requestTimeoutSec ?? 60,
    taskTimeoutSec: o.taskTimeoutSec ?? 3600,
    pageSize: o.pageSize ?? 1000,
    offline: offlineOptions(o.offline),
  };
}
