// Test-only TCP peers: an echo server that keeps half-close semantics (echoes until FIN, then FINs).
import { createHash } from "node:crypto";
import net from "node:net";
import type { Duplex } from "node:stream";

export interface TestTcpServer {
  port: number;
  server: net.Server;
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

export async function startTcpServer(onSocket: (s: net.Socket) => void): Promise<TestTcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
    onSocket(s);
  });
  // The scale test connects 1,000 upstreams at once: beyond Node's default backlog (511) the
  // kernel drops the handshake's last ACK, the dialler sees the connection open and later gets a
  // reset for it. A deeper accept queue keeps the fixture out of the measurement.
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

/** Reads a duplex to its end and returns all bytes. */
export function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
  });
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Writes `data` in chunks respecting backpressure, then ends. */
export async function writeAllAndEnd(
  stream: Duplex,
  data: Buffer,
  chunk: number = 64 * 1024,
): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.write(data.subarray(off, off + chunk))) {
      await new Promise<void>((r, j) => {
        const onErr = (e: Error): void => j(e);
        stream.once("error", onErr);
        stream.once("drain", () => {
          stream.removeListener("error", onErr);
          r();
        });
      });
    }
  }
  stream.end();
}
