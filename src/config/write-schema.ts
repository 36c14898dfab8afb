/**
 * Writes config/snapvisor.schema.json from the TypeBox schema (`npm run config:schema`), or to the
 * path given as the first argument.
 */
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from './json-schema.ts';

writeFileSync(process.argv[2] ?? new URL('../../config/snapvisor.schema.json', import.meta.url), configJsonSchema());
