/**
 * A file shipped in the package (the vim25 WSDL, the VBoxManage simulator), found from the package
 * root rather than beside the module that needs it: `npm start` runs our modules bundled into
 * .build/, away from their source folders, where `new URL('./x', import.meta.url)` points nowhere.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageFile(...segments: string[]): string {
  const from = dirname(fileURLToPath(import.meta.url));
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, ...segments);
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find ${join(...segments)} in a package above ${from}`);
  }
}
