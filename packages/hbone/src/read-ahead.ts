import type net from "node:net";
import { Duplex } from "node:stream";
import type tls from "node:tls";
import { ChunkJoiner } from "./chunk-joiner.js";

/**
 * Keeps reading a connection while node:http2 is blocked in a write.
 *
 * Why: node:http2 stops reading its socket while one of its socket writes is pending. Two Node
 * HTTP/2 peers that both push more than the kernel socket buffers hold (bulk data both ways on many
 * streams, e.g. an echo) then each wait in a write the other no longer reads: a deadlock. One side
 * that always reads breaks the cycle. What it buffers is bounded by the HTTP/2 flow-control windows
 * we advertise (the peer may not send more DATA than that); `limit` is a hard stop beyond which the
 * socket is paused anyway (control-frame floods). The limit counts what is queued for the reader
 * and what the joiner holds for this turn, so it holds within one chunk of the socket (a 16 KiB TLS
 * record, or one TCP read of at most 64 KiB).
 *
 * Where: below TLS (TCP → ReadAhead → TLS → node:http2), the HBONE server's default, so that
 * decryption and HTTP/2 stay native and JS sees one TCP read per chunk; node:http2's ReadStop then
 * pauses only this stream, never the TCP socket. Above TLS (a TLS socket → ReadAhead →
 * node:http2, `join: true`), node:http2 reads a JS stream through a bridge whose price is per
 * chunk while TLS hands over one chunk per 16 KiB record, so the records of one event-loop turn are
 * joined first (ChunkJoiner).
 */
export class ReadAhead extends Duplex {
  readonly socket: net.Socket | tls.TLSSocket;
  readonly #limit: number;
  /** Bytes read from the socket that the joiner has not handed on yet. */
  #joining = 0;
  readonly #joiner: ChunkJoiner | undefined;

  constructor(socket: net.Socket | tls.TLSSocket, limit: number, options: { join?: boolean } = {}) {
    super({ allowHalfOpen: true, readableHighWaterMark: limit, writableHighWaterMark: 256 * 1024 });
    this.socket = socket;
    this.#limit = limit;
    const joiner = options.join
      ? new ChunkJoiner((chunk) => {
          this.#joining -= chunk.length;
          if (this.destroyed) return;
          this.push(chunk);
          if (this.bufferedBytes >= this.#limit) this.socket.pause();
        })
      : undefined;
    this.#joiner = joiner;
    socket.on(
      "data",
      joiner
        ? (chunk: Buffer) => {
            this.#joining += chunk.length;
            joiner.add(chunk);
            if (this.bufferedBytes >= this.#limit) this.socket.pause();
          }
        : (chunk: Buffer) => {
            this.push(chunk);
            if (this.readableLength >= this.#limit) this.socket.pause();
          },
    );
    socket.on("end", () => {
      this.#joiner?.flush();
      this.push(null);
    });
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  /** Bytes read from the socket and not yet taken by the reader (at most `limit` + one chunk). */
  get bufferedBytes(): number {
    return this.readableLength + this.#joining;
  }

  override _read(): void {
    // node:stream calls this once what is being read leaves less than the limit queued; while the
    // joiner alone holds a full limit, its hand-on (a push) brings us back here
    if (this.socket.isPaused() && this.#joining < this.#limit) this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once("drain", () => cb());
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (error?: Error | null) => void): void {
    // TLS hands over its records in one batch: one writev syscall for them
    const s = this.socket;
    s.cork();
    let ok = true;
    for (const c of chunks) ok = s.write(c.chunk);
    s.uncork();
    if (ok) cb();
    else s.once("drain", () => cb());
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    cb(error);
  }
}

/**
 * The stream a TLS socket made over a JS Duplex reads from. node:tls wraps such a Duplex in a
 * JSStreamSocket and keeps it on the TLS handle; there is no public way back, so this reads that
 * internal and the server probes once (`tlsKeepsItsStream`) before relying on it.
 */
export function streamUnderTls(socket: tls.TLSSocket): unknown {
  return (socket as unknown as { _handle?: { _parentWrap?: { stream?: unknown } } | null })._handle
    ?._parentWrap?.stream;
}
