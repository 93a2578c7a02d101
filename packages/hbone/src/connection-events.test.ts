// Connection-level liveness and events (issue #21): a keepalive must not kill a healthy connection
// because our own event loop was late, and every connection end is reported with its reason and
// the streams it carried.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HbonePool, type PoolRequest } from "./pool.js";
import type { ConnectionEnd } from "./stream.js";
import { readAll } from "./testdata/echo.test.util.js";
import { type LoopbackHbone, startLoopbackHbone } from "./testing.js";

let peer: LoopbackHbone;

beforeAll(async () => {
  peer = await startLoopbackHbone();
});
afterAll(() => peer.close());

function req(port: number): PoolRequest {
  return peer.request({ address: { host: "127.0.0.1", port } });
}

/** Blocks this process's event loop (what a saturated proxy does to its own timers). */
function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe("HBONE connection liveness and events", () => {
  it("keeps a healthy connection when the event loop was blocked past the PING timeout", async () => {
    const ends: ConnectionEnd[] = [];
    const { port } = await peer.startServer({ pingIntervalMs: 40, pingTimeoutMs: 100 });
    const pool = new HbonePool({
      pingIntervalMs: 40,
      pingTimeoutMs: 100,
      hooks: { onConnectionEnd: (e) => ends.push(e) },
    });
    const t = await pool.open(req(port));
    t.write("before ");
    // Same period as the PINGs and armed after them: each block starts right after a PING went
    // out, before its ACK could be read.
    await new Promise<void>((resolve) => {
      let n = 0;
      const iv = setInterval(() => {
        busy(400);
        if (++n === 6) {
          clearInterval(iv);
          resolve();
        }
      }, 40);
    });
    t.end("after");
    expect((await readAll(t)).toString()).toBe("before after");
    expect(ends).toEqual([]);
    expect(pool.connectionCount).toBe(1);
    await pool.close();
  });

  it("reports every connection end with its reason and open stream count, on both sides", async () => {
    const serverEnds: ConnectionEnd[] = [];
    const clientEnds: ConnectionEnd[] = [];
    const { server, port } = await peer.startServer({
      hooks: { onConnectionEnd: (e) => serverEnds.push(e) },
    });
    const pool = new HbonePool({ hooks: { onConnectionEnd: (e) => clientEnds.push(e) } });
    const t = await pool.open(req(port));
    t.write("x");
    server.drain(); // GOAWAY: the open tunnel finishes, then the connection closes
    t.end();
    await readAll(t);
    await new Promise((r) => setTimeout(r, 100));
    expect(clientEnds).toHaveLength(1);
    expect(clientEnds[0]).toMatchObject({ role: "client", reason: "goaway", streams: 1 });
    expect(clientEnds[0]?.goawayCode).toBe(0);
    expect(serverEnds).toHaveLength(1);
    expect(serverEnds[0]).toMatchObject({
      role: "server",
      reason: "closed",
      streams: 1,
      peerIdentity: peer.clientSvid.identity,
    });
    await pool.close();
  });
});
