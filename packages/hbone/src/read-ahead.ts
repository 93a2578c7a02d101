import { Duplex } from "node:stream";
import type tls from "node:tls";
import { ChunkJoiner } from "./chunk-joiner.js";

/**
 * Sits between a TLS socket and a node:http2 session and keeps reading the socket while the
 * session is blocked in a write.
 *
 * Why: node:http2 stops reading its socket while one of its socket writes is pending. Two Node
 * HTTP/2 peers that both push more than the kernel socket buffers hold (bulk data both ways on many
 * streams, e.g. an echo) then each wait in a write the other no longer reads: a deadlock. One side
 * that always reads breaks the cycle. What it buffers is bounded by the HTTP/2 flow-control windows
 * we advertise (the peer may not send more DATA than that); `limit` is a hard stop beyond which the
 * socket is paused anyway (control-frame floods). The limit counts what is queued for node:http2
 * and what the joiner holds for this turn, so it holds within one TLS record (16 KiB): a turn that
 * reads faster than it hands on cannot overshoot it by a whole joined chunk.
 *
 * Cost: node:http2 reads a JS stream through a JS→C++ bridge whose price is per chunk, and TLS
 * hands over one chunk per 16 KiB record, so records are joined per event-loop turn (ChunkJoiner).
 */
export class ReadAhead extends Duplex {
  readonly socket: tls.TLSSocket;
  readonly #limit: number;
  /** Bytes read from the socket that the joiner has not handed on yet. */
  #joining = 0;
  readonly #joiner = new ChunkJoiner((chunk) => {
    this.#joining -= chunk.length;
    if (this.destroyed) return;
    this.push(chunk);
    if (this.bufferedBytes >= this.#limit) this.socket.pause();
  });

  constructor(socket: tls.TLSSocket, limit: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: limit, writableHighWaterMark: 256 * 1024 });
    this.socket = socket;
    this.#limit = limit;
    socket.on("data", (chunk: Buffer) => {
      this.#joining += chunk.length;
      this.#joiner.add(chunk);
      if (this.bufferedBytes >= this.#limit) this.socket.pause();
    });
    socket.on("end", () => {
      this.#joiner.flush();
      this.push(null);
    });
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  /** Bytes read from the socket and not yet taken by node:http2 (at most `limit` + one record). */
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

  override _final(cb: (error?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    cb(error);
  }
}
