import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { TrustBundle, TrustBundleSet } from "@ambientkit/identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialHbone, openTunnel } from "./client.js";
import { HboneError } from "./errors.js";
import { decodeProxyV2 } from "./proxy-protocol.js";
import { type HboneDecision, HboneServer, type HboneServerRequest } from "./server.js";
import type { HboneHooks, TunnelSummary } from "./stream.js";
import {
  readAll,
  sha256,
  startEcho,
  startTcpServer,
  type TestTcpServer,
  writeAllAndEnd,
} from "./testdata/echo.test.util.js";
import { createTestCa, credsOf, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";
import { clientTlsOptions } from "./tls.js";

const TD = "cluster.local";
let ca: TestCa;
let otherCa: TestCa;
let client: TestLeaf;
let serverLeaf: TestLeaf;
let serverB: TestLeaf;
let echo: TestTcpServer;
let server: HboneServer;
let port: number;
let lastRequest: HboneServerRequest | undefined;
let decide: ((r: HboneServerRequest) => HboneDecision | Promise<HboneDecision>) | undefined;
const clientErrors: HboneError[] = [];
const serverSummaries: TunnelSummary[] = [];

const dial = (over: Partial<Parameters<typeof openTunnel>[0]> = {}) =>
  openTunnel({
    address: { host: "127.0.0.1", port },
    credentials: credsOf(client, ca),
    expectedIdentities: [serverLeaf.id],
    authority: `127.0.0.1:${echo.port}`,
    ...over,
  });

beforeAll(async () => {
  ca = createTestCa("mesh-root");
  otherCa = createTestCa("other-root");
  client = ca.issue(`spiffe://${TD}/ns/default/sa/client`);
  serverLeaf = ca.issue(`spiffe://${TD}/ns/default/sa/server`);
  serverB = ca.issue(`spiffe://${TD}/ns/other/sa/server-b`);
  echo = await startEcho();
  const hooks: HboneHooks = { onClose: (_i, s) => serverSummaries.push(s) };
  server = new HboneServer({
    credentials: (local) =>
      local === "127.0.0.1"
        ? credsOf(serverLeaf, ca)
        : local === "127.0.0.2"
          ? credsOf(serverB, ca)
          : undefined,
    handler: (r) => {
      lastRequest = r;
      return decide
        ? decide(r)
        : { action: "connect", host: r.authority.host, port: r.authority.port };
    },
    hooks,
    upstreamConnectTimeoutMs: 300,
  });
  server.on("clientError", (e: HboneError) => clientErrors.push(e));
  port = (await server.listen(0, "0.0.0.0")).port;
});

afterAll(async () => {
  await server?.close(1000);
  await echo?.close();
  ca?.cleanup();
  otherCa?.cleanup();
});

function rawSession(leaf: TestLeaf = client): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${port}`, {
      createConnection: () =>
        tls.connect({
          host: "127.0.0.1",
          port,
          ...clientTlsOptions(credsOf(leaf, ca), [serverLeaf.id]),
        }),
    });
    s.once("remoteSettings", () => resolve(s));
    s.once("error", reject);
  });
}

function statusOf(
  s: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = s.request(headers, { endStream: false });
    req.once("response", (h) => {
      resolve(Number(h[":status"]));
      req.close();
    });
    req.once("error", reject);
  });
}

describe("client ↔ server", () => {
  it("carries 5 MiB each way byte-exact (sha256) and exposes the peer identity", async () => {
    const tunnel = await dial();
    expect(tunnel.info.peerIdentity).toBe(serverLeaf.id);
    expect(tunnel.info.localIdentity).toBe(client.id);
    const data = randomBytes(5 * 1024 * 1024);
    const got = readAll(tunnel);
    await writeAllAndEnd(tunnel, data);
    expect(sha256(await got)).toBe(sha256(data));
    expect(lastRequest?.peerIdentity).toBe(client.id);
    expect(lastRequest?.localIdentity).toBe(serverLeaf.id);
  });

  it("exposes baggage, forwarded and traceparent to the embedder", async () => {
    const tunnel = await dial({
      baggage: "k8s.namespace.name=default,service.name=sleep",
      forwarded: { for: "10.0.0.9:5555", host: "echo.default.svc.cluster.local" },
      traceparent: `00-${"ab".repeat(16)}-${"cd".repeat(8)}-00`,
    });
    tunnel.end();
    await readAll(tunnel);
    // Raw header strings: @ambientkit/telemetry owns the baggage and trace-context codecs.
    expect(lastRequest?.baggage).toBe("k8s.namespace.name=default,service.name=sleep");
    expect(lastRequest?.forwarded).toEqual({
      for: "10.0.0.9:5555",
      host: "echo.default.svc.cluster.local",
    });
    expect(lastRequest?.traceparent).toBe(`00-${"ab".repeat(16)}-${"cd".repeat(8)}-00`);
  });

  it("half-closes client → server: FIN reaches the upstream, the reply still flows back", async () => {
    const up = await startTcpServer((s) => {
      let n = 0;
      s.on("data", (c: Buffer) => {
        n += c.length;
      });
      s.on("end", () => s.end(`got:${n}`));
    });
    try {
      const tunnel = await dial({ authority: `127.0.0.1:${up.port}` });
      tunnel.end("hello");
      expect((await readAll(tunnel)).toString()).toBe("got:5");
    } finally {
      await up.close();
    }
  });

  it("half-closes server → client: upstream FIN ends our readable side, we can still send", async () => {
    let received = "";
    let upstreamEnded!: () => void;
    const ended = new Promise<void>((r) => {
      upstreamEnded = r;
    });
    const up = await startTcpServer((s) => {
      s.end("banner");
      s.on("data", (c: Buffer) => {
        received += c.toString();
      });
      s.on("end", () => upstreamEnded());
    });
    try {
      const tunnel = await dial({ authority: `127.0.0.1:${up.port}` });
      expect((await readAll(tunnel)).toString()).toBe("banner");
      tunnel.end("late data");
      await ended;
      expect(received).toBe("late data");
    } finally {
      await up.close();
    }
  });

  it("rejects a server that is not an expected identity", async () => {
    const err = await dial({
      expectedIdentities: [`spiffe://${TD}/ns/default/sa/someone-else`],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HboneError);
    expect((err as HboneError).code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect((err as HboneError).message).toContain("peer did not present the expected SAN");
  });

  it("rejects a client certificate from an untrusted CA", async () => {
    const before = clientErrors.length;
    const rogue = otherCa.issue(`spiffe://${TD}/ns/default/sa/client`);
    const err = await dial({ credentials: { ...credsOf(rogue, otherCa), ca: ca.certPem } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HboneError);
    expect(["ERR_HBONE_TLS", "ERR_HBONE_SESSION"]).toContain((err as HboneError).code);
    await waitFor(() => clientErrors.length > before);
    expect(clientErrors.at(-1)?.code).toBe("ERR_HBONE_TLS");
    expect(clientErrors.at(-1)?.message).toContain("client certificate rejected");
  });

  it("rejects a client in a foreign trust domain even if it chains to the bundle", async () => {
    const before = clientErrors.length;
    const foreign = ca.issue("spiffe://foreign.example/ns/default/sa/client");
    // `ca` is the bundle of the client's own trust domain (foreign.example); to reach the server's
    // check the client must trust cluster.local, so it names that bundle explicitly.
    const trustBundles = new TrustBundleSet([TrustBundle.fromPem(TD, ca.certPem)]);
    const err = await dial({ credentials: { ...credsOf(foreign, ca), trustBundles } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HboneError);
    await waitFor(() => clientErrors.length > before);
    expect(clientErrors.at(-1)?.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(clientErrors.at(-1)?.message).toContain("expected trustdomain (cluster.local)");
  });

  it("answers 400 to non-CONNECT methods and bad authorities", async () => {
    const s = await rawSession();
    try {
      expect(await statusOf(s, { ":method": "GET", ":path": "/" })).toBe(400);
      expect(await statusOf(s, { ":method": "POST", ":path": "/x" })).toBe(400);
      expect(await statusOf(s, { ":method": "CONNECT", ":authority": "no-port" })).toBe(400);
      expect(await statusOf(s, { ":method": "CONNECT", ":authority": "10.0.0.1:99999" })).toBe(400);
      expect(await statusOf(s, { ":method": "CONNECT", ":authority": "fd00::1:80" })).toBe(400);
    } finally {
      s.destroy();
    }
  });

  it("answers 503 when the upstream refuses", async () => {
    const conn = await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: credsOf(client, ca),
      expectedIdentities: [serverLeaf.id],
    });
    try {
      const closed = await listenThenClose();
      const err = await conn.open({ authority: `127.0.0.1:${closed}` }).catch((e: unknown) => e);
      expect((err as HboneError).code).toBe("ERR_HBONE_STATUS");
      expect((err as HboneError).status).toBe(503);
    } finally {
      await conn.close();
    }
  });

  it("answers 503 when the upstream connect does not complete in time", async () => {
    // a listener whose accept queue is full: further SYNs go unanswered, connect() hangs
    const py = spawn("/usr/bin/python3", ["-c", BACKLOG_PY], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const upPort = await new Promise<number>((resolve) =>
        py.stdout?.once("data", (c: Buffer) => resolve(Number(c.toString().trim()))),
      );
      const conn = await dialHbone({
        address: { host: "127.0.0.1", port },
        credentials: credsOf(client, ca),
        expectedIdentities: [serverLeaf.id],
      });
      const started = Date.now();
      const err = (await conn
        .open({ authority: `127.0.0.1:${upPort}` })
        .catch((e: unknown) => e)) as HboneError;
      expect(err.status).toBe(503);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250); // the server's 300 ms upstream timeout
      await conn.close();
    } finally {
      py.kill();
    }
  });

  it("lets the embedder deny (401), find no route (503) or fail (503)", async () => {
    const conn = await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: credsOf(client, ca),
      expectedIdentities: [serverLeaf.id],
    });
    try {
      decide = () => ({ action: "deny" });
      expect(
        ((await conn.open({ authority: "10.0.0.1:80" }).catch((e: unknown) => e)) as HboneError)
          .status,
      ).toBe(401);
      decide = () => ({ action: "no-route" });
      expect(
        ((await conn.open({ authority: "10.0.0.1:80" }).catch((e: unknown) => e)) as HboneError)
          .status,
      ).toBe(503);
      decide = () => {
        throw new Error("boom");
      };
      expect(
        ((await conn.open({ authority: "10.0.0.1:80" }).catch((e: unknown) => e)) as HboneError)
          .status,
      ).toBe(503);
    } finally {
      decide = undefined;
      await conn.close();
    }
  });

  it("serves the identity of the workload that owns the local address", async () => {
    const tB = await dial({
      address: { host: "127.0.0.2", port },
      expectedIdentities: [serverB.id],
    });
    expect(tB.info.peerIdentity).toBe(serverB.id);
    tB.end();
    await readAll(tB);
    const wrong = await dial({
      address: { host: "127.0.0.2", port },
      expectedIdentities: [serverLeaf.id],
    }).catch((e: unknown) => e);
    expect((wrong as HboneError).code).toBe("ERR_HBONE_PEER_IDENTITY");
    const none = await dial({
      address: { host: "127.0.0.3", port },
      handshakeTimeoutMs: 2000,
    }).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(HboneError);
  });

  it("writes PROXY v2 with the source identity in TLV 0xD0 before the bytes", async () => {
    let header: ReturnType<typeof decodeProxyV2>;
    let rest = "";
    const up = await startTcpServer((s) => {
      let buf = Buffer.alloc(0);
      s.on("data", (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
      });
      s.on("end", () => {
        header = decodeProxyV2(buf);
        rest = buf.subarray(header?.length ?? 0).toString();
        s.end();
      });
    });
    try {
      decide = () => ({ action: "connect", host: "127.0.0.1", port: up.port, proxyProtocol: true });
      const t = await dial({ authority: "10.1.2.3:8080" });
      t.end("payload");
      await readAll(t);
      expect(header?.header.identity).toBe(client.id);
      expect(header?.header.source?.address).toBe("127.0.0.1");
      expect(header?.header.destination).toEqual({ address: "10.1.2.3", port: 8080 });
      expect(rest).toBe("payload");
    } finally {
      decide = undefined;
      await up.close();
    }
  });

  it("server abort sends CANCEL, which the client reads as a clean EOF", async () => {
    decide = () => ({
      action: "accept",
      onTunnel: (t) => {
        t.write("x", () => t.abort());
      },
    });
    const t = await dial({ authority: "10.0.0.1:80" });
    expect((await readAll(t)).toString()).toBe("x");
    decide = undefined;
  });

  it("client abort sends CANCEL, which the server sees as a clean end", async () => {
    let serverSide: Promise<string> | undefined;
    decide = () => ({
      action: "accept",
      onTunnel: (t) => {
        serverSide = readAll(t).then((b) => b.toString());
      },
    });
    const t = await dial({ authority: "10.0.0.1:80" });
    t.write("abc");
    await new Promise((r) => setTimeout(r, 50));
    t.abort();
    await waitFor(() => serverSide !== undefined);
    expect(await serverSide).toBe("abc");
    decide = undefined;
  });

  it("calls the on-connect / on-bytes / on-close hooks", async () => {
    const events: string[] = [];
    let bytes = 0;
    const conn = await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: credsOf(client, ca),
      expectedIdentities: [serverLeaf.id],
      hooks: {
        onConnect: (i) => events.push(`connect ${i.role} ${i.peerIdentity}`),
        onBytes: (_i, d, n) => {
          if (d === "sent") bytes += n;
        },
        onClose: (_i, s) => events.push(`close ${s.bytesSent} ${s.bytesReceived}`),
      },
    });
    const before = serverSummaries.length;
    const t = await conn.open({ authority: `127.0.0.1:${echo.port}` });
    t.end(Buffer.alloc(1000));
    await readAll(t);
    await waitFor(() => events.length === 2 && serverSummaries.length > before);
    expect(events).toEqual([`connect client ${serverLeaf.id}`, "close 1000 1000"]);
    expect(bytes).toBe(1000);
    expect(serverSummaries.at(-1)).toMatchObject({ bytesSent: 1000, bytesReceived: 1000 });
    await conn.close();
  });
});

const BACKLOG_PY = `
import socket, time
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(0)
port = ls.getsockname()[1]
fill = []
for i in range(8):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    fill.append(s)
time.sleep(0.2)
print(port, flush=True)
time.sleep(30)
`;

async function listenThenClose(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
