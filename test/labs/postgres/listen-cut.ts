/**
 * A TCP relay in front of a PostgreSQL server that can cut one replica's LISTEN connection alone:
 * the connection whose startup message names application_name `snapvisor-cluster` (store/pg/
 * cluster.ts) is dropped, and refused while the cut lasts, while the replica's pool goes through
 * untouched — a replica that still reads and writes but hears nobody.
 *
 * Used by tests, so it must not import tap.
 */
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

const LISTENER_APP = Buffer.from('snapvisor-cluster\0');

export interface ListenCut {
  /** The server's URL with the relay's port in place of the server's. */
  readonly url: string;
  /** Drops the listening connections and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startListenCut(serverUrl: string): Promise<ListenCut> {
  const target = new URL(serverUrl);
  const sockets = new Set<Socket>();
  const listeners = new Set<Socket>();
  let cutting = false;

  const relay = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      listeners.delete(client);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    let first = true;
    client.on('data', (chunk: Buffer) => {
      // node-postgres sends its whole startup message in one write (no SSL request without ssl).
      if (first) {
        first = false;
        if (chunk.includes(LISTENER_APP)) {
          if (cutting) return end();
          listeners.add(client);
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const url = new URL(serverUrl);
  url.port = String((relay.address() as AddressInfo).port);

  return {
    url: url.toString(),
    cut() {
      cutting = true;
      for (const s of listeners) s.destroy();
    },
    restore() {
      cutting = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}
