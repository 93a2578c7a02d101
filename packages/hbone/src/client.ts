import { EventEmitter } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { peerIdentity } from "@ambientkit/identity/node";
import { formatAuthority, formatSocketAddress, parseAuthority } from "./authority.js";
import { HboneError } from "./errors.js";
import {
  checkExtraHeader,
  type Forwarded,
  formatForwarded,
  HEADER_BAGGAGE,
  HEADER_FORWARDED,
  HEADER_TRACEPARENT,
  HEADER_X_FORWARDED_NETWORK,
  randomTraceparentHeader,
} from "./headers.js";
import { startKeepalive } from "./keepalive.js";
import { RST_CANCEL, toHboneError } from "./node-error.js";
import { HBONE_DEFAULTS, h2Settings } from "./settings.js";
import {
  type ConnectionEnd,
  type ConnectionEndReason,
  type HboneHooks,
  HboneStream,
  type TunnelInfo,
} from "./stream.js";
import { clientTlsOptions, type HboneCredentials, identityOfCredentials } from "./tls.js";

/** How to reach and authenticate one HBONE peer (one HTTP/2 connection). */
export interface DialOptions {
  /** Next hop, e.g. `{ host: "10.0.0.2", port: 15008 }`. */
  address: { host: string; port: number };
  /** Our SVID (the source identity) and the trust bundle(s); see {@link HboneCredentials}. */
  credentials: HboneCredentials;
  /**
   * The server must present one of these SPIFFE IDs (Service SANs ∪ workload identity); an entry
   * ending in `/` accepts any ID under it (`spiffe://cluster.local/` = the whole trust domain).
   */
  expectedIdentities: readonly string[];
  /** Source IP to bind (ztunnel keys pools on it). */
  localAddress?: string;
  /**
   * Run TLS over this stream instead of dialling TCP (double HBONE: the outer tunnel). The
   * connection then owns it and destroys it on close.
   */
  socket?: Duplex;
  /**
   * Opens the TCP connection instead of `net.connect` (ignored when `socket` is given): e.g. from
   * inside a pod's network namespace with ztunnel's packet mark (`connectInNetns` of
   * `@ambientkit/inpod`). See {@link HboneSocketFactory}.
   */
  connect?: HboneSocketFactory;
  /** TCP connect + TLS handshake + first SETTINGS must finish within this (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Cap on concurrent streams we open (default 100, lowered to the peer's SETTINGS). */
  maxStreams?: number;
  /** PING cadence and liveness (default 10 s / 20 s; 0 disables). */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** Telemetry hooks for every tunnel opened on this connection. */
  hooks?: HboneHooks;
  /** Per-stream and connection receive windows (default 4 MiB / 16 MiB, as ztunnel). */
  streamWindowSize?: number;
  connectionWindowSize?: number;
  /**
   * Replaces the TLS options built from `credentials`/`expectedIdentities` (which come from
   * `hboneClientTlsOptions()` of `@ambientkit/identity/node` already). They must still require
   * TLS 1.3, offer ALPN h2 and verify the server.
   */
  tlsOptions?: tls.ConnectionOptions;
}

/** Where a {@link HboneSocketFactory} must connect to. */
export interface HboneSocketTarget {
  readonly host: string;
  readonly port: number;
  /** Source IP to bind, when the caller asked for one (`DialOptions.localAddress`). */
  readonly localAddress?: string;
  /** Aborted when the dial gives up (handshake timeout): stop connecting then. */
  readonly signal: AbortSignal;
}

/**
 * Opens the TCP connection an HBONE dial runs TLS over, in place of `net.connect`. It may resolve
 * before the socket has connected (as `net.connect` returns); the connection owns the socket from
 * then on and destroys it on close or failure. A rejection fails the dial with
 * ERR_HBONE_CONNECT_FAILED (an HboneError passes through unchanged).
 */
export type HboneSocketFactory = (target: HboneSocketTarget) => Duplex | Promise<Duplex>;

/** One CONNECT request. */
export interface TunnelRequest {
  /** `ip:port`, `[v6]:port` or `host:port` (validated). */
  authority: string;
  /**
   * The `baggage` header as sent (source workload metadata, `k8s.namespace.name=…,…`); build it
   * with @ambientkit/telemetry's `formatBaggage(baggageFromWorkload(…))`. Validated for CR/LF.
   */
  baggage?: string;
  /** `for="ip:port";host=svc` — an object is formatted, a string is sent as is (validated for CR/LF). */
  forwarded?: Forwarded | string;
  /** A traceparent to send; by default a fresh random one (as ztunnel); `false` sends none. */
  traceparent?: string | false;
  /** Origin network, sent as `x-forwarded-network` (double HBONE inner CONNECT only). */
  forwardedNetwork?: string;
  /** More headers (lower-case names). */
  headers?: Readonly<Record<string, string>>;
  /** How long to wait for the response headers (default 10 s). */
  timeoutMs?: number;
  /** Abort the CONNECT (and the tunnel) with this signal. */
  signal?: AbortSignal;
}

/** Builds the CONNECT header block ztunnel sends. Throws on a bad authority or header. */
export function buildConnectHeaders(req: TunnelRequest): Record<string, string> {
  parseAuthority(req.authority);
  const out: Record<string, string> = {
    ":method": "CONNECT",
    ":authority": req.authority,
  };
  if (req.baggage !== undefined) {
    if (req.baggage !== "") out[HEADER_BAGGAGE] = req.baggage;
  }
  if (req.forwarded !== undefined) {
    out[HEADER_FORWARDED] =
      typeof req.forwarded === "string"
        ? req.forwarded
        : formatForwarded(req.forwarded.for ?? "", req.forwarded.host);
  }
  if (req.traceparent !== false) {
    out[HEADER_TRACEPARENT] = req.traceparent ?? randomTraceparentHeader();
  }
  if (req.forwardedNetwork !== undefined) out[HEADER_X_FORWARDED_NETWORK] = req.forwardedNetwork;
  for (const [k, v] of Object.entries(req.headers ?? {})) {
    checkExtraHeader(k, v);
    out[k] = v;
  }
  for (const [k, v] of Object.entries(out)) if (!k.startsWith(":")) checkExtraHeader(k, v);
  return out;
}

function flatten(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

/**
 * One mTLS HTTP/2 connection to an HBONE peer: open tunnels with `open()`. Emits `goaway` when the
 * peer starts draining and `close` when the session is gone.
 */
export class HboneConnection extends EventEmitter {
  readonly session: http2.ClientHttp2Session;
  readonly socket: tls.TLSSocket;
  /** The SPIFFE ID the server proved. */
  readonly peerIdentity: string;
  readonly localIdentity: string;
  activeStreams = 0;
  /** Set once GOAWAY arrived or the session failed: no new streams. */
  draining = false;
  closed = false;
  /** Why the connection ended, when it ended with an error. */
  error: HboneError | undefined;
  readonly #maxStreams: number;
  readonly #hooks: HboneHooks | undefined;
  readonly #started = Date.now();
  #stopKeepalive: (() => void) | undefined;
  /** How the connection began to end (the first signal wins), reported once it has closed. */
  #end: Omit<ConnectionEnd, keyof TunnelInfo | "role" | "durationMs"> | undefined;

  constructor(
    session: http2.ClientHttp2Session,
    socket: tls.TLSSocket,
    peerIdentity: string,
    localIdentity: string,
    opts: {
      maxStreams: number;
      pingIntervalMs: number;
      pingTimeoutMs: number;
      hooks?: HboneHooks | undefined;
    },
  ) {
    super();
    this.session = session;
    this.socket = socket;
    this.peerIdentity = peerIdentity;
    this.localIdentity = localIdentity;
    this.#maxStreams = opts.maxStreams;
    this.#hooks = opts.hooks;
    session.on("goaway", (code: number) => {
      this.draining = true;
      this.#mark("goaway", { goawayCode: code });
      this.emit("goaway");
    });
    session.on("error", (err: Error) => {
      this.error = toHboneError(err, "HBONE connection");
      this.#mark("error", { error: this.error });
    });
    session.on("close", () => {
      this.draining = true;
      this.closed = true;
      this.#stopPing();
      this.#reportEnd();
      this.emit("close");
    });
    if (opts.pingIntervalMs > 0) this.#startPing(opts.pingIntervalMs, opts.pingTimeoutMs);
  }

  /** The stream cap: min(our cap, the peer's SETTINGS_MAX_CONCURRENT_STREAMS). */
  get maxStreams(): number {
    const peer = this.session.remoteSettings?.maxConcurrentStreams;
    return typeof peer === "number" && peer > 0
      ? Math.min(this.#maxStreams, peer)
      : this.#maxStreams;
  }

  /** True when another stream may be opened now. */
  get available(): boolean {
    return (
      !this.draining &&
      !this.closed &&
      !this.session.destroyed &&
      this.activeStreams < this.maxStreams
    );
  }

  #startPing(interval: number, timeout: number): void {
    this.#stopKeepalive = startKeepalive(
      this.session,
      interval,
      timeout,
      (e) => this.#fail(e),
      () => this.socket.bytesRead,
    );
  }

  #mark(
    reason: ConnectionEndReason,
    extra: { goawayCode?: number; error?: HboneError | undefined } = {},
  ): void {
    if (this.#end) return;
    this.#end = {
      reason,
      streams: this.activeStreams,
      ...(extra.goawayCode !== undefined ? { goawayCode: extra.goawayCode } : {}),
      ...(extra.error !== undefined ? { error: extra.error } : {}),
    };
  }

  #reportEnd(): void {
    this.#mark("reset");
    const end = this.#end;
    const hook = this.#hooks?.onConnectionEnd;
    if (!end || !hook) return;
    const e: ConnectionEnd = {
      role: "client",
      ...end,
      durationMs: Date.now() - this.#started,
      peerIdentity: this.peerIdentity,
      localIdentity: this.localIdentity,
      localAddress: this.socket.localAddress ?? "",
      localPort: this.socket.localPort ?? 0,
      remoteAddress: this.socket.remoteAddress ?? "",
      remotePort: this.socket.remotePort ?? 0,
    };
    try {
      hook(e);
    } catch {
      // hooks never break the data path
    }
  }

  #stopPing(): void {
    this.#stopKeepalive?.();
    this.#stopKeepalive = undefined;
  }

  #fail(error: HboneError): void {
    this.#mark(error.code === "ERR_HBONE_PING_TIMEOUT" ? "keepalive-timeout" : "error", { error });
    this.error = error;
    this.draining = true;
    this.#stopPing();
    this.emit("dead", error);
    this.session.destroy(error);
  }

  /** Opens a tunnel; resolves after `:status 200`, rejects with ERR_HBONE_STATUS (carrying `status`) otherwise. */
  open(request: TunnelRequest): Promise<HboneStream> {
    let headers: Record<string, string>;
    try {
      headers = buildConnectHeaders(request);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed || this.session.destroyed) {
      return Promise.reject(
        this.error ??
          new HboneError("ERR_HBONE_CLOSED", "the HBONE connection is closed; open a new one"),
      );
    }
    if (this.draining) {
      return Promise.reject(
        new HboneError(
          "ERR_HBONE_CLOSED",
          "the HBONE connection is draining (GOAWAY); open a new one",
        ),
      );
    }
    return new Promise<HboneStream>((resolve, reject) => {
      let req: http2.ClientHttp2Stream;
      try {
        req = this.session.request(headers, { endStream: false });
      } catch (e) {
        reject(toHboneError(e, `CONNECT ${request.authority}`));
        return;
      }
      this.activeStreams++;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.activeStreams--;
        this.emit("streamClosed");
      };
      req.once("close", release);
      let settled = false;
      const timeoutMs = request.timeoutMs ?? HBONE_DEFAULTS.handshakeTimeoutMs;
      const timer = setTimeout(() => {
        fail(
          new HboneError(
            "ERR_HBONE_TIMEOUT",
            `CONNECT ${request.authority}: no response within ${timeoutMs} ms`,
          ),
        );
        req.close(RST_CANCEL);
      }, timeoutMs);
      const onAbort = (): void => {
        fail(
          new HboneError("ERR_HBONE_CLOSED", `CONNECT ${request.authority}: aborted`, {
            cause: request.signal?.reason,
          }),
        );
        req.close(RST_CANCEL);
      };
      request.signal?.addEventListener("abort", onAbort, { once: true });
      const cleanup = (): void => {
        settled = true;
        clearTimeout(timer);
        request.signal?.removeEventListener("abort", onAbort);
      };
      const fail = (e: HboneError): void => {
        if (settled) return;
        cleanup();
        reject(e);
      };
      if (request.signal?.aborted) onAbort();
      req.once("error", (err) => fail(toHboneError(err, `CONNECT ${request.authority}`)));
      req.once("close", () => {
        // every tunnel's stream closes in the end: build the error (a stack trace) only when it
        // closed before the response
        if (settled) return;
        fail(
          this.error ??
            new HboneError(
              "ERR_HBONE_STREAM_RESET",
              `CONNECT ${request.authority}: the stream closed before a response`,
              { rstCode: req.rstCode },
            ),
        );
      });
      req.once("response", (resHeaders) => {
        if (settled) return;
        const status = Number(resHeaders[":status"]);
        if (status !== 200) {
          cleanup();
          req.close(RST_CANCEL);
          reject(
            new HboneError(
              "ERR_HBONE_STATUS",
              `CONNECT ${request.authority} was answered with status ${status}`,
              { status },
            ),
          );
          return;
        }
        cleanup();
        const info: TunnelInfo = {
          role: "client",
          authority: request.authority,
          peerIdentity: this.peerIdentity,
          localIdentity: this.localIdentity,
          localAddress: this.socket.localAddress ?? "",
          localPort: this.socket.localPort ?? 0,
          remoteAddress: this.socket.remoteAddress ?? "",
          remotePort: this.socket.remotePort ?? 0,
          headers,
        };
        const stream = new HboneStream(req, info, flatten(resHeaders), this.#hooks);
        if (request.signal) {
          const s = request.signal;
          const kill = (): void => {
            stream.destroy();
          };
          s.addEventListener("abort", kill, { once: true });
          stream.once("close", () => s.removeEventListener("abort", kill));
        }
        resolve(stream);
      });
    });
  }

  /** Sends GOAWAY and closes once open tunnels finish (`reason` is what `onConnectionEnd` reports). */
  close(reason: ConnectionEndReason = "closed"): Promise<void> {
    this.#mark(reason);
    this.draining = true;
    this.#stopPing();
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.session.close(() => resolve());
    });
  }

  /** Tears the connection down now; open tunnels fail. */
  destroy(error?: HboneError): void {
    this.#mark(error ? "error" : "destroyed", { error });
    this.draining = true;
    this.#stopPing();
    this.session.destroy(error);
  }
}

/** Dials an HBONE peer: TCP (or the given stream), mTLS 1.3 with SPIFFE checks, HTTP/2 with ztunnel's settings. */
export async function dialHbone(opts: DialOptions): Promise<HboneConnection> {
  const localIdentity = identityOfCredentials(opts.credentials);
  const tlsOpts = opts.tlsOptions ?? clientTlsOptions(opts.credentials, opts.expectedIdentities);
  formatAuthority(opts.address);
  const timeoutMs = opts.handshakeTimeoutMs ?? HBONE_DEFAULTS.handshakeTimeoutMs;
  const where = `HBONE dial ${formatSocketAddress(opts.address.host, opts.address.port)}`;
  const abort = new AbortController();
  let raw: Duplex | undefined;
  let socket: tls.TLSSocket | undefined;
  let session: http2.ClientHttp2Session | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<HboneConnection>((resolve, reject) => {
      let done = false;
      const fail = (err: unknown): void => {
        if (done) return;
        done = true;
        abort.abort();
        reject(toHboneError(err, where));
      };
      timer = setTimeout(
        () =>
          fail(
            new HboneError(
              "ERR_HBONE_TIMEOUT",
              `${where}: no TLS/HTTP2 handshake within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      const overTls = (r: Duplex): void => {
        raw = r;
        if (done) {
          r.destroy();
          return;
        }
        r.once("error", fail);
        handshake(r);
      };
      if (opts.socket) overTls(opts.socket);
      else if (opts.connect) {
        const factory = opts.connect;
        const target: HboneSocketTarget = {
          host: opts.address.host,
          port: opts.address.port,
          ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
          signal: abort.signal,
        };
        Promise.resolve()
          .then(() => factory(target))
          .then(
            (r) => {
              if (r instanceof net.Socket) r.setNoDelay(true);
              overTls(r);
            },
            (e: unknown) =>
              fail(
                e instanceof HboneError
                  ? e
                  : new HboneError(
                      "ERR_HBONE_CONNECT_FAILED",
                      `${where}: the socket factory (DialOptions.connect) failed: ${(e as Error)?.message ?? String(e)}`,
                      { cause: e },
                    ),
              ),
          );
      } else
        overTls(
          net.connect({
            host: opts.address.host,
            port: opts.address.port,
            ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
            noDelay: true,
          }),
        );
      function handshake(r: Duplex): void {
        const s = tls.connect({ ...tlsOpts, socket: r });
        socket = s;
        s.once("error", fail);
        const closedEarly = (): void =>
          fail(
            new HboneError(
              "ERR_HBONE_SESSION",
              `${where}: the peer closed the connection during the handshake; it may have rejected our certificate`,
            ),
          );
        s.once("close", closedEarly);
        s.once("secureConnect", () => {
          if (s.alpnProtocol !== "h2") {
            fail(new HboneError("ERR_HBONE_TLS", `${where}: the peer did not negotiate ALPN h2`));
            return;
          }
          // the server's one SPIFFE ID (a valid X509-SVID leaf, checked by @ambientkit/identity)
          const peer = peerIdentity(s) ?? "";
          const sess = http2.connect(
            `https://${formatSocketAddress(opts.address.host, opts.address.port)}`,
            {
              createConnection: () => s,
              settings: h2Settings(
                HBONE_DEFAULTS.clientMaxHeaderListSize,
                undefined,
                opts.streamWindowSize,
              ),
              maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
              peerMaxConcurrentStreams:
                opts.maxStreams ?? HBONE_DEFAULTS.poolMaxStreamsPerConnection,
            },
          );
          session = sess;
          sess.once("error", fail);
          const sessionClosedEarly = (): void =>
            fail(
              new HboneError(
                "ERR_HBONE_SESSION",
                `${where}: the HTTP/2 session closed during setup`,
              ),
            );
          sess.once("close", sessionClosedEarly);
          sess.once("connect", () => {
            try {
              sess.setLocalWindowSize(
                opts.connectionWindowSize ?? HBONE_DEFAULTS.connectionWindowSize,
              );
            } catch (e) {
              fail(e);
            }
          });
          sess.once("remoteSettings", () => {
            if (done) return;
            done = true;
            // only our own setup listeners: node:http2 watches the socket's close too, and
            // without it a peer's clean FIN would go unnoticed until the PING timeout
            sess.removeListener("error", fail);
            sess.removeListener("close", sessionClosedEarly);
            s.removeListener("close", closedEarly);
            r.removeListener("error", fail);
            s.removeListener("error", fail);
            s.on("error", () => {
              // surfaced through the session
            });
            resolve(
              new HboneConnection(sess, s, peer, localIdentity, {
                maxStreams: opts.maxStreams ?? HBONE_DEFAULTS.poolMaxStreamsPerConnection,
                pingIntervalMs: opts.pingIntervalMs ?? HBONE_DEFAULTS.pingIntervalMs,
                pingTimeoutMs: opts.pingTimeoutMs ?? HBONE_DEFAULTS.pingTimeoutMs,
                hooks: opts.hooks,
              }),
            );
          });
        });
      }
    });
  } catch (e) {
    session?.destroy();
    socket?.destroy();
    raw?.destroy();
    throw e;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * Opens one unpooled tunnel: dial, CONNECT, and close the connection when the tunnel closes.
 * For many tunnels use `HbonePool`.
 */
export async function openTunnel(opts: DialOptions & TunnelRequest): Promise<HboneStream> {
  buildConnectHeaders(opts);
  const conn = await dialHbone(opts);
  try {
    const stream = await conn.open(opts);
    stream.once("close", () => {
      void conn.close();
    });
    return stream;
  } catch (e) {
    conn.destroy();
    throw e;
  }
}
