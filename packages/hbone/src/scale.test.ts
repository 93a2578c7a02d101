import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HbonePool } from "./pool.js";
import { readAll, writeAllAndEnd } from "./testdata/echo.test.util.js";
import { type LoopbackHbone, startLoopbackHbone } from "./testing.js";

let peer: LoopbackHbone;

beforeAll(async () => {
  peer = await startLoopbackHbone();
});
afterAll(() => peer.close());

describe("scale", () => {
  it("carries 1,000 concurrent tunnels × 1 MiB each, byte-exact", { timeout: 90_000 }, async () => {
    const N = Number(process.env.HBONE_SCALE_N ?? 1000);
    const body = randomBytes(1024 * 1024 - 8);
    const pool = new HbonePool();
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const t = await pool.open(peer.request());
        const head = Buffer.alloc(8);
        head.writeBigUInt64BE(BigInt(i));
        const want = createHash("sha256").update(head).update(body).digest("hex");
        const got = readAll(t);
        t.write(head);
        await writeAllAndEnd(t, body);
        const buf = await got;
        const ok =
          buf.length === 1024 * 1024 && createHash("sha256").update(buf).digest("hex") === want;
        return ok
          ? "ok"
          : `tunnel ${i}: got ${buf.length} B, rst ${t.rstCode}, sent ${t.bytesSent}, received ${t.bytesReceived}`;
      }),
    );
    expect(results.filter((r) => r !== "ok")).toEqual([]);
    expect(pool.dials).toBe(Math.ceil(N / 100));
    await pool.close();
  });
});
