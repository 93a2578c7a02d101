// Test-only TCP peers: an echo server that keeps half-close semantics (echoes until FIN, then FINs).
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";

export { startEcho, startTcpServer, type TestTcpServer } from "../testing.js";

/** Reads a duplex to its end and returns all bytes. */
export function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
  });
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Writes `data` in chunks respecting backpressure, then ends. */
export async function writeAllAndEnd(
  stream: Duplex,
  data: Buffer,
  chunk: number = 64 * 1024,
): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.write(data.subarray(off, off + chunk))) {
      await new Promise<void>((r, j) => {
        const onErr = (e: Error): void => j(e);
        stream.once("error", onErr);
        stream.once("drain", () => {
          stream.removeListener("error", onErr);
          r();
        });
      });
    }
  }
  stream.end();
}
