/** Writes config/snapvisor.schema.json from the TypeBox schema (`npm run config:schema`). */
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from './json-schema.ts';

writeFileSync(new URL('../../config/snapvisor.schema.json', import.meta.url), configJsonSchema());
