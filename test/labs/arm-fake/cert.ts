/**
 * A throw-away self-signed certificate for the fake's HTTPS server, made with the `openssl` CLI
 * (execFile with an argument array, never a shell string) in a private temp directory.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeCertificate { certPem: string; keyPem: string }

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args[0] ?? ''} failed: ${stderr.trim() || error.message}`));
      else resolve();
    });
  });
}

/** Self-signed P-256 certificate for CN=localhost, SAN IP:127.0.0.1 + DNS:localhost, valid 2 days. */
export async function makeSelfSignedCertificate(): Promise<FakeCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'arm-fake-cert-'));
  try {
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,digitalSignature,keyCertSign',
      '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    const [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return { certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
