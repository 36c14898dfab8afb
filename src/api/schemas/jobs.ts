import { Type } from 'typebox';
import { JOB_KINDS, JOB_STATES } from '../../domain/types.ts';
import { PROVIDER_ERROR_KINDS } from '../../../providers/contract.ts';
import { Id, IsoTime, NullableIsoTime, NullableObject, NullableString, PageQuery, StringEnum } from './common.ts';

export const JobResult = Type.Object({
  snapshotId: Type.Optional(Type.String()),
  snapshotIds: Type.Optional(Type.Array(Type.String())),
  message: Type.Optional(Type.String()),
});

export const JobError = Type.Object({
  kind: StringEnum([...PROVIDER_ERROR_KINDS, 'cancelled'] as const),
  message: Type.String(),
  code: Type.Optional(Type.String()),
});

export const Job = Type.Object(
  {
    id: Id,
    kind: StringEnum(JOB_KINDS),
    state: StringEnum(JOB_STATES),
    progress: Type.Number({ minimum: 0, maximum: 100 }),
    progressMessage: NullableString(),
    attempts: Type.Integer(),
    result: NullableObject(JobResult),
    error: NullableObject(JobError),
    vmId: Id,
    snapshotId: NullableString(),
    createdAt: IsoTime,
    startedAt: NullableIsoTime,
    finishedAt: NullableIsoTime,
    requestedBy: Type.String(),
    groupId: NullableString({ description: 'The snapshot group that made it (null for other jobs)' }),
    policyId: NullableString({ description: 'The policy whose run submitted it (null for a request)' }),
    policyRunId: NullableString({ description: 'The policy run that submitted it' }),
  },
  { title: 'Job' },
);

export const JobPage = Type.Object({ items: Type.Array(Job), next: NullableString() });

export const JobListQuery = Type.Object({
  state: Type.Optional(StringEnum(JOB_STATES)),
  vm: Type.Optional(Id),
  kind: Type.Optional(StringEnum(JOB_KINDS)),
  policy: Type.Optional(Id),
  ...PageQuery,
});

export const JobParams = Type.Object({ jobId: Id });
