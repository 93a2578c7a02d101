// Small socket helpers: listen with a clear error, close servers for good, pipe two duplexes with
// half-close, and an HTTP server for admin-style endpoints.
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { ExampleError } from "./errors.js";

/** A TCP server plus the set of its open sockets, so `close()` leaves nothing behind. */
export interface Listener {
  readonly server: net.Server | http.Server;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  return sockets;
}

/** Listens on host:port (0 = any); rejects with ERR_EXAMPLES_LISTEN naming the address. */
export async function listen(
  server: net.Server | http.Server,
  host: string,
  port: number,
  what: string,
): Promise<Listener> {
  const sockets = track(server);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      reject(
        new ExampleError(
          "ERR_EXAMPLES_LISTEN",
          `${what}: cannot listen on ${host}:${port} (${(e as NodeJS.ErrnoException).code ?? e.message}); is another instance running?`,
          { cause: e },
        ),
      );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.removeListener("error", onError);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    server,
    host,
    port: addr.port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        if (server instanceof http.Server) server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Pipes two duplexes both ways; FIN propagates as end(); an error on either side destroys both. */
export function pipeBoth(a: Duplex, b: Duplex, onClose?: () => void): void {
  a.pipe(b);
  b.pipe(a);
  let closed = 0;
  const done = (): void => {
    closed++;
    if (closed === 2) onClose?.();
  };
  a.once("error", () => b.destroy());
  b.once("error", () => a.destroy());
  a.once("close", () => {
    if (!b.destroyed && a.errored) b.destroy();
    else if (!b.writableEnded) b.end();
    done();
  });
  b.once("close", () => {
    if (!a.destroyed && b.errored) a.destroy();
    else if (!a.writableEnded) a.end();
    done();
  });
}

/** Connects over TCP (optionally from `localAddress`) with a timeout. */
export function connectTcp(
  host: string,
  port: number,
  options: { localAddress?: string; timeoutMs?: number } = {},
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({
      host,
      port,
      noDelay: true,
      allowHalfOpen: true,
      ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
    });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect ${host}:${port} timed out`));
    }, options.timeoutMs ?? 10_000);
    s.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.once("connect", () => {
      clearTimeout(t);
      s.removeAllListeners("error");
      resolve(s);
    });
  });
}
