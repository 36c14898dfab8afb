import { Type } from 'typebox';
import { SNAPSHOT_MODES } from '../../../providers/contract.ts';
import { GROUP_STATES } from '../../domain/group.ts';
import { JOB_STATES } from '../../domain/types.ts';
import { Id, IsoTime, NullableIsoTime, NullableObject, NullableString, PageQuery, StringEnum } from './common.ts';
import { Job, JobError } from './jobs.ts';

const MAX_MEMBERS = 1000;

export const Selector = Type.Object(
  {
    vms: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: MAX_MEMBERS, description: 'Snapvisor VM ids (any of them)' })),
    targets: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100, description: 'Target names (any of them)' })),
    namePattern: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Glob over the VM name (`*`, `?`, `[a-z]`, `{a,b}`), case-sensitive' })),
  },
  { additionalProperties: false, description: 'Every given field must match; a selector with no field is refused (it would match nothing)' },
);

export const CreateGroupBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255, description: "Every member snapshot's name" }),
    description: Type.Optional(Type.String({ maxLength: 4096 })),
    mode: StringEnum(SNAPSHOT_MODES),
    vms: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: MAX_MEMBERS, description: 'The VMs, by id (or give `selector`)' })),
    selector: Type.Optional(Selector),
  },
  { additionalProperties: false },
);

export const GroupMember = Type.Object({
  vmId: Id,
  vmName: Type.String(),
  target: Type.String(),
  jobId: Id,
  state: StringEnum(JOB_STATES),
  snapshotId: NullableString(),
  startedAt: NullableIsoTime,
  error: NullableObject(JobError),
});

export const SnapshotGroup = Type.Object(
  {
    id: Id,
    name: Type.String(),
    description: Type.String(),
    mode: StringEnum(SNAPSHOT_MODES),
    selector: NullableObject(Selector),
    state: StringEnum(GROUP_STATES),
    createdAt: IsoTime,
    requestedBy: Type.String(),
    finishedAt: NullableIsoTime,
    spreadMs: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: 'Last member start − first member start (ms); null until one started' }),
    members: Type.Array(GroupMember),
  },
  { title: 'SnapshotGroup' },
);

export const GroupPage = Type.Object({ items: Type.Array(SnapshotGroup), next: NullableString() });
export const GroupListQuery = Type.Object({ ...PageQuery });
export const GroupParams = Type.Object({ groupId: Id });
export const GroupAction = Type.Object({ group: SnapshotGroup, jobs: Type.Array(Job) });
