// @ambientkit/hbone/testing: one call gives a server, both SVIDs and an echo to tunnel to.
import { describe, expect, it } from "vitest";
import { dialHbone, openTunnel } from "./client.js";
import { HbonePool } from "./pool.js";
import { readAll } from "./testdata/echo.test.util.js";
import { startLoopbackHbone } from "./testing.js";

describe("startLoopbackHbone", () => {
  it("tunnels to the echo as the client, seen as the client by the server", async () => {
    const peer = await startLoopbackHbone({ trustDomain: "example.org", clientId: "shop/cart" });
    try {
      expect(peer.clientSvid.identity).toBe("spiffe://example.org/ns/shop/sa/cart");
      expect(peer.serverSvid.identity).toBe("spiffe://example.org/ns/default/sa/server");
      let seen: string | undefined;
      const peerServer = await peer.startServer({
        handler: (r) => {
          seen = r.peerIdentity;
          return { action: "connect", host: "127.0.0.1", port: peer.echo.port };
        },
      });
      const via = await openTunnel(
        peer.request({ address: { host: "127.0.0.1", port: peerServer.port } }),
      );
      via.end();
      await readAll(via);
      expect(seen).toBe(peer.clientSvid.identity);
      const t = await openTunnel(peer.request());
      expect(t.info.peerIdentity).toBe(peer.serverSvid.identity);
      t.end("hello");
      expect((await readAll(t)).toString()).toBe("hello");
      const conn = await dialHbone(peer.request());
      expect(conn.peerIdentity).toBe(peer.serverSvid.identity);
      await conn.close();
    } finally {
      await peer.close();
    }
  });

  it("startServer adds servers of the same mesh; close() closes them all", async () => {
    const peer = await startLoopbackHbone({ server: { maxConcurrentStreams: 1 } });
    const other = await peer.mesh.issue("default/other");
    const second = await peer.startServer({ credentials: other.credentials });
    const pool = new HbonePool();
    const t = await pool.open(
      peer.request({
        address: { host: "127.0.0.1", port: second.port },
        expectedIdentities: [other.identity],
      }),
    );
    expect(t.info.peerIdentity).toBe(other.identity);
    t.end("x");
    await readAll(t);
    await pool.close();
    await peer.close();
    await expect(openTunnel(peer.request())).rejects.toMatchObject({
      code: "ERR_HBONE_CONNECT_FAILED",
    });
  });
});
