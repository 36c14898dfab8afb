/**
 * `npm run lab -- <kind> up|down`: start or stop one lab by hand and print how to reach it.
 * Labs live under ./data/labs/<kind>.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createVboxLab } from './vboxmanage-sim/lab.ts';

const [kind, action] = process.argv.slice(2);
const dir = path.resolve('data/labs', kind ?? '');

function usage(): never {
  process.stderr.write('usage: npm run lab -- virtualbox up|down\n');
  process.exit(2);
}

if (kind !== 'virtualbox' || (action !== 'up' && action !== 'down')) usage();
if (action === 'down') {
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`virtualbox lab removed (${dir})\n`);
} else {
  if (existsSync(path.join(dir, 'VBoxManage'))) {
    process.stdout.write(`virtualbox lab already up in ${dir}\n`);
  } else {
    createVboxLab({
      dir,
      vms: [
        { name: 'web01', state: 'running' },
        { name: 'db01', state: 'running' },
        { name: 'stopped01', state: 'poweroff' },
      ],
    });
  }
  const wrapper = path.join(dir, 'VBoxManage');
  process.stdout.write(
    `VBoxManage simulator: ${wrapper}\n` +
      `  try: ${wrapper} list vms\n` +
      `  target config: { name: lab-vbox, kind: virtualbox, vboxmanage: ${wrapper} }\n`,
  );
}
