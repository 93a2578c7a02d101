import type http2 from "node:http2";
import { Duplex } from "node:stream";
import { ChunkJoiner } from "./chunk-joiner.js";
import type { HboneError } from "./errors.js";
import { isCleanReset, RST_CANCEL, resetError, toHboneError } from "./node-error.js";

/** Which way bytes flowed, seen from the side that owns the hooks. */
export type ByteDirection = "sent" | "received";

/** What a telemetry recorder learns about one tunnel. */
export interface TunnelInfo {
  /** `client` for tunnels we opened, `server` for tunnels we terminated. */
  role: "client" | "server";
  authority: string;
  /** SPIFFE ID of the peer (the server for clients, the client for servers). */
  peerIdentity: string;
  /** Our own SPIFFE ID on this connection. */
  localIdentity: string;
  /** The HBONE connection's socket addresses. */
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Request headers (lower-case names, pseudo-headers included). */
  headers: Readonly<Record<string, string>>;
}

/** Summary passed to `onClose`. */
export interface TunnelSummary {
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /** Set when the tunnel ended with an error (not for a clean reset or EOF). */
  error?: HboneError;
}

/** Why an HBONE (HTTP/2) connection ended. */
export type ConnectionEndReason =
  /** The peer sent GOAWAY (it is draining or refused us). */
  | "goaway"
  /** A PING went unanswered for the keepalive timeout. */
  | "keepalive-timeout"
  /** No streams for the idle timeout (server) or the pool's release timeout. */
  | "idle"
  /** Rapid-reset defence: GOAWAY(ENHANCE_YOUR_CALM). */
  | "rapid-reset"
  /** We closed it gracefully (drain, pool close, server close). */
  | "closed"
  /** We tore it down (destroy). */
  | "destroyed"
  /** The peer closed or reset the TCP connection without GOAWAY. */
  | "reset"
  /** A session or socket error. */
  | "error";

/** A connection-level end, passed to `onConnectionEnd`. */
export interface ConnectionEnd {
  role: "client" | "server";
  reason: ConnectionEndReason;
  /** Streams (tunnels) that were open when the end began; they end with the connection. */
  streams: number;
  durationMs: number;
  peerIdentity: string;
  localIdentity: string;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** The GOAWAY error code, when a GOAWAY was involved. */
  goawayCode?: number;
  error?: HboneError;
}

/**
 * Hook points a telemetry recorder plugs into (hbone does not depend on telemetry). Hooks must be
 * cheap and must not throw; an exception from a hook is swallowed.
 */
export interface HboneHooks {
  onConnect?(info: TunnelInfo): void;
  onBytes?(info: TunnelInfo, direction: ByteDirection, bytes: number): void;
  onClose?(info: TunnelInfo, summary: TunnelSummary): void;
  /** Once per HBONE connection, when it has closed (GOAWAY, keepalive timeout, reset, …). */
  onConnectionEnd?(end: ConnectionEnd): void;
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // hooks never break the data path
  }
}

/**
 * One HBONE tunnel as a Duplex with real half-close: `end()` sends END_STREAM (the FIN analogue)
 * while reading continues; the peer's END_STREAM ends the readable side. RST_STREAM(NO_ERROR|CANCEL)
 * from the peer is a clean end; other reset codes are an `ERR_HBONE_STREAM_RESET` error.
 * `destroy()` (or `abort()`) resets the stream with CANCEL.
 */
export class HboneStream extends Duplex {
  readonly info: TunnelInfo;
  /** The CONNECT response headers (client side) or request headers (server side). */
  readonly peerHeaders: Readonly<Record<string, string>>;
  bytesSent = 0;
  bytesReceived = 0;
  readonly #h2: http2.Http2Stream;
  readonly #hooks: HboneHooks | undefined;
  readonly #started = Date.now();
  #readEnded = false;
  #closedReported = false;
  /** DATA chunks (one per frame) are pushed once per event-loop turn: see ChunkJoiner. */
  readonly #joiner = new ChunkJoiner((chunk) => {
    if (!this.destroyed && !this.push(chunk)) this.#h2.pause();
  });

  constructor(
    h2: http2.Http2Stream,
    info: TunnelInfo,
    peerHeaders: Readonly<Record<string, string>>,
    hooks?: HboneHooks,
  ) {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    this.#h2 = h2;
    this.info = info;
    this.peerHeaders = peerHeaders;
    this.#hooks = hooks;
    h2.on("data", (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      if (this.#hooks?.onBytes) safe(() => this.#hooks?.onBytes?.(info, "received", chunk.length));
      this.#joiner.add(chunk);
    });
    h2.on("end", () => {
      // Node surfaces an incoming RST_STREAM as end-of-data first and records rstCode a moment
      // later (same I/O callback), so decide once that has run.
      setImmediate(() => {
        const code = h2.rstCode;
        if (h2.closed && code !== undefined && !isCleanReset(code)) {
          if (!this.destroyed) this.destroy(resetError(code, `tunnel ${info.authority}`));
        } else {
          this.#endRead();
        }
      });
    });
    h2.on("error", () => {
      // surfaced through 'close' with rstCode
    });
    h2.on("close", () => {
      const code = h2.rstCode;
      if (isCleanReset(code)) {
        this.#endRead();
        if (!this.writableFinished && !this.destroyed) {
          // the peer is gone: nothing more can be written
          this.#finishWrites();
        }
      } else if (!this.destroyed) {
        this.destroy(resetError(code, `tunnel ${info.authority}`));
      }
      this.#report();
    });
    if (this.#hooks?.onConnect) safe(() => this.#hooks?.onConnect?.(info));
  }

  #endRead(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    this.#joiner.flush();
    this.push(null);
  }

  #finishWrites(): void {
    // end the writable side locally so pipes finish; once both sides are done, 'close' follows
    if (!this.writableEnded) this.end();
  }

  #report(error?: HboneError): void {
    if (this.#closedReported) return;
    this.#closedReported = true;
    const onClose = this.#hooks?.onClose;
    if (!onClose) return;
    const summary: TunnelSummary = {
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      durationMs: Date.now() - this.#started,
      ...(error ? { error } : {}),
    };
    safe(() => onClose(this.info, summary));
  }

  /** The RST_STREAM code the stream closed with (0 = NO_ERROR), `undefined` while open. */
  get rstCode(): number | undefined {
    return this.#h2.closed ? this.#h2.rstCode : undefined;
  }

  override _read(): void {
    this.#h2.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.#send(chunk, cb);
  }

  #send(chunk: Buffer, cb: (error?: Error | null) => void): void {
    const h2 = this.#h2;
    if (h2.closed || h2.destroyed) {
      // the peer already closed the stream cleanly: drop silently like a FIN'd socket would EPIPE
      cb();
      return;
    }
    this.bytesSent += chunk.length;
    if (this.#hooks?.onBytes) safe(() => this.#hooks?.onBytes?.(this.info, "sent", chunk.length));
    h2.write(chunk, (err?: Error | null) => cb(err ? toHboneError(err, "tunnel write") : null));
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (error?: Error | null) => void): void {
    this.#send(
      chunks.length === 1 && chunks[0]
        ? chunks[0].chunk
        : Buffer.concat(chunks.map((c) => c.chunk)),
      cb,
    );
  }

  override _final(cb: (error?: Error | null) => void): void {
    if (this.#h2.closed || this.#h2.destroyed || this.#h2.writableEnded) {
      cb();
      return;
    }
    this.#h2.end(() => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    const h2 = this.#h2;
    const finished = this.#readEnded && h2.writableFinished && !error;
    if (!h2.closed && !h2.destroyed && !finished) h2.close(RST_CANCEL);
    const e = error ? toHboneError(error, `tunnel ${this.info.authority}`) : undefined;
    this.#report(e);
    cb(e ?? null);
  }

  /** Resets the stream with CANCEL (the peer sees a clean EOF, as in ztunnel). */
  abort(): void {
    this.destroy();
  }

  /** Resets the stream with an explicit RST_STREAM code (e.g. CONNECT_ERROR) and destroys the tunnel. */
  reset(code: number): void {
    const h2 = this.#h2;
    if (!h2.closed && !h2.destroyed) h2.close(code);
    this.destroy();
  }
}
