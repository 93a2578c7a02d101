import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayHandler, openDoubleTunnel } from "./double.js";
import type { HboneError } from "./errors.js";
import { HbonePool, type PoolRequest } from "./pool.js";
import type { HboneServerRequest } from "./server.js";
import { readAll } from "./testdata/echo.test.util.js";
import { startPausableProxy } from "./testdata/pausable-proxy.test.util.js";
import { type LoopbackHbone, startLoopbackHbone } from "./testing.js";

let peer: LoopbackHbone;

beforeAll(async () => {
  peer = await startLoopbackHbone();
});
afterAll(() => peer.close());

function req(port: number, over: Partial<PoolRequest> = {}): PoolRequest {
  return peer.request({ address: { host: "127.0.0.1", port }, ...over });
}

describe("HbonePool", () => {
  it("opens a second connection at the stream cap and single-flights dials", async () => {
    const { server, port } = await peer.startServer();
    const pool = new HbonePool({ maxStreamsPerConnection: 3 });
    const r = req(port);
    const tunnels = await Promise.all(Array.from({ length: 5 }, () => pool.open(r)));
    expect(pool.dials).toBe(2);
    expect(pool.connectionCount).toBe(2);
    expect(server.connections).toBe(2);
    for (const t of tunnels) t.end();
    await Promise.all(tunnels.map((t) => readAll(t)));
    // all done: a new tunnel reuses a pooled connection
    const again = await pool.open(r);
    expect(pool.dials).toBe(2);
    again.end();
    await readAll(again);
    await pool.close();
  });

  it("single-flights 20 concurrent opens onto one connection", async () => {
    const { server, port } = await peer.startServer();
    const pool = new HbonePool();
    const tunnels = await Promise.all(Array.from({ length: 20 }, () => pool.open(req(port))));
    expect(pool.dials).toBe(1);
    expect(server.connections).toBe(1);
    for (const t of tunnels) t.destroy();
    await pool.close();
  });

  it("honours the peer's SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
    const { port } = await peer.startServer({ maxConcurrentStreams: 2 });
    const pool = new HbonePool();
    const tunnels = await Promise.all(Array.from({ length: 4 }, () => pool.open(req(port))));
    expect(pool.dials).toBe(2);
    for (const t of tunnels) t.destroy();
    await pool.close();
  });

  it("keys connections by source identity, expected identities, destination and source IP", async () => {
    const { port } = await peer.startServer();
    const pool = new HbonePool();
    const other = await peer.mesh.issue("spiffe://cluster.local/ns/default/sa/other-client");
    const ts = await Promise.all([
      pool.open(req(port)),
      pool.open(req(port, { credentials: other.credentials })),
      pool.open(
        req(port, {
          expectedIdentities: [peer.serverSvid.identity, "spiffe://cluster.local/ns/x/sa/y"],
        }),
      ),
      pool.open(req(port, { sourceIp: "127.0.0.1" })),
    ]);
    expect(pool.dials).toBe(4);
    for (const t of ts) t.destroy();
    await pool.close();
  });

  it("drains on GOAWAY: the open tunnel finishes, new tunnels get a new connection", async () => {
    const { server, port } = await peer.startServer();
    const pool = new HbonePool();
    const t1 = await pool.open(req(port));
    t1.write("before ");
    server.drain();
    await new Promise((r) => setTimeout(r, 100));
    const t2 = await pool.open(req(port));
    expect(pool.dials).toBe(2);
    t1.end("after");
    expect((await readAll(t1)).toString()).toBe("before after");
    t2.end("x");
    expect((await readAll(t2)).toString()).toBe("x");
    await pool.close();
  });

  it("declares a connection dead when PINGs go unanswered and dials a new one", async () => {
    const { port } = await peer.startServer();
    const proxy = await startPausableProxy(port);
    const pool = new HbonePool({ pingIntervalMs: 50, pingTimeoutMs: 150 });
    const t1 = await pool.open(req(proxy.port));
    const failed = readAll(t1).then(
      () => "ended",
      (e: HboneError) => e.code,
    );
    proxy.freeze();
    expect(await failed).toMatch(/ERR_HBONE_(PING_TIMEOUT|SESSION|STREAM_RESET)/);
    expect(pool.connectionCount).toBe(0);
    await proxy.close();
    await pool.close();
  });

  it("releases idle connections", async () => {
    const { server, port } = await peer.startServer();
    const pool = new HbonePool({ idleTimeoutMs: 100 });
    const t = await pool.open(req(port));
    t.end();
    await readAll(t);
    expect(pool.connectionCount).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(pool.connectionCount).toBe(0);
    expect(server.connections).toBe(0);
    await pool.close();
  });

  it("server close sends GOAWAY, lets the open tunnel finish, then refuses new connections", async () => {
    const { server, port } = await peer.startServer();
    const pool = new HbonePool();
    const t = await pool.open(req(port));
    t.write("in flight ");
    const closing = server.close(5000);
    await new Promise((r) => setTimeout(r, 100));
    t.end("and done");
    expect((await readAll(t)).toString()).toBe("in flight and done");
    await closing;
    expect(server.connections).toBe(0);
    await expect(pool.open(req(port))).rejects.toMatchObject({ code: "ERR_HBONE_CONNECT_FAILED" });
    await pool.close();
  });

  it("with requireLocalAuthority, answers 400 when the authority IP is not the dialled address", async () => {
    const { port } = await peer.startServer({ requireLocalAuthority: true });
    const pool = new HbonePool();
    await expect(pool.open(req(port, { authority: "10.0.0.9:80" }))).rejects.toMatchObject({
      status: 400,
    });
    const t = await pool.open(req(port));
    t.end("local");
    expect((await readAll(t)).toString()).toBe("local");
    await pool.close();
  });

  it("rejects opens after close", async () => {
    const pool = new HbonePool();
    await pool.close();
    await expect(pool.open(req(1))).rejects.toMatchObject({ code: "ERR_HBONE_CLOSED" });
  });
});

describe("double HBONE", () => {
  it("tunnels TLS+HTTP/2 inside the outer tunnel through a gateway that forwards the inner bytes", async () => {
    const gwLeaf = await peer.mesh.issue(
      "spiffe://cluster.local/ns/istio-system/sa/eastwest-gateway",
    );
    const svcLeaf = await peer.mesh.issue("spiffe://cluster.local/ns/default/sa/echo");
    let inner: HboneServerRequest | undefined;
    const dest = await peer.startServer({
      credentials: svcLeaf.credentials,
      handler: (r) => {
        inner = r;
        return r.authorityText === "echo.default.svc.cluster.local:80"
          ? { action: "connect", host: "127.0.0.1", port: peer.echo.port }
          : { action: "no-route" };
      },
    });
    let outer: HboneServerRequest | undefined;
    const gw = await peer.startServer({
      credentials: gwLeaf.credentials,
      handler: gatewayHandler((r) => {
        outer = r;
        return { host: "127.0.0.1", port: dest.port };
      }),
    });
    const pool = new HbonePool();
    const t = await openDoubleTunnel({
      pool,
      outer: {
        address: { host: "127.0.0.1", port: gw.port },
        credentials: peer.clientSvid.credentials,
        expectedIdentities: [gwLeaf.identity],
      },
      inner: { expectedIdentities: [svcLeaf.identity] },
      authority: "echo.default.svc.cluster.local:80",
      network: "network-a",
      baggage: "k8s.namespace.name=default",
    });
    expect(t.info.peerIdentity).toBe(svcLeaf.identity);
    t.end("through two tunnels");
    expect((await readAll(t)).toString()).toBe("through two tunnels");
    expect(outer?.forwardedNetwork).toBeUndefined();
    expect(outer?.peerIdentity).toBe(peer.clientSvid.identity);
    expect(inner?.forwardedNetwork).toBe("network-a");
    expect(inner?.peerIdentity).toBe(peer.clientSvid.identity);
    expect(inner?.baggage).toBe("k8s.namespace.name=default");
    // the gateway refuses IP authorities (double HBONE is service-addressed)
    await expect(
      pool.open({
        address: { host: "127.0.0.1", port: gw.port },
        credentials: peer.clientSvid.credentials,
        expectedIdentities: [gwLeaf.identity],
        authority: "10.0.0.1:80",
      }),
    ).rejects.toMatchObject({ status: 400 });
    await pool.close();
  });
});
