/**
 * arm-fake: an in-process HTTPS server on 127.0.0.1 that answers the Azure Resource Manager
 * (Microsoft.Compute: virtualMachines, disks, snapshots, their long-running operations) and Entra ID
 * (client-credentials token) calls an Azure snapshot adapter makes, with the shapes of real recorded
 * exchanges (README.md names the recording or spec example behind each). The REAL
 * `@azure/arm-compute` client and the REAL `@azure/identity` ClientSecretCredential talk to it:
 *
 *   const fake = await startArmFake();
 *   const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, fake.clientSecret,
 *     { authorityHost: fake.authorityHost, disableInstanceDiscovery: true, tlsOptions: { ca: fake.ca } });
 *   const client = new ComputeManagementClient(credential, fake.subscriptionId,
 *     { endpoint: fake.endpoint, credentials: { scopes: [`${fake.endpoint}/.default`] }, tlsOptions: { ca: fake.ca } });
 *
 * Used by tests and benchmarks in the same process; it must not import tap.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { makeSelfSignedCertificate } from './cert.ts';
import {
  GIB, armTime, diskResource, dotnetUtc, errorBody, hasBackgroundCopy, invalidClientSecretBody, openIdConfiguration,
  powerStatus, provisioningStatus, type Bag, type DiskSku, type PowerState,
} from './shapes.ts';

export type { Bag, DiskSku, PowerState } from './shapes.ts';

export interface ArmFakeOptions {
  /** Defaults: fixed GUIDs (below) and a random secret. */
  subscriptionId?: string; tenantId?: string; clientId?: string; clientSecret?: string;
  /** Default 'westeurope'. */
  location?: string;
  /** Polls of an operation that still answer InProgress before it ends (default 1). */
  lroPolls?: number;
  /** PremiumV2/Ultra snapshots: GETs until completionPercent reaches 100 (default 3). */
  completionSteps?: number;
  /** Snapshot creates per source disk in a sliding window (default 7 per 300000 ms). */
  snapshotRate?: { max: number; windowMs: number };
  /** Token lifetime, `expires_in` (default 3600). */
  tokenLifetimeSec?: number;
  /** Added to every response (default 0), for benchmarks. */
  latencyMs?: number;
  /** Retry-After (seconds) sent on operation polls that are still InProgress; none by default. */
  pollRetryAfterSec?: number;
}

export interface FakeVmSeed {
  resourceGroup: string; name: string;
  power?: 'running' | 'stopped' | 'deallocated';
  dataDisks?: number;
  sku?: DiskSku;
}

export interface FaultMatch { method?: string; path?: RegExp }
export type FaultEffect =
  | { status: number; code: string; message: string; retryAfterSec?: number }
  | { drop: 'before' | 'after' }
  | { lroFail: { code: string; message: string } }
  | { delayMs: number };

export interface RequestLogEntry {
  method: string; path: string; query: string;
  /** HTTP status answered; 0 when the connection was dropped without an answer. */
  status: number;
  at: number;
  /** The api-version query parameter, when present. */
  apiVersion?: string;
}

export interface ExternalSnapshotSeed {
  diskId: string; name: string;
  /** Default: the disk's resource group. */
  resourceGroup?: string;
  incremental?: boolean;
  tags?: Record<string, string>;
}

export interface ArmFake {
  endpoint: string;
  authorityHost: string;
  ca: string;
  subscriptionId: string; tenantId: string; clientId: string; clientSecret: string;
  location: string;
  addResourceGroup(name: string): void;
  addVm(seed: FakeVmSeed): { id: string; osDiskId: string; dataDiskIds: string[] };
  addDisk(seed: { resourceGroup: string; name: string; sku?: DiskSku; sizeGB?: number }): string;
  setPower(vmId: string, power: 'running' | 'stopped' | 'deallocated'): void;
  vm(vmId: string): unknown;
  disks(resourceGroup?: string): Array<Record<string, any>>;
  snapshots(resourceGroup?: string): Array<Record<string, any>>;
  addSnapshot(seed: ExternalSnapshotSeed): Record<string, any>;
  removeSnapshot(snapshotId: string): boolean;
  /** Deletes a disk no VM has attached, as ARM does: its snapshots stay. */
  removeDisk(diskId: string): boolean;
  fault(match: FaultMatch, effect: FaultEffect, times?: number): void;
  throttle(count: number, retryAfterSec: number): void;
  expireTokens(): void;
  /** Finish every operation still in progress (as if polled to the end). */
  settle(): void;
  requests: RequestLogEntry[];
  counters: { throttled429: number; selfCaused429: number };
  close(): Promise<void>;
}

export const DEFAULT_SUBSCRIPTION_ID = '6f1c2b9e-4d7a-4e1f-9c3b-2a5d8e7f0a11';
export const DEFAULT_TENANT_ID = 'c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f';
export const DEFAULT_CLIENT_ID = '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9';

class ArmError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}, readonly details?: Bag[]) {
    super(message);
  }
}

interface Reply { status: number; headers?: Record<string, string>; body?: unknown; raw?: string }

interface Operation {
  id: string;
  kind: 'DiskOperations' | 'operations';
  location: string;
  startTime: string;
  endTime?: string;
  remaining: number;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  failure?: { code: string; message: string };
  /** Runs once when the operation succeeds; returns the output resource (Disk RP) or nothing. */
  onDone?: () => Bag | undefined;
  output?: Bag;
  resourceKey?: string;
}

interface Token { expiresAt: number; revokedAt?: number }
interface Fault { match: FaultMatch; effect: FaultEffect; times: number }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The path segments of an ARM id, lower-cased for case-insensitive matching. */
function key(...parts: string[]): string {
  return parts.map((p) => p.toLowerCase()).join('/');
}

/**
 * Make the Azure SDK reach loopback directly even when HTTPS_PROXY/HTTP_PROXY is set: its proxy policy
 * (@typespec/ts-http-runtime) bypasses nothing by default, not even 127.0.0.1, and reads NO_PROXY once,
 * at its first request in the process. startArmFake() calls this; call it yourself before any earlier
 * SDK request if there is one.
 */
export function bypassProxyForLoopback(): void {
  for (const name of ['NO_PROXY', 'no_proxy']) {
    const list = (process.env[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const host of ['127.0.0.1', 'localhost']) if (!list.includes(host)) list.push(host);
    process.env[name] = list.join(',');
  }
}

export async function startArmFake(options: ArmFakeOptions = {}): Promise<ArmFake> {
  bypassProxyForLoopback();
  const subscriptionId = options.subscriptionId ?? DEFAULT_SUBSCRIPTION_ID;
  const tenantId = options.tenantId ?? DEFAULT_TENANT_ID;
  const clientId = options.clientId ?? DEFAULT_CLIENT_ID;
  const clientSecret = options.clientSecret ?? randomBytes(24).toString('base64url');
  const location = options.location ?? 'westeurope';
  const lroPolls = options.lroPolls ?? 1;
  const completionSteps = Math.max(1, options.completionSteps ?? 3);
  const snapshotRate = options.snapshotRate ?? { max: 7, windowMs: 300_000 };
  const tokenLifetimeSec = options.tokenLifetimeSec ?? 3600;
  const latencyMs = options.latencyMs ?? 0;

  const cert = await makeSelfSignedCertificate();
  let origin = '';

  // ---- state -------------------------------------------------------------------------------
  const resourceGroups = new Map<string, string>(); // lower → as created
  const vms = new Map<string, Bag>(); // key(rg, name) → VM
  const power = new Map<string, PowerState>(); // key(rg, name) → power state
  const disks = new Map<string, Bag>();
  const snapshots = new Map<string, Bag>();
  const completion = new Map<string, number>(); // snapshot key → GETs seen
  const operations = new Map<string, Operation>();
  const tokens = new Map<string, Token>();
  const faults: Fault[] = [];
  let throttleLeft = 0;
  let throttleRetryAfter = 1;
  const createsPerDisk = new Map<string, number[]>(); // disk id lower → create times
  const allCreates: number[] = [];
  const requests: RequestLogEntry[] = [];
  const counters = { throttled429: 0, selfCaused429: 0 };
  let jwks: Bag | undefined;

  const rgId = (rg: string) => `/subscriptions/${subscriptionId}/resourceGroups/${rg}`;
  const resId = (rg: string, type: string, name: string) => `${rgId(rg)}/providers/Microsoft.Compute/${type}/${name}`;

  function ensureRg(name: string): string {
    const known = resourceGroups.get(name.toLowerCase());
    if (known) return known;
    resourceGroups.set(name.toLowerCase(), name);
    return name;
  }

  /** Parse an ARM id of a Compute resource: {rg, type, name} (lower-case type), or undefined. */
  function parseId(id: string): { rg: string; type: string; name: string } | undefined {
    const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/([^/]+)\/([^/]+)$/i.exec(id);
    if (!m || m[1]!.toLowerCase() !== subscriptionId.toLowerCase()) return undefined;
    return { rg: m[2]!, type: m[3]!.toLowerCase(), name: m[4]! };
  }

  function diskById(id: string | undefined): Bag | undefined {
    if (!id) return undefined;
    const p = parseId(id);
    return p && p.type === 'disks' ? disks.get(key(p.rg, p.name)) : undefined;
  }

  function mkDisk(rg: string, name: string, sku: DiskSku, sizeGB: number, extra: { osType?: 'Linux'; managedBy?: string; creationData?: Bag; tags?: Record<string, string>; location?: string } = {}): Bag {
    const canonicalRg = ensureRg(rg);
    const disk = diskResource({
      id: resId(canonicalRg, 'disks', name), name, location: extra.location ?? location, sku, sizeGB,
      creationData: extra.creationData ?? (extra.osType
        ? { createOption: 'FromImage', imageReference: { id: `/Subscriptions/${subscriptionId}/Providers/Microsoft.Compute/Locations/${location}/Publishers/canonical/ArtifactTypes/VMImage/Offers/ubuntu-24_04-lts/Skus/server/Versions/24.04.202501010` } }
        : { createOption: 'Empty' }),
      ...(extra.osType ? { osType: extra.osType } : {}),
      ...(extra.managedBy ? { managedBy: extra.managedBy } : {}),
      ...(extra.tags ? { tags: extra.tags } : {}),
    });
    disks.set(key(canonicalRg, name), disk);
    return disk;
  }

  function setAttachment(disk: Bag, vmId: string | undefined): void {
    if (vmId) { disk.managedBy = vmId; disk.properties.diskState = 'Attached'; }
    else { delete disk.managedBy; disk.properties.diskState = 'Unattached'; }
  }

  // ---- operations ----------------------------------------------------------------------------
  function newOperation(kind: Operation['kind'], init: Partial<Operation>): Operation {
    const op: Operation = { id: randomUUID(), kind, location, startTime: armTime(), remaining: lroPolls, status: 'InProgress', ...init };
    operations.set(op.id, op);
    return op;
  }

  function finish(op: Operation): void {
    if (op.status !== 'InProgress') return;
    op.endTime = armTime();
    if (op.failure) { op.status = 'Failed'; return; }
    op.status = 'Succeeded';
    op.output = op.onDone?.();
  }

  function advance(op: Operation): void {
    if (op.status !== 'InProgress') return;
    if (op.remaining > 0) op.remaining -= 1;
    else finish(op);
  }

  function advanceFor(resourceKey: string): void {
    for (const op of operations.values()) if (op.resourceKey === resourceKey) advance(op);
  }

  function opUrls(op: Operation, apiVersion: string): Record<string, string> {
    const base = `${origin}/subscriptions/${subscriptionId}/providers/Microsoft.Compute/locations/${op.location}/${op.kind}/${op.id}`;
    const p = `p=${randomUUID()}`;
    return {
      'Azure-AsyncOperation': `${base}?${p}&api-version=${apiVersion}`,
      Location: `${base}?${p}&monitor=true&api-version=${apiVersion}`,
    };
  }

  function opBody(op: Operation): Bag {
    if (op.status === 'InProgress') return { startTime: op.startTime, status: 'InProgress', name: op.id };
    if (op.status === 'Failed') return { startTime: op.startTime, endTime: op.endTime, status: 'Failed', error: op.failure, name: op.id };
    return op.output
      ? { startTime: op.startTime, endTime: op.endTime, status: 'Succeeded', properties: { output: op.output }, name: op.id }
      : { startTime: op.startTime, endTime: op.endTime, status: 'Succeeded', name: op.id };
  }

  // ---- views ---------------------------------------------------------------------------------
  function snapshotView(snap: Bag, k: string, advanceCompletion: boolean): Bag {
    const view: Bag = structuredClone(snap);
    if (snap.properties.completionPercent !== undefined && snap.properties.provisioningState === 'Succeeded') {
      let seen = completion.get(k) ?? 0;
      if (advanceCompletion && seen < completionSteps) { seen += 1; completion.set(k, seen); }
      const pct = seen >= completionSteps ? 100 : Math.round((seen * 1000) / completionSteps) / 10;
      snap.properties.completionPercent = pct;
      view.properties.completionPercent = pct;
    }
    return view;
  }

  function instanceView(vm: Bag, k: string): Bag {
    const p = power.get(k) ?? 'running';
    const storage = vm.properties.storageProfile;
    const diskNames: string[] = [storage.osDisk.name, ...storage.dataDisks.map((d: Bag) => d.name)];
    const time = vm.properties.timeCreated;
    const view: Bag = {
      hyperVGeneration: 'V2',
      disks: diskNames.map((name) => ({ name, statuses: [provisioningStatus('succeeded', time)] })),
      statuses: [provisioningStatus(vm.properties.provisioningState, time), powerStatus(p)],
    };
    if (p === 'running') {
      Object.assign(view, { computerName: vm.name, osName: 'ubuntu', osVersion: '24.04' });
      view.vmAgent = {
        vmAgentVersion: '2.12.0.2',
        statuses: [{ code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Ready', message: 'Guest Agent is running', time }],
        extensionHandlers: [],
      };
    }
    return view;
  }

  function vmView(vm: Bag, k: string, expandInstanceView: boolean): Bag {
    const view: Bag = structuredClone(vm);
    if (expandInstanceView) view.properties.instanceView = instanceView(vm, k);
    return view;
  }

  // ---- seeding -------------------------------------------------------------------------------
  function addVm(seed: FakeVmSeed): { id: string; osDiskId: string; dataDiskIds: string[] } {
    const rg = ensureRg(seed.resourceGroup);
    const k = key(rg, seed.name);
    if (vms.has(k)) throw new Error(`arm-fake: VM ${seed.resourceGroup}/${seed.name} exists already`);
    const id = resId(rg, 'virtualMachines', seed.name);
    const sku = seed.sku ?? 'Premium_LRS';
    const suffix = randomUUID().replace(/-/g, '');
    const osDisk = mkDisk(rg, `${seed.name}_OsDisk_1_${suffix}`, sku, 30, { osType: 'Linux', managedBy: id });
    const dataDisks: Bag[] = [];
    for (let lun = 0; lun < (seed.dataDisks ?? 0); lun++) dataDisks.push(mkDisk(rg, `${seed.name}_DataDisk_${lun}`, sku, 64, { managedBy: id }));
    const vm: Bag = {
      name: seed.name,
      id,
      type: 'Microsoft.Compute/virtualMachines',
      location,
      tags: {},
      properties: {
        vmId: randomUUID(),
        hardwareProfile: { vmSize: 'Standard_D2s_v5' },
        storageProfile: {
          imageReference: { publisher: 'canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest', exactVersion: '24.04.202501010' },
          osDisk: {
            osType: 'Linux', name: osDisk.name, createOption: 'FromImage', caching: 'ReadWrite',
            managedDisk: { storageAccountType: sku, id: osDisk.id }, deleteOption: 'Detach', diskSizeGB: 30,
          },
          dataDisks: dataDisks.map((d, lun) => ({
            lun, name: d.name, createOption: 'Attach', caching: 'None',
            managedDisk: { storageAccountType: sku, id: d.id }, deleteOption: 'Detach', diskSizeGB: 64, toBeDetached: false,
          })),
          diskControllerType: 'SCSI',
        },
        osProfile: {
          computerName: seed.name, adminUsername: 'azureuser',
          linuxConfiguration: { disablePasswordAuthentication: true, provisionVMAgent: true, patchSettings: { patchMode: 'ImageDefault', assessmentMode: 'ImageDefault' } },
          secrets: [], allowExtensionOperations: true, requireGuestProvisionSignal: true,
        },
        networkProfile: { networkInterfaces: [{ id: `${rgId(rg)}/providers/Microsoft.Network/networkInterfaces/${seed.name}VMNic` }] },
        provisioningState: 'Succeeded',
        timeCreated: armTime(),
      },
    };
    vms.set(k, vm);
    power.set(k, seed.power ?? 'running');
    return { id, osDiskId: osDisk.id, dataDiskIds: dataDisks.map((d) => d.id as string) };
  }

  function vmKeyOf(vmId: string): string {
    const p = parseId(vmId);
    if (!p || p.type !== 'virtualmachines') throw new Error(`arm-fake: not a VM id: ${vmId}`);
    const k = key(p.rg, p.name);
    if (!vms.has(k)) throw new Error(`arm-fake: no VM ${vmId}`);
    return k;
  }

  function recordCreate(diskId: string, now: number): void {
    const list = createsPerDisk.get(diskId.toLowerCase()) ?? [];
    list.push(now);
    createsPerDisk.set(diskId.toLowerCase(), list);
    allCreates.push(now);
  }

  function makeSnapshot(rg: string, name: string, source: Bag, body: Bag, snapLocation: string): Bag {
    const incremental = body.properties?.incremental === true;
    const sourceSku: string = source.sku.name;
    const family = incremental ? familyOf(source) : undefined;
    const snap: Bag = {
      name,
      id: resId(rg, 'snapshots', name),
      type: 'Microsoft.Compute/snapshots',
      location: snapLocation,
      tags: body.tags ?? {},
      sku: { name: body.sku?.name ?? 'Standard_LRS', tier: 'Standard' },
      properties: {
        ...(source.properties.osType ? { osType: source.properties.osType, hyperVGeneration: 'V2' } : {}),
        creationData: { createOption: 'Copy', sourceResourceId: source.id, sourceUniqueId: source.properties.uniqueId },
        diskSizeGB: source.properties.diskSizeGB,
        encryption: { type: 'EncryptionAtRestWithPlatformKey' },
        incremental,
        networkAccessPolicy: 'AllowAll',
        publicNetworkAccess: 'Enabled',
        timeCreated: armTime(),
        provisioningState: 'Succeeded',
        diskState: 'Unattached',
        diskSizeBytes: source.properties.diskSizeGB * GIB,
        uniqueId: randomUUID(),
        ...(hasBackgroundCopy(sourceSku) ? { completionPercent: 0 } : {}),
        ...(family ? { incrementalSnapshotFamilyId: family } : {}),
      },
    };
    return snap;
  }

  const families = new Map<string, string>(); // source disk uniqueId → family id
  function familyOf(source: Bag): string {
    const u: string = source.properties.uniqueId;
    let f = families.get(u);
    if (!f) { f = randomUUID(); families.set(u, f); }
    return f;
  }

  // ---- ARM handlers --------------------------------------------------------------------------
  interface Ctx {
    method: string; url: URL; body: Bag | undefined; apiVersion: string;
    lroFail?: { code: string; message: string };
  }

  function notFound(rg: string, type: string, name: string): ArmError {
    return new ArmError(404, 'ResourceNotFound',
      `The Resource 'Microsoft.Compute/${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
  }

  function rateLimitHeader(now: number): string {
    const in3 = allCreates.filter((t) => t > now - 180_000).length;
    const in30 = allCreates.filter((t) => t > now - 1_800_000).length;
    return `Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;${Math.max(0, 1000 - in3)},Microsoft.Compute/HighCostSnapshotCreateHydrate30Min;${Math.max(0, 8000 - in30)}`;
  }

  function checkSnapshotRate(diskId: string, now: number): void {
    const list = (createsPerDisk.get(diskId.toLowerCase()) ?? []).filter((t) => t > now - snapshotRate.windowMs);
    createsPerDisk.set(diskId.toLowerCase(), list);
    if (list.length < snapshotRate.max) return;
    const oldest = list[0]!;
    const retryAfter = Math.max(1, Math.ceil((oldest + snapshotRate.windowMs - now) / 1000));
    counters.selfCaused429 += 1;
    const windowMin = Math.round(snapshotRate.windowMs / 60_000);
    const group = `IncrementalSnapshotCreatePerDisk${windowMin}Min`;
    throw new ArmError(429, 'OperationNotAllowed', 'The server rejected the request because too many requests have been received for this subscription.',
      { 'Retry-After': String(retryAfter), 'x-ms-ratelimit-remaining-resource': `Microsoft.Compute/${group};0` },
      [{ code: 'TooManyRequests', target: group, message: JSON.stringify({ operationGroup: group, startTime: armTime(oldest), endTime: armTime(oldest + snapshotRate.windowMs), allowedRequestCount: snapshotRate.max, measuredRequestCount: list.length + 1 }) }]);
  }

  function handleSnapshots(ctx: Ctx, rg: string, name: string | undefined): Reply {
    if (!name) {
      if (ctx.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
      const value = [...snapshots.entries()].filter(([k]) => k.startsWith(`${rg.toLowerCase()}/`)).map(([k, s]) => snapshotView(s, k, false));
      return { status: 200, body: { value } };
    }
    const k = key(rg, name);
    const existing = snapshots.get(k);
    if (ctx.method === 'GET') {
      if (!existing) throw notFound(rg, 'snapshots', name);
      advanceFor(k);
      return { status: 200, body: snapshotView(existing, k, true) };
    }
    if (ctx.method === 'PUT') {
      const body = ctx.body ?? {};
      const now = Date.now();
      if (existing) {
        // A re-PUT of an existing name answers like an update: same resource, new tags, no new copy.
        const echo: Bag = structuredClone(existing);
        if (!ctx.lroFail) { if (body.tags) existing.tags = body.tags; }
        echo.tags = body.tags ?? echo.tags;
        echo.properties.provisioningState = 'Updating';
        const op = newOperation('DiskOperations', { resourceKey: k, failure: ctx.lroFail, onDone: () => snapshotView(existing, k, false) });
        return { status: 202, headers: { ...opUrls(op, ctx.apiVersion), 'x-ms-ratelimit-remaining-resource': rateLimitHeader(now) }, body: echo };
      }
      const creation: Bag = body.properties?.creationData ?? {};
      const sourceId: string | undefined = creation.sourceResourceId;
      if (creation.createOption !== 'Copy' || !sourceId) {
        throw new ArmError(400, 'InvalidParameter', "The fake supports only createOption 'Copy' with a sourceResourceId of a managed disk.");
      }
      const source = diskById(sourceId);
      if (!source) throw new ArmError(404, 'NotFound', `Resource ${sourceId.split('/').pop() ?? sourceId} is not found.`);
      checkSnapshotRate(source.id, now);
      const snapLocation: string = body.location ?? location;
      const echo: Bag = {
        name, id: resId(rg, 'snapshots', name), type: 'Microsoft.Compute/snapshots', location: snapLocation, tags: body.tags ?? {},
        sku: body.sku ?? { name: 'Standard_LRS' },
        properties: { ...structuredClone(body.properties ?? {}), provisioningState: 'Updating' },
      };
      let created: Bag | undefined;
      if (!ctx.lroFail) {
        recordCreate(source.id, now);
        created = makeSnapshot(ensureRg(rg), name, source, body, snapLocation);
        created.properties.provisioningState = 'Updating';
        snapshots.set(k, created);
      }
      const op = newOperation('DiskOperations', {
        resourceKey: k, failure: ctx.lroFail,
        onDone: () => { if (!created) return undefined; created.properties.provisioningState = 'Succeeded'; return snapshotView(created, k, false); },
      });
      return { status: 202, headers: { ...opUrls(op, ctx.apiVersion), 'x-ms-ratelimit-remaining-resource': rateLimitHeader(now) }, body: echo };
    }
    if (ctx.method === 'PATCH') {
      // Update (tags only, as the adapter uses it): the same answer shape as a re-PUT.
      if (!existing) throw notFound(rg, 'snapshots', name);
      const body = ctx.body ?? {};
      if (!ctx.lroFail && body.tags) existing.tags = body.tags;
      const echo: Bag = structuredClone(existing);
      echo.properties.provisioningState = 'Updating';
      const op = newOperation('DiskOperations', { resourceKey: k, failure: ctx.lroFail, onDone: () => snapshotView(existing, k, false) });
      return { status: 202, headers: opUrls(op, ctx.apiVersion), body: echo };
    }
    if (ctx.method === 'DELETE') {
      if (!existing) return { status: 204 };
      if (!ctx.lroFail) snapshots.delete(k);
      const op = newOperation('DiskOperations', { failure: ctx.lroFail });
      return { status: 202, headers: opUrls(op, ctx.apiVersion) };
    }
    throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
  }

  function handleDisks(ctx: Ctx, rg: string, name: string | undefined): Reply {
    if (!name) {
      if (ctx.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
      const value = [...disks.entries()].filter(([k]) => k.startsWith(`${rg.toLowerCase()}/`)).map(([, d]) => structuredClone(d));
      return { status: 200, body: { value } };
    }
    const k = key(rg, name);
    const existing = disks.get(k);
    if (ctx.method === 'GET') {
      if (!existing) throw notFound(rg, 'disks', name);
      advanceFor(k);
      return { status: 200, body: structuredClone(existing) };
    }
    if (ctx.method === 'PUT') {
      const body = ctx.body ?? {};
      if (existing) {
        if (!ctx.lroFail && body.tags) existing.tags = body.tags;
        const echo: Bag = structuredClone(existing);
        echo.properties.provisioningState = 'Updating';
        const op = newOperation('DiskOperations', { resourceKey: k, failure: ctx.lroFail, onDone: () => structuredClone(existing) });
        return { status: 202, headers: { ...opUrls(op, ctx.apiVersion), 'x-ms-ratelimit-remaining-resource': 'Microsoft.Compute/CreateUpdateDisks3Min;2999,Microsoft.Compute/CreateUpdateDisks30Min;24999' }, body: echo };
      }
      const creation: Bag = body.properties?.creationData ?? {};
      const sku: DiskSku = body.sku?.name ?? 'Premium_LRS';
      let sizeGB: number = body.properties?.diskSizeGB ?? 0;
      let creationData: Bag;
      let osType: 'Linux' | undefined;
      if (creation.createOption === 'Copy') {
        const src: string | undefined = creation.sourceResourceId;
        const p = src ? parseId(src) : undefined;
        const source = p ? (p.type === 'snapshots' ? snapshots.get(key(p.rg, p.name)) : p.type === 'disks' ? disks.get(key(p.rg, p.name)) : undefined) : undefined;
        if (!source || !src) throw new ArmError(404, 'NotFound', `Resource ${src?.split('/').pop() ?? ''} is not found.`);
        sizeGB = Math.max(sizeGB, source.properties.diskSizeGB);
        creationData = { createOption: 'Copy', sourceResourceId: source.id, sourceUniqueId: source.properties.uniqueId };
        if (source.properties.osType) osType = source.properties.osType;
      } else if (creation.createOption === 'Empty') {
        if (!sizeGB) throw new ArmError(400, 'InvalidParameter', "Required parameter 'diskSizeGB' is missing (null).");
        creationData = { createOption: 'Empty' };
      } else {
        throw new ArmError(400, 'InvalidParameter', "The fake supports only createOption 'Copy' and 'Empty' for disks.");
      }
      const echo: Bag = {
        name, id: resId(rg, 'disks', name), type: 'Microsoft.Compute/disks', location: body.location ?? location, tags: body.tags ?? {},
        sku: { name: sku }, properties: { ...structuredClone(body.properties ?? {}), provisioningState: 'Updating' },
      };
      let created: Bag | undefined;
      if (!ctx.lroFail) {
        created = mkDisk(rg, name, sku, sizeGB, { creationData, ...(osType ? { osType } : {}), ...(body.tags ? { tags: body.tags } : {}), location: body.location ?? location });
        created.properties.provisioningState = 'Updating';
      }
      const op = newOperation('DiskOperations', {
        resourceKey: k, failure: ctx.lroFail,
        onDone: () => { if (!created) return undefined; created.properties.provisioningState = 'Succeeded'; return structuredClone(created); },
      });
      return { status: 202, headers: { ...opUrls(op, ctx.apiVersion), 'x-ms-ratelimit-remaining-resource': 'Microsoft.Compute/CreateUpdateDisks3Min;2999,Microsoft.Compute/CreateUpdateDisks30Min;24999' }, body: echo };
    }
    if (ctx.method === 'PATCH') {
      // Update (tags only, as the adapter uses it).
      if (!existing) throw notFound(rg, 'disks', name);
      const body = ctx.body ?? {};
      if (!ctx.lroFail && body.tags) existing.tags = body.tags;
      const echo: Bag = structuredClone(existing);
      echo.properties.provisioningState = 'Updating';
      const op = newOperation('DiskOperations', { resourceKey: k, failure: ctx.lroFail, onDone: () => structuredClone(existing) });
      return { status: 202, headers: opUrls(op, ctx.apiVersion), body: echo };
    }
    if (ctx.method === 'DELETE') {
      if (!existing) return { status: 204 };
      if (existing.managedBy) {
        throw new ArmError(409, 'OperationNotAllowed', `Disk ${name} is attached to VM ${existing.managedBy}.`);
      }
      if (!ctx.lroFail) disks.delete(k);
      const op = newOperation('DiskOperations', { failure: ctx.lroFail });
      return { status: 202, headers: opUrls(op, ctx.apiVersion) };
    }
    throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
  }

  /** Apply a PUT/PATCH body's storageProfile (OS disk swap, data disks by lun) to a VM. */
  function applyStorage(vm: Bag, k: string, storage: Bag | undefined, dryRun: boolean): void {
    if (!storage) return;
    const current = vm.properties.storageProfile;
    const p = power.get(k) ?? 'running';
    const newOsId: string | undefined = storage.osDisk?.managedDisk?.id;
    const osChanges = newOsId !== undefined && newOsId.toLowerCase() !== String(current.osDisk.managedDisk.id).toLowerCase();
    const checkAttachable = (id: string): Bag => {
      const disk = diskById(id);
      if (!disk) throw new ArmError(404, 'NotFound', `Resource ${id.split('/').pop() ?? id} is not found.`);
      if (disk.managedBy && String(disk.managedBy).toLowerCase() !== String(vm.id).toLowerCase()) {
        throw new ArmError(409, 'ConflictingUserInput', `Disk '${disk.name}' cannot be attached as the disk is already owned by VM '${disk.managedBy}'.`);
      }
      return disk;
    };
    let newOs: Bag | undefined;
    if (osChanges) {
      if (p !== 'deallocated' && p !== 'stopped') {
        throw new ArmError(409, 'OperationNotAllowed',
          `Operation 'Swap OS disk' is not allowed on VM '${vm.name}' since the VM is running. Please power off explicitly in case you shut down the VM from inside the guest operating system.`);
      }
      newOs = checkAttachable(newOsId);
    }
    let newData: Bag[] | undefined;
    if (Array.isArray(storage.dataDisks)) {
      newData = [];
      const luns = new Set<number>();
      for (const d of storage.dataDisks as Bag[]) {
        const id: string | undefined = d.managedDisk?.id;
        if (typeof d.lun !== 'number' || !id) throw new ArmError(400, 'InvalidParameter', 'The fake needs lun and managedDisk.id on every data disk.');
        if (luns.has(d.lun)) throw new ArmError(400, 'InvalidParameter', `A disk at LUN ${d.lun} already exists.`);
        luns.add(d.lun);
        if (d.toBeDetached === true) continue;
        const disk = checkAttachable(id);
        newData.push({
          lun: d.lun, name: disk.name, createOption: 'Attach', caching: d.caching ?? 'None',
          managedDisk: { storageAccountType: disk.sku.name, id: disk.id }, deleteOption: d.deleteOption ?? 'Detach',
          diskSizeGB: disk.properties.diskSizeGB, toBeDetached: false,
        });
      }
    }
    if (dryRun) return;
    if (newOs) {
      const old = diskById(current.osDisk.managedDisk.id);
      if (old) setAttachment(old, undefined);
      setAttachment(newOs, vm.id);
      current.osDisk = { ...current.osDisk, name: newOs.name, createOption: 'Attach', managedDisk: { storageAccountType: newOs.sku.name, id: newOs.id }, diskSizeGB: newOs.properties.diskSizeGB };
      delete current.imageReference;
    }
    if (newData) {
      for (const d of current.dataDisks as Bag[]) { const disk = diskById(d.managedDisk?.id); if (disk) setAttachment(disk, undefined); }
      for (const d of newData) { const disk = diskById(d.managedDisk.id); if (disk) setAttachment(disk, vm.id); }
      current.dataDisks = newData.sort((a, b) => a.lun - b.lun);
    }
  }

  function handleVms(ctx: Ctx, rg: string, name: string | undefined, action: string | undefined): Reply {
    const expand = (ctx.url.searchParams.get('$expand') ?? '').toLowerCase() === 'instanceview';
    if (!name) {
      if (ctx.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
      const value = [...vms.entries()].filter(([k]) => k.startsWith(`${rg.toLowerCase()}/`)).map(([k, vm]) => vmView(vm, k, expand));
      return { status: 200, body: { value } };
    }
    const k = key(rg, name);
    const vm = vms.get(k);
    if (!vm) {
      if (ctx.method === 'PUT') throw new ArmError(501, 'NotImplementedInFake', 'arm-fake does not create virtual machines; seed them with addVm().');
      throw notFound(rg, 'virtualMachines', name);
    }
    if (action) {
      const act = action.toLowerCase();
      if (act === 'instanceview' && ctx.method === 'GET') { advanceFor(k); return { status: 200, body: instanceView(vm, k) }; }
      if (ctx.method !== 'POST' || !['deallocate', 'poweroff', 'start'].includes(act)) {
        throw new ArmError(404, 'NotFound', `The fake does not implement ${ctx.method} ${action}.`);
      }
      const p = power.get(k) ?? 'running';
      const [during, after]: [PowerState, PowerState] = act === 'deallocate' ? ['deallocating', 'deallocated'] : act === 'poweroff' ? ['stopping', 'stopped'] : ['starting', 'running'];
      if (act === 'poweroff' && (p === 'deallocated' || p === 'deallocating')) {
        throw new ArmError(409, 'OperationNotAllowed', `Operation 'powerOff' is not allowed on VM '${vm.name}' since the VM is either deallocated or marked to be deallocated.`);
      }
      if (!ctx.lroFail && p !== after) power.set(k, during);
      const op = newOperation('operations', {
        resourceKey: k, failure: ctx.lroFail,
        onDone: () => { if (power.get(k) === during || power.get(k) === after) power.set(k, after); return undefined; },
      });
      return { status: 202, headers: opUrls(op, ctx.apiVersion) };
    }
    if (ctx.method === 'GET') {
      advanceFor(k);
      return { status: 200, body: vmView(vm, k, expand) };
    }
    if (ctx.method === 'PUT' || ctx.method === 'PATCH') {
      const body = ctx.body ?? {};
      const storage: Bag | undefined = body.properties?.storageProfile;
      applyStorage(vm, k, storage, true); // validate first: a refused swap changes nothing
      if (!ctx.lroFail) {
        applyStorage(vm, k, storage, false);
        if (body.tags) vm.tags = body.tags;
        vm.properties.provisioningState = 'Updating';
      }
      const echo = vmView(vm, k, false);
      echo.properties.provisioningState = 'Updating';
      const op = newOperation('operations', {
        resourceKey: k, failure: ctx.lroFail,
        onDone: () => { vm.properties.provisioningState = 'Succeeded'; return undefined; },
      });
      return { status: 200, headers: { 'Azure-AsyncOperation': opUrls(op, ctx.apiVersion)['Azure-AsyncOperation']! }, body: echo };
    }
    throw new ArmError(405, 'MethodNotAllowed', 'The requested resource does not support http method.');
  }

  function handleOperation(ctx: Ctx, kind: string, id: string): Reply {
    const op = operations.get(id);
    if (!op || op.kind.toLowerCase() !== kind.toLowerCase()) throw new ArmError(404, 'NotFound', `The operation '${id}' was not found.`);
    advance(op);
    const retry: Record<string, string> = op.status === 'InProgress' && options.pollRetryAfterSec !== undefined ? { 'Retry-After': String(options.pollRetryAfterSec) } : {};
    if (ctx.url.searchParams.get('monitor') === 'true') {
      if (op.status === 'InProgress') return { status: 202, headers: { ...retry, Location: ctx.url.href.replace(/^https?:\/\/[^/]+/, origin) } };
      if (op.status === 'Failed') return { status: 200, body: opBody(op) };
      return op.output ? { status: 200, body: op.output } : { status: 200 };
    }
    return { status: 200, headers: retry, body: opBody(op) };
  }

  function authenticate(req: IncomingMessage): void {
    const header = req.headers.authorization;
    if (!header) throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.");
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m) throw new ArmError(401, 'AuthenticationFailedInvalidHeader', "Authentication failed. The 'Authorization' header is provided in an invalid format.");
    const token = tokens.get(m[1]!.trim());
    if (!token) throw new ArmError(401, 'InvalidAuthenticationToken', 'The access token is invalid.');
    const now = Date.now();
    const expiry = Math.min(token.expiresAt, token.revokedAt ?? Infinity);
    if (expiry <= now) {
      throw new ArmError(401, 'ExpiredAuthenticationToken', `The access token expiry UTC time '${dotnetUtc(expiry)}' is earlier than current UTC time '${dotnetUtc(now)}'.`);
    }
  }

  function handleArm(req: IncomingMessage, ctx: Ctx): Reply {
    const segs = ctx.url.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    const lower = segs.map((s) => s.toLowerCase());
    if (lower[0] !== 'subscriptions' || !segs[1]) throw new ArmError(404, 'NotFound', 'The requested path is not served by arm-fake.');
    if (lower[1] !== subscriptionId.toLowerCase()) throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${segs[1]}' could not be found.`);
    if (!ctx.url.searchParams.has('api-version')) {
      throw new ArmError(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
    }
    // /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/{DiskOperations|operations}/{id}
    if (lower[2] === 'providers' && lower[3] === 'microsoft.compute' && lower[4] === 'locations' && segs[7] && ctx.method === 'GET') {
      return handleOperation(ctx, segs[6]!, segs[7]);
    }
    if (lower[2] !== 'resourcegroups' || !segs[3]) throw new ArmError(404, 'NotFound', 'The requested path is not served by arm-fake.');
    const rg = resourceGroups.get(lower[3]!);
    if (!rg) throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${segs[3]}' could not be found.`);
    if (lower[4] !== 'providers' || lower[5] !== 'microsoft.compute' || !lower[6]) throw new ArmError(404, 'NotFound', 'The requested path is not served by arm-fake.');
    const type = lower[6];
    const name = segs[7];
    const action = segs[8];
    void req;
    if (type === 'snapshots' && !action) return handleSnapshots(ctx, rg, name);
    if (type === 'disks' && !action) return handleDisks(ctx, rg, name);
    if (type === 'virtualmachines') return handleVms(ctx, rg, name, action);
    throw new ArmError(404, 'NotFound', `arm-fake does not serve Microsoft.Compute/${segs[6]}${action ? `/${action}` : ''}.`);
  }

  // ---- Entra ID ------------------------------------------------------------------------------
  function handleEntra(method: string, url: URL, rawBody: string): Reply | undefined {
    const segs = url.pathname.split('/').filter(Boolean);
    const lower = segs.map((s) => s.toLowerCase());
    const tenant = segs[0];
    if (!tenant) return undefined;
    const rest = lower.slice(1).join('/');
    const knownTenant = tenant.toLowerCase() === tenantId.toLowerCase();
    if (method === 'GET' && (rest === 'v2.0/.well-known/openid-configuration' || rest === '.well-known/openid-configuration')) {
      if (!knownTenant) return { status: 400, body: { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${tenant}' not found.`, error_codes: [90002] } };
      return { status: 200, body: openIdConfiguration(origin, tenantId) };
    }
    if (method === 'GET' && rest === 'discovery/v2.0/keys') {
      if (!jwks) {
        const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const jwk = publicKey.export({ format: 'jwk' });
        const kid = randomBytes(20).toString('base64url');
        jwks = { keys: [{ kty: 'RSA', use: 'sig', kid, x5t: kid, n: jwk.n, e: jwk.e, issuer: `${origin}/${tenantId}/v2.0` }] };
      }
      return { status: 200, body: jwks };
    }
    if (method === 'POST' && rest === 'oauth2/v2.0/token') {
      const form = new URLSearchParams(rawBody);
      if (!knownTenant) return { status: 400, body: { error: 'invalid_request', error_description: `AADSTS90002: Tenant '${tenant}' not found.`, error_codes: [90002] } };
      if (form.get('grant_type') !== 'client_credentials') {
        return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'AADSTS70003: The app requested an unsupported grant type.', error_codes: [70003] } };
      }
      if (form.get('client_id') !== clientId) {
        return { status: 400, body: { error: 'unauthorized_client', error_description: `AADSTS700016: Application with identifier '${form.get('client_id') ?? ''}' was not found in the directory '${tenantId}'.`, error_codes: [700016] } };
      }
      if (form.get('client_secret') !== clientSecret) return { status: 401, body: invalidClientSecretBody(clientId) };
      const accessToken = randomBytes(32).toString('base64url');
      tokens.set(accessToken, { expiresAt: Date.now() + tokenLifetimeSec * 1000 });
      return { status: 200, body: { token_type: 'Bearer', expires_in: tokenLifetimeSec, ext_expires_in: tokenLifetimeSec, access_token: accessToken } };
    }
    return undefined;
  }

  // ---- HTTP plumbing -------------------------------------------------------------------------
  function matchFault(method: string, path: string): Fault | undefined {
    for (const f of faults) {
      if (f.times <= 0) continue;
      if (f.match.method && f.match.method.toUpperCase() !== method) continue;
      if (f.match.path && !f.match.path.test(path)) continue;
      f.times -= 1;
      return f;
    }
    return undefined;
  }

  function readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  function errorReply(e: ArmError): Reply {
    return { status: e.status, headers: e.headers, body: errorBody(e.code, e.message, e.details) };
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', origin);
    const entry: RequestLogEntry = { method, path: url.pathname, query: url.search.replace(/^\?/, ''), status: 0, at };
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion) entry.apiVersion = apiVersion;
    requests.push(entry);
    const rawBody = await readBody(req);
    const isArm = url.pathname.toLowerCase().startsWith('/subscriptions/');

    let dropAfter = false;
    let lroFail: { code: string; message: string } | undefined;
    let reply: Reply | undefined;
    const fault = matchFault(method, url.pathname);
    if (fault) {
      const effect = fault.effect;
      if ('drop' in effect) {
        if (effect.drop === 'before') { req.socket.destroy(); return; }
        dropAfter = true;
      } else if ('delayMs' in effect) {
        await sleep(effect.delayMs);
      } else if ('lroFail' in effect) {
        lroFail = effect.lroFail;
      } else {
        const headers: Record<string, string> = effect.retryAfterSec !== undefined ? { 'Retry-After': String(effect.retryAfterSec) } : {};
        if (effect.status === 429) counters.throttled429 += 1;
        reply = { status: effect.status, headers, body: isArm ? errorBody(effect.code, effect.message) : { error: effect.code, error_description: effect.message } };
      }
    }

    if (!reply) {
      try {
        if (isArm) {
          authenticate(req);
          if (throttleLeft > 0) {
            throttleLeft -= 1;
            counters.throttled429 += 1;
            const kind = method === 'GET' ? 'read' : method === 'DELETE' ? 'delete' : 'write';
            throw new ArmError(429, 'SubscriptionRequestsThrottled',
              `Number of '${kind}' requests for subscription '${subscriptionId}' actor '${clientId}' exceeded. Please try again after '${throttleRetryAfter}' seconds after the last request. See https://aka.ms/ARMThrottling for more details.`,
              { 'Retry-After': String(throttleRetryAfter) });
          }
          let body: Bag | undefined;
          if (rawBody.trim()) {
            try { body = JSON.parse(rawBody) as Bag; } catch { throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.'); }
          }
          const ctx: Ctx = { method, url, body, apiVersion: apiVersion ?? '', ...(lroFail ? { lroFail } : {}) };
          reply = handleArm(req, ctx);
        } else {
          reply = handleEntra(method, url, rawBody) ?? { status: 404, body: { error: 'not_found', error_description: `arm-fake serves no ${method} ${url.pathname}` } };
        }
      } catch (e) {
        if (e instanceof ArmError) {
          if (e.status === 429 && e.code === 'OperationNotAllowed') counters.throttled429 += 1;
          reply = errorReply(e);
        } else {
          reply = { status: 500, body: errorBody('InternalServerError', e instanceof Error ? e.message : String(e)) };
        }
      }
    }

    if (dropAfter) { req.socket.destroy(); return; }
    if (latencyMs > 0) await sleep(latencyMs);
    const requestId = randomUUID();
    const correlation = (req.headers['x-ms-correlation-request-id'] as string | undefined) ?? randomUUID();
    const headers: Record<string, string> = {
      'Cache-Control': 'no-cache',
      Pragma: 'no-cache',
      Expires: '-1',
      'x-ms-request-id': requestId,
      'x-ms-correlation-request-id': correlation,
      'x-ms-routing-request-id': `${location.toUpperCase()}:${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}:${requestId}`,
      'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
      'X-Content-Type-Options': 'nosniff',
      Date: new Date().toUTCString(),
      ...reply.headers,
    };
    let payload = '';
    if (reply.body !== undefined) {
      payload = JSON.stringify(reply.body);
      headers['Content-Type'] = 'application/json; charset=utf-8';
    }
    headers['Content-Length'] = String(Buffer.byteLength(payload));
    entry.status = reply.status;
    res.writeHead(reply.status, headers);
    res.end(payload);
  }

  const sockets = new Set<Socket>();
  const server: Server = createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    onRequest(req, res).catch((e: unknown) => {
      if (!res.headersSent) { res.writeHead(500); res.end(String(e)); }
    });
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fake: ArmFake = {
    endpoint: origin,
    authorityHost: origin,
    ca: cert.certPem,
    subscriptionId, tenantId, clientId, clientSecret, location,
    addResourceGroup: (name) => { ensureRg(name); },
    addVm,
    addDisk: (seed) => mkDisk(seed.resourceGroup, seed.name, seed.sku ?? 'Premium_LRS', seed.sizeGB ?? 64).id as string,
    setPower: (vmId, p) => { power.set(vmKeyOf(vmId), p); },
    vm: (vmId) => {
      const k = vmKeyOf(vmId);
      return vmView(vms.get(k)!, k, true);
    },
    disks: (rg) => [...disks.entries()].filter(([k]) => !rg || k.startsWith(`${rg.toLowerCase()}/`)).map(([, d]) => structuredClone(d)),
    snapshots: (rg) => [...snapshots.entries()].filter(([k]) => !rg || k.startsWith(`${rg.toLowerCase()}/`)).map(([, s]) => structuredClone(s)),
    addSnapshot: (seed) => {
      const source = diskById(seed.diskId);
      if (!source) throw new Error(`arm-fake: no disk ${seed.diskId}`);
      const rg = ensureRg(seed.resourceGroup ?? parseId(source.id)!.rg);
      const snap = makeSnapshot(rg, seed.name, source, { tags: seed.tags ?? {}, properties: { incremental: seed.incremental ?? true } }, source.location);
      snapshots.set(key(rg, seed.name), snap);
      return structuredClone(snap);
    },
    removeSnapshot: (snapshotId) => {
      const p = parseId(snapshotId);
      return !!p && p.type === 'snapshots' && snapshots.delete(key(p.rg, p.name));
    },
    removeDisk: (diskId) => {
      const d = diskById(diskId);
      const p = parseId(diskId);
      if (!d || !p || d.managedBy) return false;
      return disks.delete(key(p.rg, p.name));
    },
    fault: (match, effect, times = 1) => { faults.push({ match, effect, times }); },
    throttle: (count, retryAfterSec) => { throttleLeft = count; throttleRetryAfter = retryAfterSec; },
    expireTokens: () => {
      const now = Date.now();
      for (const t of tokens.values()) t.revokedAt = Math.min(t.revokedAt ?? Infinity, now);
    },
    settle: () => { for (const op of operations.values()) finish(op); },
    requests,
    counters,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await closed;
    },
  };
  return fake;
}
