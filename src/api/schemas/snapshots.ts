import { Type } from 'typebox';
import { SNAPSHOT_MODES } from '../../../providers/contract.ts';
import { Id, NullableEnum, NullableIsoTime, NullableObject, NullableString, StringEnum, IsoTime } from './common.ts';

const snapshotProperties = {
  id: Id,
  vmId: Id,
  providerRef: Type.String(),
  parentId: NullableString(),
  name: Type.String(),
  description: Type.String(),
  mode: NullableEnum(SNAPSHOT_MODES),
  owner: StringEnum(['snapvisor', 'external'] as const),
  jobId: NullableString(),
  policyId: NullableString({ description: 'The policy whose run made it; null for a snapshot made by a request or outside Snapvisor' }),
  state: StringEnum(['present', 'gone'] as const),
  current: Type.Boolean({ description: "The VM's current state descends from this snapshot" }),
  ready: Type.Boolean({ description: 'Usable now; false while the provider still copies it (a cloud disk snapshot)' }),
  progress: Type.Union([Type.Integer({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'Copy progress while not ready, when known' }),
  details: NullableObject(
    Type.Object({}, {
      additionalProperties: true,
      description:
        "What the provider reports beyond the common fields, as-is (provider-specific; e.g. Azure: the set's disk snapshots with each disk's incremental lineage, a partial set's missing disks); null when it reports nothing",
    }),
  ),
  createdAt: NullableIsoTime,
  firstSeenAt: IsoTime,
  deletedAt: NullableIsoTime,
};

export const Snapshot = Type.Object(snapshotProperties, { title: 'Snapshot' });

/** The fields a snapshot has on the wire, in schema order. */
export const SNAPSHOT_FIELDS = Object.keys(snapshotProperties) as Array<keyof typeof snapshotProperties>;

/** Shared (added with app.addSchema) because it refers to itself. */
export const SnapshotTreeNode = Type.Object(
  {
    ...snapshotProperties,
    depth: Type.Integer({ description: 'Root = 1' }),
    children: Type.Array(Type.Ref('SnapshotTreeNode')),
  },
  { $id: 'SnapshotTreeNode', title: 'SnapshotTreeNode' },
);

/**
 * One shape for both views (flat: `items`; tree: `roots`, `currentSnapshotId`, `maxDepth`) rather
 * than a oneOf, which would make the serializer validate the whole tree on every response.
 */
export const SnapshotListing = Type.Object({
  vmId: Id,
  view: StringEnum(['flat', 'tree'] as const),
  items: Type.Optional(Type.Array(Snapshot)),
  currentSnapshotId: Type.Optional(NullableString()),
  maxDepth: Type.Optional(Type.Integer()),
  roots: Type.Optional(Type.Array(Type.Ref('SnapshotTreeNode'))),
});

export const SnapshotListQuery = Type.Object({
  view: Type.Optional(StringEnum(['flat', 'tree'] as const, { default: 'flat' })),
  includeGone: Type.Optional(Type.Boolean({ default: false })),
});

export const SnapshotParams = Type.Object({ snapshotId: Id });

export const CreateSnapshotBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    description: Type.Optional(Type.String({ maxLength: 4096 })),
    mode: StringEnum(SNAPSHOT_MODES),
    options: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Union([Type.Boolean(), Type.Number(), Type.String({ maxLength: 256 })]), {
        maxProperties: 16,
        description:
          "Options only some targets have, by name (Azure: `incremental`); `GET /v1/targets/{target}` lists a target's `capabilities.createOptions`. An option the target does not declare, or a value of the wrong type, is a 400.",
      }),
    ),
  },
  { additionalProperties: false },
);

export const WaitQuery = Type.Object({
  wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 300, description: 'Seconds to wait for the job to finish' })),
});

export const DeleteSnapshotQuery = Type.Object({
  children: Type.Optional(Type.Boolean({ default: false })),
  wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
});
