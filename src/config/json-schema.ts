import { Config } from './schema.ts';

/** The config file's JSON Schema as committed in config/snapvisor.schema.json. */
export function configJsonSchema(): string {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://snapvisor.dev/schemas/config.json',
    title: 'Snapvisor configuration',
    ...(JSON.parse(JSON.stringify(Config)) as Record<string, unknown>),
  };
  relaxDefaulted(schema);
  return `${JSON.stringify(schema, null, 2)}\n`;
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
