// The HBONE server's read-ahead, where it sits and what it must keep: bulk echo both ways on one
// connection (the Node↔Node case that deadlocks without it) completes byte-exact below TLS (the
// default) and above TLS (the fallback when node:tls hides the TCP socket), and the TLS socket the
// server verifies carries the TCP connection's addresses either way.
import { createHash, randomBytes } from "node:crypto";
import type tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HbonePool } from "./pool.js";
import { ReadAhead, streamUnderTls } from "./read-ahead.js";
import { type ReadAheadPlacement, setReadAheadPlacement } from "./server.js";
import type { HboneStream, TunnelInfo } from "./stream.js";
import { readAll, writeAllAndEnd } from "./testdata/echo.test.util.js";
import { type LoopbackHbone, startLoopbackHbone } from "./testing.js";

let peer: LoopbackHbone;

beforeAll(async () => {
  peer = await startLoopbackHbone();
});
afterAll(() => peer.close());
afterEach(() => setReadAheadPlacement(undefined));

/** `n` tunnels on one pooled connection, each echoing `size` bytes; resolves with the failures. */
async function echoBothWays(pool: HbonePool, port: number, n: number, size: number) {
  const results = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const t = await pool.open(peer.request({ address: { host: "127.0.0.1", port } }));
      const body = randomBytes(size);
      const want = createHash("sha256").update(body).digest("hex");
      const got = readAll(t);
      await writeAllAndEnd(t, body);
      const buf = await got;
      return createHash("sha256").update(buf).digest("hex") === want
        ? "ok"
        : `tunnel ${i}: got ${buf.length} of ${size} B`;
    }),
  );
  return results.filter((r) => r !== "ok");
}

describe("HBONE server read-ahead", () => {
  it("sits below TLS on this Node: the verified TLS socket runs over a ReadAhead of the TCP socket", async () => {
    const seen: {
      under: unknown;
      remote: string | undefined;
      remotePort: number | undefined;
      localPort: number | undefined;
    }[] = [];
    const infos: TunnelInfo[] = [];
    const { port } = await peer.startServer({
      verifyClient: (socket: tls.TLSSocket) => {
        seen.push({
          under: streamUnderTls(socket),
          remote: socket.remoteAddress,
          remotePort: socket.remotePort,
          localPort: socket.localPort,
        });
        return "spiffe://cluster.local/ns/default/sa/client";
      },
      handler: () => ({
        action: "accept",
        onTunnel: (t: HboneStream) => {
          infos.push(t.info);
          t.pipe(t);
        },
      }),
    });
    const pool = new HbonePool();
    try {
      const t = await pool.open(peer.request({ address: { host: "127.0.0.1", port } }));
      const got = readAll(t);
      await writeAllAndEnd(t, Buffer.from("hello"));
      expect((await got).toString()).toBe("hello");
      expect(seen).toHaveLength(1);
      const [s] = seen;
      expect(s?.under).toBeInstanceOf(ReadAhead);
      // the addresses are the TCP connection's, as the client sees it from the other end
      expect(s?.remote).toBe("127.0.0.1");
      expect(s?.remotePort).toBe(t.info.localPort);
      expect(s?.localPort).toBe(port);
      expect(infos[0]?.remoteAddress).toBe("127.0.0.1");
      expect(infos[0]?.remotePort).toBe(t.info.localPort);
      expect(infos[0]?.localPort).toBe(port);
    } finally {
      await pool.close();
    }
  });

  for (const where of ["below-tls", "above-tls"] as ReadAheadPlacement[]) {
    it(`${where}: 40 tunnels × 1 MiB echoed both ways on one connection arrive byte-exact`, {
      timeout: 60_000,
    }, async () => {
      setReadAheadPlacement(where);
      const addresses: string[] = [];
      const { port } = await peer.startServer({
        verifyClient: (socket: tls.TLSSocket) => {
          addresses.push(`${socket.remoteAddress}:${socket.remotePort}`);
          expect(streamUnderTls(socket) instanceof ReadAhead).toBe(where === "below-tls");
          return "spiffe://cluster.local/ns/default/sa/client";
        },
      });
      const pool = new HbonePool();
      try {
        expect(await echoBothWays(pool, port, 40, 1024 * 1024)).toEqual([]);
        expect(pool.dials).toBe(1);
        expect(addresses).toHaveLength(1);
        expect(addresses[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      } finally {
        await pool.close();
      }
    });
  }
});
