// ReadAhead's bound: what it reads ahead of node:http2 stays within its limit (plus one TLS record
// above TLS, one TCP read below it) when the reader stalls, and every byte still arrives, in
// order, once the reader resumes.
import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReadAhead } from "./read-ahead.js";
import { createTestCa, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";

/** One TLS record's plaintext: what a single socket 'data' event can add past the limit. */
const TLS_RECORD = 16 * 1024;
/** The most one TCP read hands over (node's read buffer). */
const TCP_READ = 64 * 1024;

let ca: TestCa;
let leaf: TestLeaf;

beforeAll(() => {
  ca = createTestCa();
  leaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
});
afterAll(() => ca.cleanup());

/** A TLS connection on loopback: the server side wrapped in a ReadAhead with `limit`. */
async function pair(limit: number): Promise<{
  ahead: ReadAhead;
  client: tls.TLSSocket;
  close(): void;
}> {
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem });
  const accepted = once(server, "secureConnection") as Promise<[tls.TLSSocket]>;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  // the leaf has only a SPIFFE URI SAN; what is under test is the buffer bound, not the name
  const client = tls.connect({
    host: "127.0.0.1",
    port,
    ca: ca.certPem,
    checkServerIdentity: () => undefined,
  });
  client.on("error", () => {});
  const [socket] = await accepted;
  const ahead = new ReadAhead(socket, limit, { join: true });
  ahead.on("error", () => {});
  return {
    ahead,
    client,
    close() {
      client.destroy();
      ahead.destroy();
      server.close();
    },
  };
}

/**
 * The writer pushes 8 MiB (far more than the limit) with backpressure while nothing reads; once
 * the socket is paused, the reader resumes. Returns the most ReadAhead held at any point and
 * whether every byte arrived, in order.
 */
async function stallThenDrain(
  ahead: ReadAhead,
  client: net.Socket,
): Promise<{ mostWhileStalled: number; most: number; intact: boolean }> {
  // observe after every chunk the socket hands over (ReadAhead's own listener runs first), when
  // ReadAhead pauses the socket, and after the joiner's end-of-turn hand-on
  let most = 0;
  const observe = (): void => {
    most = Math.max(most, ahead.readableLength, ahead.bufferedBytes);
  };
  ahead.socket.on("data", observe);
  const sawPause = once(ahead.socket, "pause").then(observe);
  const total = 8 * 1024 * 1024;
  const data = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4) data.writeUInt32BE(i / 4, i);
  const written = (async () => {
    for (let off = 0; off < total; off += 64 * 1024) {
      if (!client.write(data.subarray(off, off + 64 * 1024))) await once(client, "drain");
    }
    client.end();
  })();
  await sawPause;
  await new Promise((r) => setImmediate(r));
  observe();
  const mostWhileStalled = most;
  const got: Buffer[] = [];
  ahead.on("data", (c: Buffer) => {
    got.push(c);
    observe();
  });
  await Promise.all([once(ahead, "end"), written]);
  return { mostWhileStalled, most, intact: Buffer.concat(got).equals(data) };
}

describe("ReadAhead", () => {
  it("above TLS (joined records): at most its limit plus one TLS record, every byte in order", async () => {
    const limit = 64 * 1024;
    const { ahead, client, close } = await pair(limit);
    try {
      const r = await stallThenDrain(ahead, client);
      expect(r.mostWhileStalled).toBeLessThanOrEqual(limit + TLS_RECORD);
      expect(r.intact).toBe(true);
      expect(r.most).toBeLessThanOrEqual(limit + TLS_RECORD);
    } finally {
      close();
    }
  });

  it("below TLS (on the TCP socket): at most its limit plus one TCP read, every byte in order", async () => {
    const limit = 64 * 1024;
    const server = net.createServer();
    const accepted = once(server, "connection") as Promise<[net.Socket]>;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect(port, "127.0.0.1");
    client.on("error", () => {});
    const [socket] = await accepted;
    const ahead = new ReadAhead(socket, limit);
    ahead.on("error", () => {});
    try {
      const r = await stallThenDrain(ahead, client);
      expect(r.mostWhileStalled).toBeLessThanOrEqual(limit + TCP_READ);
      expect(r.intact).toBe(true);
      expect(r.most).toBeLessThanOrEqual(limit + TCP_READ);
    } finally {
      client.destroy();
      ahead.destroy();
      server.close();
    }
  });
});
