import { SECRET_KEYS } from './load.ts';
import { SecretRef } from './schema.ts';
import { ConfigForEditors } from './targets.ts';

/**
 * The config file's JSON Schema as committed in config/snapvisor.schema.json: the loader's schema
 * with each target block typed by its kind's adapter options (src/config/targets.ts).
 */
export function configJsonSchema(): string {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://snapvisor.dev/schemas/config.json',
    title: 'Snapvisor configuration',
    ...(JSON.parse(JSON.stringify(ConfigForEditors)) as Record<string, unknown>),
  };
  relaxDefaulted(schema);
  const targets = (schema as unknown as { properties: { targets: { items: unknown } } }).properties.targets;
  targets.items = dispatchOn('kind', targets.items);
  describeSecrets(targets.items);
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/**
 * The target union (anyOf, one branch per kind) as `if kind = X then <X's branch>`: a validator or
 * editor checks a block against its own kind's branch only, so a wrong option gets one precise
 * error instead of one per kind, and completion offers that kind's options.
 */
function dispatchOn(key: string, union: unknown): Record<string, unknown> {
  const branches = (union as { anyOf?: { properties: Record<string, { const?: unknown }> }[] }).anyOf;
  if (!branches) throw new Error('expected the target schema to be a union');
  const values = branches.map((b) => {
    const value = b.properties[key]?.const;
    if (typeof value !== 'string') throw new Error(`a target branch has no constant '${key}'`);
    return value;
  });
  const { anyOf: _branches, ...annotations } = union as Record<string, unknown>;
  return {
    ...annotations,
    type: 'object',
    required: [key],
    properties: { [key]: { enum: values } },
    allOf: branches.map((branch, i) => ({ if: { properties: { [key]: { const: values[i] } }, required: [key] }, then: branch })),
  };
}

/** A key with a default may be left out of the file: drop it from `required` for editors and linters. */
function relaxDefaulted(node: unknown): void {
  if (node === null || typeof node !== 'object') return;
  const obj = node as { required?: string[]; properties?: Record<string, { default?: unknown }> };
  if (obj.properties && obj.required) {
    obj.required = obj.required.filter((key) => obj.properties![key]?.default === undefined);
    if (obj.required.length === 0) delete obj.required;
  }
  for (const value of Object.values(obj)) relaxDefaulted(value);
}

/** In target blocks the loader resolves `env:`/`file:` for these keys (SECRET_KEYS): say so to the editor. */
function describeSecrets(node: unknown): void {
  if (node === null || typeof node !== 'object') return;
  const properties = (node as { properties?: Record<string, { type?: unknown; description?: string }> }).properties;
  for (const [key, prop] of Object.entries(properties ?? {})) {
    if (SECRET_KEYS.has(key) && prop.type === 'string' && prop.description === undefined) prop.description = (SecretRef as { description?: string }).description;
  }
  for (const value of Object.values(node)) describeSecrets(value);
}
