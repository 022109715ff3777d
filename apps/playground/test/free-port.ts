import { createServer } from 'node:net';

/**
 * A port nothing listens on now. Vite reads `port: 0` as "unset" and falls back to its
 * default (5173 for dev, 4173 for preview), which fails under `strictPort` while a dev
 * server of the user's holds it; so the tests ask the OS for a free port first.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP port from the OS');
  return address.port;
}
