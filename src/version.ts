import { readFileSync } from 'node:fs';
import { packageFile } from '../providers/shared/package-file.ts';

/** The package version, read once at start (found from the package root: `npm start` runs a bundle under .build/). */
export const VERSION: string = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
