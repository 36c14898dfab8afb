/** OpenAPI document (from the route schemas) at /openapi.json, and the docs page at /docs. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

async function swaggerPlugin(app: FastifyInstance, options: { version: string }) {
  await app.register(swagger, {
    // Shared schemas (Problem, SnapshotTreeNode) keep their own names in components.schemas.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Snapvisor',
        description: 'One REST API for virtual-machine snapshots across hypervisors. Errors are RFC 9457 problem+json.',
        version: options.version,
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Token with scopes read, write, admin' } },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'targets', description: 'Configured hypervisor endpoints' },
        { name: 'vms', description: 'Virtual machines' },
        { name: 'snapshots', description: 'Snapshots and their trees' },
        { name: 'jobs', description: 'Every mutating call is a job' },
        { name: 'policies', description: 'Scheduled snapshots, retention and consolidation' },
        { name: 'operations', description: 'Health, readiness, metrics, events' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

export default fp(swaggerPlugin, { name: 'snapvisor-swagger', fastify: '5.x' });
