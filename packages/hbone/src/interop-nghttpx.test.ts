// Interop with nghttpx (Debian nghttp2-proxy): an independent TLS + HTTP/2 CONNECT proxy.
//  our client → nghttpx (--http2-proxy, TLS 1.3, client cert required) → HTTP/1.1 CONNECT proxy → TCP
//  HTTP/1.1 CONNECT → nghttpx → (h2 over TLS with nghttpx's client cert) → our HboneServer → TCP
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import type { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTunnel } from "./client.js";
import type { HboneError } from "./errors.js";
import { HboneServer } from "./server.js";
import {
  readAll,
  sha256,
  startEcho,
  startTcpServer,
  type TestTcpServer,
} from "./testdata/echo.test.util.js";
import { createTestCa, credsOf, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";

let ca: TestCa;
let otherCa: TestCa;
let client: TestLeaf;
let proxyLeaf: TestLeaf;
let serverLeaf: TestLeaf;
let echo: TestTcpServer;
let h1proxy: http.Server;
let h1port: number;
const procs: ChildProcess[] = [];
let frontPort: number;
let reversePort: number;
let server: HboneServer;
const serverErrors: HboneError[] = [];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function startNghttpx(args: string[], port: number): Promise<void> {
  const p = spawn(
    "nghttpx",
    [
      "--conf=/dev/null",
      "--single-thread",
      "--workers=1",
      "--no-ocsp",
      "--errorlog-file=/dev/stderr",
      "--log-level=WARN",
      ...args,
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  p.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  procs.push(p);
  for (let i = 0; i < 100; i++) {
    if (p.exitCode !== null) throw new Error(`nghttpx exited: ${err}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        r(true);
      });
      s.on("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nghttpx did not listen: ${err}`);
}

beforeAll(async () => {
  ca = createTestCa();
  otherCa = createTestCa("other");
  client = ca.issue("spiffe://cluster.local/ns/default/sa/client");
  proxyLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/nghttpx");
  serverLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
  echo = await startEcho();
  // the HTTP/1.1 CONNECT proxy nghttpx forwards to in --http2-proxy mode
  h1proxy = http.createServer((_req, res) => res.writeHead(405).end());
  h1proxy.on("connect", (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
    const [host, port] = [
      req.url?.slice(0, req.url.lastIndexOf(":")) ?? "",
      Number(req.url?.slice(req.url.lastIndexOf(":") + 1)),
    ];
    sock.on("error", () => {});
    const up = net.connect({ host, port, allowHalfOpen: true }, () => {
      sock.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on("error", () => {
      if (!sock.destroyed)
        sock.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    });
  });
  await new Promise<void>((r) => h1proxy.listen(0, "127.0.0.1", r));
  h1port = (h1proxy.address() as net.AddressInfo).port;
  frontPort = await freePort();
  await startNghttpx(
    [
      "--http2-proxy",
      `--frontend=127.0.0.1,${frontPort}`,
      `--backend=127.0.0.1,${h1port}`,
      "--verify-client",
      `--verify-client-cacert=${ca.certPath}`,
      "--tls-min-proto-version=TLSv1.3",
      "--tls-max-proto-version=TLSv1.3",
      proxyLeaf.keyPath,
      proxyLeaf.certPath,
    ],
    frontPort,
  );
  // reverse direction: nghttpx as the HBONE client of our server
  server = new HboneServer({ credentials: credsOf(serverLeaf, ca) });
  server.on("clientError", (e: HboneError) => serverErrors.push(e));
  const hb = (await server.listen(0)).port;
  reversePort = await freePort();
  await startNghttpx(
    [
      "--http2-proxy",
      `--frontend=127.0.0.1,${reversePort};no-tls`,
      `--backend=127.0.0.1,${hb};;proto=h2;tls`,
      `--client-private-key-file=${client.keyPath}`,
      `--client-cert-file=${client.certPath}`,
      "--insecure",
      "--tls-min-proto-version=TLSv1.3",
    ],
    reversePort,
  );
}, 30_000);

afterAll(async () => {
  for (const p of procs) p.kill();
  await server?.close(500);
  await new Promise<void>((r) => (h1proxy ? h1proxy.close(() => r()) : r()));
  await echo?.close();
  ca?.cleanup();
  otherCa?.cleanup();
});

const viaNghttpx = (over: Partial<Parameters<typeof openTunnel>[0]> = {}) =>
  openTunnel({
    address: { host: "127.0.0.1", port: frontPort },
    credentials: credsOf(client, ca),
    expectedIdentities: [proxyLeaf.id],
    authority: `127.0.0.1:${echo.port}`,
    ...over,
  });

describe("our client → nghttpx", () => {
  it("5 MiB byte-exact (sha256) through nghttpx", async () => {
    const t = await viaNghttpx();
    expect(t.info.peerIdentity).toBe(proxyLeaf.id);
    const data = randomBytes(5 * 1024 * 1024);
    // nghttpx does not turn END_STREAM into a FIN towards an HTTP/1.1 CONNECT backend, so read
    // the echo by length rather than to EOF
    const got = readN(t, data.length);
    await writeAll(t, data);
    expect(sha256(await got)).toBe(sha256(data));
    t.end();
    t.destroy();
  });

  it("half-close upstream first: nghttpx ends the stream, we can still send", async () => {
    let received = "";
    let ended!: () => void;
    const done = new Promise<void>((r) => {
      ended = r;
    });
    const up = await startTcpServer((s) => {
      s.end("banner");
      s.on("data", (c: Buffer) => {
        received += c.toString();
      });
      s.on("end", () => ended());
      s.on("close", () => ended());
    });
    try {
      const t = await viaNghttpx({ authority: `127.0.0.1:${up.port}` });
      expect((await readAll(t)).toString()).toBe("banner");
      t.end("late");
      await done;
      // nghttpx closes the whole CONNECT stream when its backend FINs (no TCP half-close through it)
      console.log("RECEIVED", JSON.stringify(received));
      expect(["late", ""]).toContain(received);
    } finally {
      await up.close();
    }
  });

  it("refuses nghttpx when its SAN is not expected", async () => {
    const err = (await viaNghttpx({ expectedIdentities: [serverLeaf.id] }).catch(
      (e: unknown) => e,
    )) as HboneError;
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
  });

  it("is refused by nghttpx with an untrusted client certificate", async () => {
    const rogue = otherCa.issue("spiffe://cluster.local/ns/default/sa/client");
    const err = (await viaNghttpx({
      credentials: { ...credsOf(rogue, otherCa), ca: ca.certPem },
    }).catch((e: unknown) => e)) as HboneError;
    expect(["ERR_HBONE_TLS", "ERR_HBONE_SESSION"]).toContain(err.code);
  });

  it("a refused upstream is a typed non-200 error", async () => {
    const closed = await freePort();
    const err = (await viaNghttpx({ authority: `127.0.0.1:${closed}` }).catch(
      (e: unknown) => e,
    )) as HboneError;
    expect(err.code).toBe("ERR_HBONE_STATUS");
    expect(err.status).toBeGreaterThanOrEqual(500);
  });
});

function readN(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    stream.on("data", (c: Buffer) => {
      chunks.push(c);
      have += c.length;
      if (have >= n) resolve(Buffer.concat(chunks));
    });
    stream.on("error", reject);
    stream.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

async function writeAll(stream: Writable, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += 64 * 1024) {
    if (!stream.write(data.subarray(off, off + 64 * 1024)))
      await new Promise((r) => stream.once("drain", r));
  }
}

function h1Connect(
  port: number,
  authority: string,
): Promise<{ status: number; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "CONNECT", path: authority });
    req.on("connect", (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
    req.on("response", (res) => resolve({ status: res.statusCode ?? 0, socket: res.socket }));
    req.on("error", reject);
    req.end();
  });
}

describe("nghttpx (h2 client with a client cert) → our server", () => {
  it("5 MiB byte-exact through our server", async () => {
    const { status, socket } = await h1Connect(reversePort, `127.0.0.1:${echo.port}`);
    expect(status).toBe(200);
    const data = randomBytes(5 * 1024 * 1024);
    const got = readN(socket, data.length);
    await writeAll(socket, data);
    expect(sha256(await got)).toBe(sha256(data));
    socket.destroy();
  });

  it("our server answers 503 for a refused upstream and nghttpx relays it", async () => {
    const closed = await freePort();
    const { status, socket } = await h1Connect(reversePort, `127.0.0.1:${closed}`);
    socket.destroy();
    expect(status).toBeGreaterThanOrEqual(500);
  });
});
