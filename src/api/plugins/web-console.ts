/**
 * The web console at /ui: the files scripts/build-ui.mjs made, served as they are. They hold no
 * data, so they need no token (the console signs in against the API like any client). Only the
 * build's own files are served — the list is read once at start — under a Content-Security-Policy
 * that allows scripts, styles and requests from this origin alone: no inline script or style, no
 * framing, no plugins, so a hostile VM name that reached the page as markup still could not run.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageFile } from '../../../providers/shared/package-file.ts';
import { HttpProblem } from '../errors.ts';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export interface WebConsoleOptions {
  /** The built console (.build/ui-<hash>); null when it was not built. */
  dir: string | null;
}

/** The console the latest build made (`.build/ui-latest` names it), or null when there is none. */
export function builtConsoleDir(): string | null {
  try {
    const dir = readFileSync(packageFile('.build', 'ui-latest'), 'utf8').trim();
    return existsSync(path.join(dir, 'index.html')) ? dir : null;
  } catch {
    return null;
  }
}

function listFiles(dir: string): Set<string> {
  const files = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    // The compressed variants are served in place of their file, never asked for by name.
    if (!entry.isFile() || /\.(br|gz)$/.test(entry.name)) continue;
    files.add(path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
  }
  return files;
}

async function webConsole(app: FastifyInstance, options: WebConsoleOptions) {
  const files = options.dir === null ? new Set<string>() : listFiles(options.dir);
  // preCompressed: the build wrote .br and .gz beside each file; the browser gets the one it accepts.
  if (options.dir !== null) await app.register(fastifyStatic, { root: options.dir, serve: false, preCompressed: true });
  const notBuilt = () =>
    new HttpProblem(503, 'console_not_built', 'SNAPVISOR_ERR_CONSOLE_NOT_BUILT', 'Service Unavailable', 'the web console was not built: `npm start` builds it, or run `npm run build:ui` and restart');

  const send = (reply: FastifyReply, file: string) => {
    if (options.dir === null) throw notBuilt();
    if (!files.has(file)) {
      throw new HttpProblem(404, 'not_found', 'SNAPVISOR_ERR_NOT_FOUND', 'Not Found', 'no such file in the web console');
    }
    reply.headers(SECURITY_HEADERS);
    // Asset names carry their content hash; index.html names the current ones, so it is never cached.
    const immutable = file.startsWith('assets/');
    reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    return reply.sendFile(file, { cacheControl: false });
  };

  const route = { config: { public: true }, schema: { hide: true } } as const;
  app.get('/', route, async (_request, reply) => reply.redirect('/ui/', 302));
  // With ignoreTrailingSlash, /ui and /ui/ are one route: index.html names its assets by absolute path.
  app.get('/ui', route, async (_request, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/ui/*', route, async (request, reply) => send(reply, request.params['*'] === '' ? 'index.html' : request.params['*']));
}

export default fp(webConsole, { name: 'snapvisor-web-console', fastify: '5.x' });
