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
  /** When accept() last failed (EMFILE, ENFILE, …), in ms since the epoch; 0 = never. */
  readonly lastAcceptError?: number;
  close(): Promise<void>;
}

/** How long after a failed accept() readiness stays 503. */
export const ACCEPT_ERROR_HOLD_MS = 5_000;

/** True when none of these listeners failed to accept within ACCEPT_ERROR_HOLD_MS. */
export function acceptingAll(listeners: Iterable<Listener>, now = Date.now()): boolean {
  for (const l of listeners)
    if (now - (l.lastAcceptError ?? 0) < ACCEPT_ERROR_HOLD_MS) return false;
  return true;
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
  let lastAcceptError = 0;
  // a failed accept (out of fds) is an 'error' event; unhandled it would kill the process
  server.on("error", () => {
    lastAcceptError = Date.now();
  });
  return {
    server,
    host,
    port: addr.port,
    get lastAcceptError(): number {
      return lastAcceptError;
    },
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

/** Calls `fn` once `s` has closed, also when it closed before we looked. */
export function onceClosed(s: Duplex, fn: () => void): void {
  if (s.closed) queueMicrotask(fn);
  else s.once("close", fn);
}

/** How long a side whose peer has gone may take to flush what we already wrote to it. */
const LINGER_MS = 5_000;

/**
 * Pipes two duplexes both ways, as ztunnel's `copy_bidirectional`: EOF on one side is a FIN
 * (`end()`) on the other and the other direction keeps flowing. When a side has closed, the other
 * is released too, never left half-open: after an abort (error, RST, destroy) at once; after a clean
 * close it gets our FIN and, if it is still sending to a side that can no longer take it, is
 * destroyed once that FIN is flushed (at most `LINGER_MS`). `onClose` runs once both have closed.
 * With `idleTimeoutMs`, a connection on which no byte moved either way for that long is destroyed
 * (Envoy tcp_proxy `idle_timeout`).
 */
export function pipeBoth(
  a: Duplex,
  b: Duplex,
  onClose?: () => void,
  options: { idleTimeoutMs?: number } = {},
): void {
  let closed = 0;
  const done = (): void => {
    if (++closed === 2) {
      if (idle) clearInterval(idle);
      onClose?.();
    }
  };
  const release = (gone: Duplex, other: Duplex): void => {
    done();
    if (other.destroyed) return;
    if (gone.errored || !gone.readableEnded) {
      other.destroy();
      return;
    }
    if (!other.writableEnded) other.end();
    if (other.readableEnded) return; // both directions done: it closes by itself
    if (other.writableFinished) {
      other.destroy();
      return;
    }
    const t = setTimeout(() => other.destroy(), LINGER_MS);
    t.unref();
    other.once("finish", () => other.destroy());
    other.once("close", () => clearTimeout(t));
  };
  a.on("error", () => b.destroy());
  b.on("error", () => a.destroy());
  a.pipe(b);
  b.pipe(a);
  onceClosed(a, () => release(a, b));
  onceClosed(b, () => release(b, a));
  let idle: NodeJS.Timeout | undefined;
  const idleMs = options.idleTimeoutMs ?? 0;
  if (idleMs > 0) {
    let last = moved(a, b);
    let quietSince = Date.now();
    // one cheap timer per connection instead of a listener per chunk on the data path
    idle = setInterval(
      () => {
        const now = moved(a, b);
        if (now !== last) {
          last = now;
          quietSince = Date.now();
        } else if (Date.now() - quietSince >= idleMs) {
          a.destroy();
          b.destroy();
        }
      },
      Math.max(10, Math.min(idleMs / 4, 60_000)),
    );
    idle.unref();
  }
}

/** Bytes that have passed through the pipes so far (both directions). */
function moved(a: Duplex, b: Duplex): number {
  const n = (d: Duplex): number => {
    // a net.Socket counts bytesRead/bytesWritten, an HboneStream bytesReceived/bytesSent
    const s = d as {
      bytesRead?: unknown;
      bytesWritten?: unknown;
      bytesReceived?: unknown;
      bytesSent?: unknown;
    };
    const r = typeof s.bytesRead === "number" ? s.bytesRead : Number(s.bytesReceived ?? 0);
    const w = typeof s.bytesWritten === "number" ? s.bytesWritten : Number(s.bytesSent ?? 0);
    return r + w;
  };
  return n(a) + n(b);
}

/** Connects over TCP (optionally from `localAddress`) with a timeout. */
export function connectTcp(
  host: string,
  port: number,
  options: { localAddress?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new Error(`connect ${host}:${port} aborted`));
      return;
    }
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
    const onAbort = (): void => {
      clearTimeout(t);
      s.destroy();
      reject(new Error(`connect ${host}:${port} aborted`));
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    s.once("error", (e) => {
      clearTimeout(t);
      options.signal?.removeEventListener("abort", onAbort);
      reject(e);
    });
    s.once("connect", () => {
      clearTimeout(t);
      options.signal?.removeEventListener("abort", onAbort);
      s.removeAllListeners("error");
      resolve(s);
    });
  });
}
