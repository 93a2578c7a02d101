// @ambientkit/hbone/testing — a loopback HBONE peer for tests, in one call: a test mesh CA
// (`@ambientkit/identity/testing`), a client and a server SVID, an HboneServer on 127.0.0.1 and a
// TCP echo upstream behind it. For tests only: keys live in memory, servers bind loopback.
import net from "node:net";
import {
  createTestCa,
  type TestCa,
  type TestCaOptions,
  type TestSvid,
} from "@ambientkit/identity/testing";
import type { PoolRequest } from "./pool.js";
import { HboneServer, type HboneServerOptions } from "./server.js";

/** A TCP server on 127.0.0.1 that tracks its sockets. */
export interface TestTcpServer {
  readonly port: number;
  readonly server: net.Server;
  readonly sockets: Set<net.Socket>;
  /** Destroys the open sockets and stops listening. */
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 (an ephemeral port, half-close allowed) calling `onSocket` per connection. */
export async function startTcpServer(onSocket: (s: net.Socket) => void): Promise<TestTcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
    onSocket(s);
  });
  // Tests that connect 1,000 upstreams at once overrun Node's default backlog (511): the kernel
  // drops the handshake's last ACK and the dialler later gets a reset. A deeper queue avoids it.
  await new Promise<void>((r) => server.listen({ port: 0, host: "127.0.0.1", backlog: 2048 }, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echo with half-close: when the client FINs, the echo finishes writing and FINs. */
export function startEcho(): Promise<TestTcpServer> {
  return startTcpServer((s) => s.pipe(s));
}

export interface LoopbackHboneOptions extends TestCaOptions {
  /** The client's SPIFFE ID or `ns/sa`; default `default/client`. */
  readonly clientId?: string;
  /** The server's SPIFFE ID or `ns/sa`; default `default/server`. */
  readonly serverId?: string;
  /** Options of the first server (its `credentials` default to the server SVID's). */
  readonly server?: Partial<HboneServerOptions>;
}

/** A loopback HBONE peer: the mesh, both SVIDs, a listening server and an echo behind it. */
export interface LoopbackHbone {
  readonly mesh: TestCa;
  readonly clientSvid: TestSvid;
  readonly serverSvid: TestSvid;
  /** The first server, listening on 127.0.0.1:`port`. */
  readonly server: HboneServer;
  readonly port: number;
  /** The echo upstream, `127.0.0.1:<port>`: the default CONNECT authority of `request()`. */
  readonly echo: TestTcpServer;
  readonly echoAuthority: string;
  /**
   * Dial or pool options reaching the first server as the client, for a tunnel to the echo
   * (`dialHbone`, `openTunnel`, `HbonePool.open` take it); `over` replaces fields.
   */
  request(over?: Partial<PoolRequest>): PoolRequest;
  /** Starts another server on 127.0.0.1 (default: the server SVID), closed by `close()`. */
  startServer(
    options?: Partial<HboneServerOptions>,
  ): Promise<{ readonly server: HboneServer; readonly port: number }>;
  /** Closes every server (500 ms grace for open tunnels) and the echo. */
  close(): Promise<void>;
}

/** Starts a loopback HBONE peer; `close()` it when done. */
export async function startLoopbackHbone(
  options: LoopbackHboneOptions = {},
): Promise<LoopbackHbone> {
  const mesh = await createTestCa(options);
  const clientSvid = await mesh.issue(options.clientId ?? "default/client");
  const serverSvid = await mesh.issue(options.serverId ?? "default/server");
  const echo = await startEcho();
  const echoAuthority = `127.0.0.1:${echo.port}`;
  const servers: HboneServer[] = [];
  const startServer = async (
    opts: Partial<HboneServerOptions> = {},
  ): Promise<{ server: HboneServer; port: number }> => {
    const server = new HboneServer({ credentials: serverSvid.credentials, ...opts });
    servers.push(server);
    const { port } = await server.listen(0);
    return { server, port };
  };
  const first = await startServer(options.server);
  return {
    mesh,
    clientSvid,
    serverSvid,
    server: first.server,
    port: first.port,
    echo,
    echoAuthority,
    request: (over = {}) => ({
      address: { host: "127.0.0.1", port: first.port },
      credentials: clientSvid.credentials,
      expectedIdentities: [serverSvid.identity],
      authority: echoAuthority,
      ...over,
    }),
    startServer,
    close: async () => {
      await Promise.all(servers.map((s) => s.close(500)));
      await echo.close();
    },
  };
}
