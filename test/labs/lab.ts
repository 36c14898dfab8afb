/**
 * `npm run lab -- <kind> up|down`: start or stop one lab by hand and print how to reach it.
 * virtualbox: a simulator under ./data/labs/virtualbox, kept until `down`.
 * kvm: libvirtd (started if needed) with two tiny domains and an sshd for the `snaplab` user; it
 * stays up while this command runs and is torn down on Ctrl-C (a lab whose process died is
 * reaped by the next one), so `down` only stops libvirtd's leftovers from crashed runs.
 * vcsim: govmomi's vCenter simulator (built on first use) under ./data/labs/vcsim; it stays up
 * while this command runs and dies with it, so `down` only removes its certificate and files.
 * hyperv: the Hyper-V simulator (PowerShell 7.6 + simulated Hyper-V module) behind an sshd for the
 * `hvlab` user, in a directory under the temp dir (sshd needs a traversable path); it stays up while
 * this command runs and is removed on Ctrl-C; `down` removes leftovers of a crashed `up`.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { createHyperVLab } from './hyperv/lab.ts';
import { createKvmLab, ensureLibvirt } from './kvm/lab.ts';
import { createVboxLab } from './vboxmanage-sim/lab.ts';
import { startVcsim } from './vcsim/lab.ts';

const [kind, action] = process.argv.slice(2);

function usage(): never {
  process.stderr.write('usage: npm run lab -- virtualbox|kvm|vcsim|hyperv up|down\n');
  process.exit(2);
}

if ((kind !== 'virtualbox' && kind !== 'kvm' && kind !== 'vcsim' && kind !== 'hyperv') || (action !== 'up' && action !== 'down')) usage();
const dir = kind === 'hyperv' ? path.join(tmpdir(), 'snapvisor-lab-hyperv') : path.resolve('data/labs', kind);

if (kind === 'hyperv') {
  if (action === 'down') {
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`hyperv lab files removed (${dir}); a running lab stops with its \`lab hyperv up\` command\n`);
  } else {
    rmSync(dir, { recursive: true, force: true });
    const lab = await createHyperVLab({
      dir,
      vms: [
        { name: 'web01', state: 'Running', checkpointType: 'Production' },
        { name: 'db01', state: 'Running', checkpointType: 'Standard' },
        { name: 'stopped01', state: 'Off' },
      ],
    });
    const keyFile = path.join(tmpdir(), 'snapvisor-lab-hyperv.key');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(keyFile, lab.ssh.privateKey, { mode: 0o600 });
    process.stdout.write(
      `Hyper-V lab up: VMs web01 (Running, Production), db01 (Running, Standard), stopped01 (Off); state ${lab.statePath}\n` +
        `  ssh: ssh -i ${keyFile} -p ${lab.ssh.port} ${lab.ssh.username}@${lab.ssh.host} powershell -NoProfile -NonInteractive -Command Get-VM\n` +
        `  target config: { name: lab-hyperv, kind: hyperv, ssh: { host: ${lab.ssh.host}, port: ${lab.ssh.port}, username: ${lab.ssh.username}, privateKey: file:${keyFile}, hostKey: "${lab.ssh.hostKey}" } }\n` +
        '  Ctrl-C tears it down.\n',
    );
    const stop = async () => {
      await lab.cleanup();
      rmSync(keyFile, { force: true });
      process.exit(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
    setInterval(() => {}, 1 << 30);
  }
} else if (kind === 'virtualbox') {
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
} else if (kind === 'vcsim') {
  if (action === 'down') {
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`vcsim lab files removed (${dir}); a running vcsim stops with its \`lab vcsim up\` command\n`);
  } else {
    const lab = await startVcsim({ dir });
    const caFile = path.join(dir, 'vcsim-served-cert.pem');
    process.stdout.write(
      `vcsim up (pid ${lab.pid}): ${lab.sdkUrl}, ${lab.vmCount} VMs (e.g. DC0_H0_VM0)\n` +
        `  login: ${lab.username} / ${lab.password}\n` +
        `  certificate: ${caFile} (SHA-1 thumbprint ${lab.thumbprint})\n` +
        `  try: curl --cacert ${caFile} ${lab.url}/about\n` +
        '  Ctrl-C stops it.\n',
    );
    const stop = async () => {
      await lab.stop();
      process.exit(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
    setInterval(() => {}, 1 << 30);
  }
} else if (action === 'down') {
  // Creating (and at once removing) a lab reaps every lab whose process is gone.
  const { version } = await ensureLibvirt();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const probe = await createKvmLab({ dir, domains: [] });
  await probe.cleanup();
  process.stdout.write(`kvm lab: leftovers reaped (libvirt ${version} keeps running)\n`);
} else {
  const { version } = await ensureLibvirt();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const lab = await createKvmLab({ dir, domains: [{ name: 'web01', running: true }, { name: 'stopped01', running: false }] });
  const keyFile = path.join(dir, 'snaplab_ed25519');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(keyFile, lab.ssh.privateKey, { mode: 0o600 });
  process.stdout.write(
    `KVM lab up (libvirt ${version}): domains ${lab.domainName('web01')} (running), ${lab.domainName('stopped01')} (shut off)\n` +
      `  ssh: ssh -i ${keyFile} -p ${lab.ssh.port} ${lab.ssh.username}@${lab.ssh.host} virsh -c ${lab.uri} list --all\n` +
      `  target config: { name: lab-kvm, kind: kvm, uri: ${lab.uri}, ssh: { host: ${lab.ssh.host}, port: ${lab.ssh.port}, username: ${lab.ssh.username}, privateKey: file:${keyFile}, hostKey: "${lab.ssh.hostKey}" } }\n` +
      '  Ctrl-C tears it down.\n',
  );
  const stop = async () => {
    await lab.cleanup();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  setInterval(() => {}, 1 << 30);
}
