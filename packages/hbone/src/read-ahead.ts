import { Duplex } from "node:stream";
import type tls from "node:tls";

/**
 * Sits between a TLS socket and a node:http2 session and keeps reading the socket while the
 * session is blocked in a write.
 *
 * Why: node:http2 stops reading its socket while one of its socket writes is pending. Two Node
 * HTTP/2 peers that both push more than the kernel socket buffers hold (bulk data both ways on many
 * streams, e.g. an echo) then each wait in a write the other no longer reads: a deadlock. One side
 * that always reads breaks the cycle. What it buffers is bounded by the HTTP/2 flow-control windows
 * we advertise (the peer may not send more DATA than that); `limit` is a hard stop beyond which the
 * socket is paused anyway (control-frame floods).
 *
 * Cost: node:http2 reads a JS stream through a JS→C++ bridge whose price is per chunk, and TLS
 * hands over one chunk per 16 KiB record. So the chunks one event-loop turn delivers are joined
 * and handed on once, at the end of that turn (setImmediate), or as soon as `COALESCE_BYTES`
 * have gathered.
 */
const COALESCE_BYTES = 256 * 1024;

export class ReadAhead extends Duplex {
  readonly socket: tls.TLSSocket;
  readonly #limit: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  readonly #flushLater = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };

  constructor(socket: tls.TLSSocket, limit: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: limit, writableHighWaterMark: 256 * 1024 });
    this.socket = socket;
    this.#limit = limit;
    socket.on("data", (chunk: Buffer) => {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes >= COALESCE_BYTES) {
        this.#flush();
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(this.#flushLater);
      }
    });
    socket.on("end", () => {
      this.#flush();
      this.push(null);
    });
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  #flush(): void {
    if (this.#pendingBytes === 0 || this.destroyed) return;
    const chunk =
      this.#pending.length === 1
        ? (this.#pending[0] as Buffer)
        : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.push(chunk);
    if (this.readableLength >= this.#limit) this.socket.pause();
  }

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once("drain", () => cb());
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    cb(error);
  }
}
