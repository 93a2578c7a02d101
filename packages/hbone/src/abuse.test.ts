import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTunnel } from "./client.js";
import type { HboneError } from "./errors.js";
import { HboneServer } from "./server.js";
import { readAll, startTcpServer } from "./testdata/echo.test.util.js";
import { type LoopbackHbone, startLoopbackHbone } from "./testing.js";
import { clientTlsOptions } from "./tls.js";

let peer: LoopbackHbone;
let port: number;
const errors: HboneError[] = [];

beforeAll(async () => {
  peer = await startLoopbackHbone({ server: { rapidReset: { maxResets: 50, windowMs: 1000 } } });
  peer.server.on("clientError", (e: HboneError) => errors.push(e));
  port = peer.port;
});
afterAll(() => peer.close());

function rawSession(): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${port}`, {
      createConnection: () =>
        tls.connect({
          host: "127.0.0.1",
          port,
          ...clientTlsOptions(peer.clientSvid.credentials, [peer.serverSvid.identity]),
        }),
      maxSessionMemory: 64,
    });
    s.once("remoteSettings", () => resolve(s));
    s.once("error", reject);
  });
}

async function stillServing(): Promise<void> {
  const t = await openTunnel({
    address: { host: "127.0.0.1", port },
    credentials: peer.clientSvid.credentials,
    expectedIdentities: [peer.serverSvid.identity],
    authority: `127.0.0.1:${peer.echo.port}`,
  });
  t.end("ok");
  expect((await readAll(t)).toString()).toBe("ok");
}

describe("abuse", () => {
  it("drops a TCP client that never completes the TLS handshake (server handshake timeout)", async () => {
    const slow = new HboneServer({
      credentials: peer.serverSvid.credentials,
      handshakeTimeoutMs: 200,
    });
    const slowErrors: HboneError[] = [];
    slow.on("clientError", (e: HboneError) => slowErrors.push(e));
    const { port: p } = await slow.listen(0);
    const started = Date.now();
    const sock = net.connect(p, "127.0.0.1");
    sock.on("error", () => {});
    await new Promise<void>((r) => sock.once("close", () => r()));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(slowErrors.length).toBe(1);
    await slow.close(100);
  });

  it("gives up on a peer that accepts TCP but never answers TLS (client handshake timeout)", async () => {
    const silent = await startTcpServer(() => {});
    const err = (await openTunnel({
      address: { host: "127.0.0.1", port: silent.port },
      credentials: peer.clientSvid.credentials,
      expectedIdentities: [peer.serverSvid.identity],
      authority: "10.0.0.1:80",
      handshakeTimeoutMs: 200,
    }).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_TIMEOUT");
    await silent.close();
  });

  it("refuses oversized header blocks and keeps serving", async () => {
    const s = await rawSession();
    s.on("error", () => {});
    const outcome = await new Promise<string>((resolve) => {
      const req = s.request({
        ":method": "CONNECT",
        ":authority": `127.0.0.1:${peer.echo.port}`,
        "x-big": "a".repeat(200 * 1024),
      });
      req.on("response", (h) => resolve(`status ${h[":status"]}`));
      req.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
      req.on("close", () => resolve(`closed ${req.rstCode}`));
    });
    expect(outcome).not.toBe("status 200");
    s.destroy();
    await stillServing();
  });

  it("bounds buffering for a slow reader by flow control", async () => {
    let written = 0;
    let blocked!: () => void;
    const isBlocked = new Promise<void>((r) => {
      blocked = r;
    });
    const chunk = Buffer.alloc(256 * 1024, 7);
    const blaster = await startTcpServer((sock) => {
      const pump = (): void => {
        while (written < 256 * 1024 * 1024) {
          written += chunk.length;
          if (!sock.write(chunk)) {
            sock.once("drain", pump);
            setTimeout(blocked, 300);
            return;
          }
        }
      };
      pump();
    });
    const t = await openTunnel({
      address: { host: "127.0.0.1", port },
      credentials: peer.clientSvid.credentials,
      expectedIdentities: [peer.serverSvid.identity],
      authority: `127.0.0.1:${blaster.port}`,
    });
    // never read: the tunnel pauses, the stream window fills, the server stops reading upstream
    await isBlocked;
    await new Promise((r) => setTimeout(r, 300));
    const stuck = written;
    await new Promise((r) => setTimeout(r, 300));
    expect(written).toBe(stuck);
    // 4 MiB stream window + socket and stream buffers, far below what the upstream wanted to send
    expect(written).toBeLessThan(32 * 1024 * 1024);
    t.destroy();
    await blaster.close();
  });
});
