/**
 * Joins the chunks one event-loop turn delivers and hands them on once: at the end of that turn
 * (setImmediate, after all of the turn's I/O callbacks) or as soon as `maxBytes` have gathered.
 *
 * Why: TLS hands over one chunk per 16 KiB record and node:http2 one per DATA frame (16 KiB from
 * Node senders), and every chunk costs a stream hop downstream — through node:http2's JS-stream
 * bridge, or a write syscall when a tunnel is piped to a socket. One copy per turn is cheaper.
 */
export class ChunkJoiner {
  readonly #emit: (chunk: Buffer) => void;
  readonly #maxBytes: number;
  #pending: Buffer[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #later = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(emit: (chunk: Buffer) => void, maxBytes: number = 256 * 1024) {
    this.#emit = emit;
    this.#maxBytes = maxBytes;
  }

  add(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes >= this.#maxBytes) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#later);
    }
  }

  /** Hands on what has gathered now (before an end of stream, say). */
  flush(): void {
    if (this.#bytes === 0) return;
    const chunk =
      this.#pending.length === 1
        ? (this.#pending[0] as Buffer)
        : Buffer.concat(this.#pending, this.#bytes);
    this.#pending = [];
    this.#bytes = 0;
    this.#emit(chunk);
  }
}
