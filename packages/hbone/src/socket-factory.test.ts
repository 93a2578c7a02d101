// DialOptions.connect / HbonePoolOptions.connect: the TCP socket under TLS comes from the caller
// (an in-pod ztunnel opens it inside the pod's network namespace with its packet mark).
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialHbone, type HboneSocketTarget, openTunnel } from "./client.js";
import { HboneError } from "./errors.js";
import { HbonePool } from "./pool.js";
import { HboneServer } from "./server.js";
import { readAll, startEcho, type TestTcpServer } from "./testdata/echo.test.util.js";
import { createTestCa, credsOf, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";

let ca: TestCa;
let client: TestLeaf;
let serverLeaf: TestLeaf;
let echo: TestTcpServer;
let server: HboneServer;
let port = 0;

beforeAll(async () => {
  ca = createTestCa();
  client = ca.issue("spiffe://cluster.local/ns/default/sa/client");
  serverLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
  echo = await startEcho();
  server = new HboneServer({ credentials: credsOf(serverLeaf, ca) });
  port = (await server.listen(0, "127.0.0.1")).port;
});
afterAll(async () => {
  await server.close(500);
  await echo.close();
  ca.cleanup();
});

const base = () => ({
  address: { host: "127.0.0.1", port },
  credentials: credsOf(client, ca),
  expectedIdentities: [serverLeaf.id],
});

describe("HBONE socket factory (DialOptions.connect)", () => {
  it("runs TLS over the socket the factory opened, with the target it was asked for", async () => {
    const targets: HboneSocketTarget[] = [];
    const t = await openTunnel({
      ...base(),
      localAddress: "127.0.0.1",
      connect: (target) => {
        targets.push(target);
        return net.connect({ host: target.host, port: target.port, localAddress: "127.0.0.1" });
      },
      authority: `127.0.0.1:${echo.port}`,
    });
    t.end("through the factory");
    expect((await readAll(t)).toString()).toBe("through the factory");
    expect(targets).toHaveLength(1);
    expect(targets[0]).toMatchObject({ host: "127.0.0.1", port, localAddress: "127.0.0.1" });
    expect(targets[0]?.signal.aborted).toBe(false);
  });

  it("accepts a factory that resolves asynchronously", async () => {
    const conn = await dialHbone({
      ...base(),
      connect: async (target) => {
        const s = net.connect({ host: target.host, port: target.port });
        await new Promise((r) => s.once("connect", r));
        return s;
      },
    });
    try {
      expect(conn.peerIdentity).toBe(serverLeaf.id);
    } finally {
      conn.destroy();
    }
  });

  it("fails the dial with ERR_HBONE_CONNECT_FAILED naming the factory when it rejects", async () => {
    const err = await dialHbone({
      ...base(),
      connect: () => Promise.reject(new Error("netns is gone")),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HboneError);
    expect(err).toMatchObject({ code: "ERR_HBONE_CONNECT_FAILED" });
    expect((err as Error).message).toMatch(/socket factory.*netns is gone/);
    // an HboneError from the factory passes through as it is
    const own = new HboneError("ERR_HBONE_CONFIG", "no such pod");
    await expect(dialHbone({ ...base(), connect: () => Promise.reject(own) })).rejects.toBe(own);
  });

  it("aborts the factory's signal on the handshake timeout and destroys a late socket", async () => {
    let signal: AbortSignal | undefined;
    let late: net.Socket | undefined;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const err = await dialHbone({
      ...base(),
      handshakeTimeoutMs: 100,
      connect: async (target) => {
        signal = target.signal;
        await gate;
        late = net.connect({ host: target.host, port: target.port });
        return late;
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_HBONE_TIMEOUT" });
    expect(signal?.aborted).toBe(true);
    release();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (late?.destroyed) resolve();
        else setTimeout(check, 10);
      };
      check();
    });
    expect(late?.destroyed).toBe(true);
  });

  it("HbonePool dials every pooled connection through its factory", async () => {
    let calls = 0;
    const pool = new HbonePool({
      connect: (target) => {
        calls++;
        return net.connect({ host: target.host, port: target.port });
      },
    });
    try {
      const req = { ...base(), authority: `127.0.0.1:${echo.port}` };
      const a = await pool.open(req);
      const b = await pool.open(req);
      a.end("a");
      b.end("b");
      expect((await readAll(a)).toString()).toBe("a");
      expect((await readAll(b)).toString()).toBe("b");
      expect(calls).toBe(1); // one pooled connection, two tunnels
      expect(pool.dials).toBe(1);
    } finally {
      pool.destroy();
    }
  });
});

describe("a dialled connection's end", () => {
  it("notices a peer's clean close at once, not at a PING timeout (pings off here)", async () => {
    // the server's side of the TCP connection is closed under it: the client sees a FIN only
    const accepted: net.Socket[] = [];
    const hbone = new HboneServer({ credentials: credsOf(serverLeaf, ca) });
    const tcp = net.createServer((s) => {
      accepted.push(s);
      hbone.handle(s);
    });
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    const tcpPort = (tcp.address() as net.AddressInfo).port;
    const conn = await dialHbone({
      ...base(),
      address: { host: "127.0.0.1", port: tcpPort },
      pingIntervalMs: 0,
    });
    try {
      const t = await conn.open({ authority: `127.0.0.1:${echo.port}` });
      t.on("error", () => {});
      t.resume(); // a tunnel closes once its read side is consumed
      const closed = new Promise<void>((r) => conn.once("close", () => r()));
      const tunnelClosed = new Promise<void>((r) => t.once("close", () => r()));
      for (const s of accepted) s.destroy();
      await closed;
      await tunnelClosed;
      expect(conn.available).toBe(false);
    } finally {
      conn.destroy();
      await hbone.close(0);
      await new Promise<void>((r) => tcp.close(() => r()));
    }
  });
});
