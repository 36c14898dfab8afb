/**
 * Response shapes of the fake, each modelled on a real recorded exchange or a REST-spec example
 * (sources per shape in README.md). Pure builders: no I/O, no state.
 */
import { randomUUID } from 'node:crypto';

/** The fake's internal resource bags: ARM JSON as stored and served (deliberately loose). */
export type Bag = Record<string, any>;

export type DiskSku = 'Premium_LRS' | 'PremiumV2_LRS' | 'UltraSSD_LRS' | 'Standard_LRS';
export type PowerState = 'running' | 'stopped' | 'deallocated' | 'starting' | 'stopping' | 'deallocating';

export const GIB = 1024 ** 3;

/** Disk RP timestamps look like 2023-11-06T03:59:10.4269822+00:00. */
export function armTime(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$10000+00:00');
}

/** ARM error body: {"error":{"code","message"}} (details optional). */
export function errorBody(code: string, message: string, details?: Bag[]): Bag {
  return { error: details ? { code, message, details } : { code, message } };
}

export function skuTier(sku: string): string {
  if (sku === 'UltraSSD_LRS') return 'Ultra';
  if (sku.startsWith('Premium')) return 'Premium';
  return 'Standard';
}

/** Premium SSD v2 and Ultra copy in the background: their snapshots report completionPercent. */
export function hasBackgroundCopy(sku: string): boolean {
  return sku === 'PremiumV2_LRS' || sku === 'UltraSSD_LRS';
}

export interface DiskSeed {
  id: string; name: string; location: string; sku: DiskSku; sizeGB: number;
  tags?: Record<string, string>; osType?: 'Linux' | 'Windows';
  creationData: Bag; managedBy?: string;
}

/** A finished managed disk (recording test_completion_percent.yaml, GET disks/disk1). */
export function diskResource(seed: DiskSeed): Bag {
  const disk: Bag = {
    name: seed.name,
    id: seed.id,
    type: 'Microsoft.Compute/disks',
    location: seed.location,
    tags: seed.tags ?? {},
    sku: { name: seed.sku, tier: skuTier(seed.sku) },
    properties: {
      ...(seed.osType ? { osType: seed.osType, hyperVGeneration: 'V2' } : {}),
      creationData: seed.creationData,
      diskSizeGB: seed.sizeGB,
      diskIOPSReadWrite: seed.sku === 'Standard_LRS' ? 500 : 3000,
      diskMBpsReadWrite: seed.sku === 'Standard_LRS' ? 60 : 125,
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      networkAccessPolicy: 'AllowAll',
      publicNetworkAccess: 'Enabled',
      timeCreated: armTime(),
      provisioningState: 'Succeeded',
      diskState: seed.managedBy ? 'Attached' : 'Unattached',
      diskSizeBytes: seed.sizeGB * GIB,
      uniqueId: randomUUID(),
    },
  };
  if (seed.managedBy) disk.managedBy = seed.managedBy;
  return disk;
}

/** Power-state status entry of a VM instance view (spec example VirtualMachine_Get_InstanceView.json). */
export function powerStatus(power: PowerState): Bag {
  return { code: `PowerState/${power}`, level: 'Info', displayStatus: `VM ${power}` };
}

export function provisioningStatus(state: string, time: string): Bag {
  const lower = state.toLowerCase();
  return {
    code: `ProvisioningState/${lower}`,
    level: 'Info',
    displayStatus: lower === 'succeeded' ? 'Provisioning succeeded' : state,
    time,
  };
}

/** "The access token expiry UTC time '5/14/2023 4:22:51 PM' is earlier than …" — .NET's en-US G format. */
export function dotnetUtc(ms: number): string {
  const d = new Date(ms);
  const h24 = d.getUTCHours();
  const h12 = h24 % 12 === 0 ? 12 : h24 % 12;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${h12}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${h24 < 12 ? 'AM' : 'PM'}`;
}

/** Entra ID's v2.0 discovery document for one tenant, with every endpoint on the fake's origin. */
export function openIdConfiguration(origin: string, tenant: string): Bag {
  const base = `${origin}/${tenant}`;
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: `${base}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${origin}/oidc/userinfo`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
    kerberos_endpoint: `${base}/kerberos`,
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net',
  };
}

/** Entra's answer to a wrong client secret (seen verbatim in several public issue reports; see README). */
export function invalidClientSecretBody(clientId: string): Bag {
  const trace = randomUUID();
  const correlation = randomUUID();
  const stamp = new Date().toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
  return {
    error: 'invalid_client',
    error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.\r\nTrace ID: ${trace}\r\nCorrelation ID: ${correlation}\r\nTimestamp: ${stamp}`,
    error_codes: [7000215],
    timestamp: stamp,
    trace_id: trace,
    correlation_id: correlation,
    error_uri: 'https://login.microsoftonline.com/error?code=7000215',
  };
}
