import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { READ_ONE } from './shared.ts';

const Whoami = Type.Object(
  {
    name: Type.String({ description: "The token's name from the configuration (never its value)" }),
    scopes: Type.Array(Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')]), { description: 'What it may do, implied scopes included' }),
  },
  { title: 'Whoami' },
);

/** Who the presented token is: a client (the web console) shows only what that token may do. */
const whoami: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/whoami', {
    schema: { tags: ['operations'], summary: "The presented token's name and scopes", response: { 200: Whoami, ...READ_ONE } },
  }, async (request) => {
    const principal = request.principal!;
    const order = ['read', 'write', 'admin'] as const;
    return { name: principal.name, scopes: order.filter((s) => principal.scopes.has(s)) };
  });
};

export default whoami;
