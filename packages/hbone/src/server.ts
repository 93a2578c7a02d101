import { EventEmitter } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { type HboneServerTlsConfig, verifyHboneClient } from "@ambientkit/identity/node";
import { canonicalIpText } from "@ambientkit/xds-types/ip";
import { type Authority, parseAuthority } from "./authority.js";
import { HboneError } from "./errors.js";
import {
  type Forwarded,
  HEADER_BAGGAGE,
  HEADER_FORWARDED,
  HEADER_TRACEPARENT,
  HEADER_X_FORWARDED_NETWORK,
  parseForwarded,
} from "./headers.js";
import { startKeepalive } from "./keepalive.js";
import { RST_ENHANCE_YOUR_CALM, RST_REFUSED_STREAM, toHboneError } from "./node-error.js";
import { encodeProxyV2 } from "./proxy-protocol.js";
import { ReadAhead, streamUnderTls } from "./read-ahead.js";
import { HBONE_DEFAULTS, h2Settings } from "./settings.js";
import {
  type ConnectionEnd,
  type ConnectionEndReason,
  type HboneHooks,
  HboneStream,
  type TunnelInfo,
} from "./stream.js";
import {
  type HboneCredentials,
  identityOfCredentials,
  serverTlsConfig,
  serverTlsOptionsOf,
} from "./tls.js";

/** What the embedder learns about one CONNECT before deciding. */
export interface HboneServerRequest {
  /** The parsed `:authority`. */
  authority: Authority;
  /** The `:authority` as sent. */
  authorityText: string;
  /** The client's SPIFFE ID (verified: in an accepted trust domain, chains to that trust domain's bundle). */
  peerIdentity: string;
  /** The SPIFFE ID we served on this connection. */
  localIdentity: string;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /**
   * The `baggage` header as received (the source's workload metadata); parse it with
   * @ambientkit/telemetry's `parseBaggage` / `workloadFromBaggage`.
   */
  baggage: string | undefined;
  forwarded: Forwarded;
  /** The `traceparent` header as received; @ambientkit/telemetry's `tryParseTraceparent` reads it. */
  traceparent: string | undefined;
  /** `x-forwarded-network` (set on double HBONE inner CONNECTs). */
  forwardedNetwork: string | undefined;
  /** All request headers (lower-case names). */
  headers: Readonly<Record<string, string>>;
  /**
   * Aborted when the stream closes (the client reset it, or it ended) or the server closes; the
   * reason is then an HboneError `ERR_HBONE_CLOSED`.
   */
  signal: AbortSignal;
}

/** The embedder's answer to a CONNECT. */
export type HboneDecision =
  /** Authorization denied: 401 (or the given status). */
  | { action: "deny"; status?: number; reason?: string }
  /** No route for this authority: 503. */
  | { action: "no-route"; reason?: string }
  /** Any other error status (4xx/5xx). */
  | { action: "reject"; status: number; reason?: string }
  /**
   * Dial this upstream over TCP; 200 is sent only once it connected (else 503). With `proxyProtocol`
   * a PROXY v2 header (TLV 0xD0 = peer identity) precedes the bytes.
   */
  | {
      action: "connect";
      host: string;
      port: number;
      /** Source address to bind for the upstream dial (ztunnel connects as the original client). */
      localAddress?: string;
      timeoutMs?: number;
      /** Called with the tunnel and the upstream socket once bytes flow (to track or close them). */
      onTunnel?: (tunnel: HboneStream, upstream: net.Socket) => void;
      /** Called when the upstream dial failed or timed out (the client got 503). */
      onError?: (error: HboneError) => void;
      proxyProtocol?:
        | boolean
        | {
            source?: { address: string; port: number };
            destination?: { address: string; port: number };
          };
    }
  /** Answer 200 and hand the tunnel to the embedder (waypoints, gateways, in-process handlers). */
  | { action: "accept"; onTunnel: (tunnel: HboneStream) => void };

export type HboneHandler = (request: HboneServerRequest) => HboneDecision | Promise<HboneDecision>;

/** Credentials to serve: one identity everywhere, or the identity of the workload owning a local address. */
export type ServerCredentials =
  | HboneCredentials
  | ((localAddress: string) => HboneCredentials | undefined);

export interface HboneServerOptions {
  credentials: ServerCredentials;
  /** Decides each CONNECT. Default: dial the authority (a debugging gateway). */
  handler?: HboneHandler;
  /**
   * Accept only clients in this trust domain (default: the trust domain of the served
   * certificate). Exact: an upper-case name is a config error, never lower-cased. A trust domain
   * other than the certificate's needs its bundle in `credentials.trustBundles`.
   */
  trustDomain?: string;
  hooks?: HboneHooks;
  /** SETTINGS_MAX_CONCURRENT_STREAMS per connection (default 200, as ztunnel's server). */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (default 64 KiB). */
  maxHeaderListSize?: number;
  /** TLS handshake deadline (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Upstream TCP connect deadline (default 10 s, then 503). */
  upstreamConnectTimeoutMs?: number;
  /** Close a connection that has had no streams for this long (default 1 h; 0 disables). */
  idleTimeoutMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /**
   * Rapid-reset defence (CVE-2023-44487): a connection whose client cancels more than `maxResets`
   * streams before they were answered within `windowMs` gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.
   */
  rapidReset?: { maxResets: number; windowMs: number };
  /**
   * Replaces the server TLS options built from the credentials (by default `hboneServerTlsOptions()`
   * of `@ambientkit/identity/node`). They must require a client certificate, TLS 1.3 and ALPN h2.
   */
  tlsOptions?: (credentials: HboneCredentials) => tls.TlsOptions;
  /**
   * Replaces the client check after the handshake (by default `verifyHboneClient()` of
   * `@ambientkit/identity/node`: a valid X509-SVID leaf in an accepted trust domain, anchored in
   * that trust domain's bundle): return the client's SPIFFE ID or throw.
   */
  verifyClient?: (socket: tls.TLSSocket) => string;
  /**
   * Keep reading each connection's socket while node:http2 is blocked in a write (default true).
   * Prevents a deadlock between two Node peers pushing bulk data both ways; see ReadAhead. It
   * reads the TCP socket below TLS, so decryption and HTTP/2 stay native; the TLS socket that
   * `verifyClient` sees then runs over a JS stream and carries the TCP socket's addresses.
   */
  readAhead?: boolean;
  /**
   * ztunnel's `validate_destination`: an IP `:authority` must equal the local address the client
   * dialled (the pod IP), else 400. Off by default (waypoints and gateways accept other targets).
   */
  requireLocalAuthority?: boolean;
  /**
   * Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE, default 4 MiB as ztunnel's
   * `HTTP2_STREAM_WINDOW_SIZE`) and connection window (default 16 MiB). They bound what one tunnel
   * (one connection) can make us buffer; a proxy that holds many tunnels may want less.
   */
  streamWindowSize?: number;
  connectionWindowSize?: number;
  /** Cap on simultaneously open HBONE connections (default 10,000). */
  maxConnections?: number;
}

/** `HboneServerRequest.signal`'s reason once the stream has closed. */
const STREAM_CLOSED = new HboneError("ERR_HBONE_CLOSED", "the HBONE stream closed");
const SERVER_CLOSED = new HboneError("ERR_HBONE_CLOSED", "the HBONE server closed");

/** Cap on bytes read ahead of node:http2 per connection (see ReadAhead). */
const READ_AHEAD_LIMIT = 32 * 1024 * 1024;

/** Where the read-ahead sits: below TLS (the default), or above it when node:tls hides the TCP socket. */
export type ReadAheadPlacement = "below-tls" | "above-tls";
let placement: ReadAheadPlacement | undefined;

/**
 * Below TLS needs the TCP socket back from the TLS socket node:tls makes over our ReadAhead (for
 * the connection's addresses); `streamUnderTls` reads a node internal for that, so probe it once
 * and fall back to reading ahead above TLS (slower, same guarantees) if this Node hides it.
 */
function readAheadPlacement(): ReadAheadPlacement {
  if (placement === undefined) {
    const probe = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    try {
      const socket = new tls.TLSSocket(probe, { isServer: true });
      placement = streamUnderTls(socket) === probe ? "below-tls" : "above-tls";
      socket.destroy();
    } catch {
      placement = "above-tls";
    }
    probe.destroy();
  }
  return placement;
}

/** Tests: force a placement (undefined probes again). */
export function setReadAheadPlacement(p: ReadAheadPlacement | undefined): void {
  placement = p;
}

interface TlsEntry {
  server: tls.Server;
  identity: string;
}

interface ConnCtx {
  socket: tls.TLSSocket;
  /** The TCP socket under TLS (the TLS socket itself when TLS sits on it directly). */
  transport: net.Socket;
  peerIdentity: string;
  localIdentity: string;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

function flatten(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

/** The default handler: dial the `:authority` over TCP. */
export const dialAuthority: HboneHandler = (req) => ({
  action: "connect",
  host: req.authority.host,
  port: req.authority.port,
});

/**
 * An HBONE server: terminates mTLS (client cert required, in our trust domain), HTTP/2 CONNECT,
 * and lets the embedder decide each tunnel. Listens itself (`listen`) or takes sockets (`handle`).
 * Emits `clientError` (HboneError) for connections it refused.
 */
export class HboneServer extends EventEmitter {
  readonly #opts: HboneServerOptions;
  readonly #h2: http2.Http2Server;
  readonly #net: net.Server;
  readonly #tlsServers = new WeakMap<HboneCredentials, TlsEntry>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<net.Socket>();
  readonly #handler: HboneHandler;
  /** The signals of the CONNECTs open now, aborted when the server closes. */
  readonly #inflight = new Set<AbortController>();
  #closing = false;
  #pendingCtx: ConnCtx | undefined;
  readonly #ctxBySession = new WeakMap<http2.Http2Session, ConnCtx>();
  /** Records why a session is ending (for `onConnectionEnd`). */
  readonly #markEnd = new WeakMap<http2.Http2Session, (reason: ConnectionEndReason) => void>();

  constructor(opts: HboneServerOptions) {
    super();
    this.#opts = opts;
    this.#handler = opts.handler ?? dialAuthority;
    if (typeof opts.credentials !== "function") this.#tlsFor(opts.credentials);
    this.#h2 = http2.createServer({
      settings: h2Settings(
        opts.maxHeaderListSize ?? HBONE_DEFAULTS.serverMaxHeaderListSize,
        opts.maxConcurrentStreams ?? HBONE_DEFAULTS.serverMaxConcurrentStreams,
        opts.streamWindowSize,
      ),
      maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
      maxHeaderListPairs: 128,
    });
    this.#h2.on("session", (s) => this.#onSession(s));
    this.#h2.on("stream", (stream, headers) => {
      void this.#onStream(stream, headers);
    });
    this.#net = net.createServer({ allowHalfOpen: false, noDelay: true }, (socket) =>
      this.handle(socket),
    );
    this.#net.maxConnections = opts.maxConnections ?? 10_000;
  }

  #tlsFor(creds: HboneCredentials): TlsEntry {
    const cached = this.#tlsServers.get(creds);
    if (cached) return cached;
    const identity = identityOfCredentials(creds);
    const accepted = this.#opts.trustDomain !== undefined ? [this.#opts.trustDomain] : undefined;
    // identity's config (bundles by trust domain), built only when a default needs it
    let config: HboneServerTlsConfig | undefined;
    if (!this.#opts.tlsOptions || !this.#opts.verifyClient) {
      config = serverTlsConfig(creds, accepted);
    }
    const verify: (socket: tls.TLSSocket) => string =
      this.#opts.verifyClient ??
      ((socket) => verifyHboneClient(socket, config as HboneServerTlsConfig).identity);
    const server = tls.createServer({
      ...(this.#opts.tlsOptions
        ? this.#opts.tlsOptions(creds)
        : serverTlsOptionsOf(config as HboneServerTlsConfig)),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
      handshakeTimeout: this.#opts.handshakeTimeoutMs ?? HBONE_DEFAULTS.handshakeTimeoutMs,
      allowHalfOpen: false,
    });
    server.on("tlsClientError", (err, socket) => {
      socket.destroy();
      // Node drops a client whose certificate failed verification without an error of its own
      const why = socket.authorizationError;
      this.emit(
        "clientError",
        why
          ? new HboneError(
              "ERR_HBONE_TLS",
              `HBONE TLS handshake: client certificate rejected (${String(why)}); it must chain to the mesh trust bundle`,
              { cause: err },
            )
          : toHboneError(err, "HBONE TLS handshake"),
      );
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      // below-TLS read-ahead: TLS runs over our ReadAhead, so the addresses are the TCP socket's
      const under = streamUnderTls(socket);
      const transport = under instanceof ReadAhead ? under.socket : socket;
      if (transport !== socket) adoptAddresses(socket, transport);
      if (socket.alpnProtocol !== "h2") {
        socket.destroy();
        this.emit(
          "clientError",
          new HboneError("ERR_HBONE_TLS", "a client connected without ALPN h2"),
        );
        return;
      }
      let peerIdentity: string;
      try {
        peerIdentity = verify(socket);
      } catch (e) {
        socket.destroy();
        this.emit(
          "clientError",
          e instanceof HboneError
            ? e
            : new HboneError("ERR_HBONE_PEER_IDENTITY", `client refused: ${(e as Error).message}`, {
                cause: e,
              }),
        );
        return;
      }
      const ctx: ConnCtx = {
        socket,
        transport,
        peerIdentity,
        localIdentity: identity,
        localAddress: canonicalIpText(transport.localAddress),
        localPort: transport.localPort ?? 0,
        remoteAddress: canonicalIpText(transport.remoteAddress),
        remotePort: transport.remotePort ?? 0,
      };
      // node:http2 creates the session synchronously inside 'connection'; #onSession picks ctx up
      this.#pendingCtx = ctx;
      try {
        this.#h2.emit(
          "connection",
          transport !== socket || this.#opts.readAhead === false
            ? socket
            : new ReadAhead(socket, READ_AHEAD_LIMIT, { join: true }),
        );
      } finally {
        this.#pendingCtx = undefined;
      }
    });
    const entry = { server, identity };
    this.#tlsServers.set(creds, entry);
    return entry;
  }

  /** Listens on `host:port` (port 0 picks one). */
  listen(port: number, host = "127.0.0.1"): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#net.once("error", reject);
      this.#net.listen(port, host, () => {
        this.#net.removeListener("error", reject);
        resolve(this.#net.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo {
    return this.#net.address() as net.AddressInfo;
  }

  /** Number of open HBONE (HTTP/2) connections. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Serves an accepted TCP socket (the certificate is chosen by its local address). */
  handle(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    socket.on("error", () => {});
    const local = canonicalIpText(socket.localAddress);
    let creds: HboneCredentials | undefined;
    try {
      creds =
        typeof this.#opts.credentials === "function"
          ? this.#opts.credentials(local)
          : this.#opts.credentials;
    } catch {
      creds = undefined;
    }
    if (!creds) {
      socket.destroy();
      this.emit(
        "clientError",
        new HboneError("ERR_HBONE_CONFIG", `no workload identity serves local address ${local}`),
      );
      return;
    }
    let entry: TlsEntry;
    try {
      entry = this.#tlsFor(creds);
    } catch (e) {
      socket.destroy();
      this.emit("clientError", e);
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    entry.server.emit(
      "connection",
      this.#opts.readAhead !== false && readAheadPlacement() === "below-tls"
        ? new ReadAhead(socket, READ_AHEAD_LIMIT)
        : socket,
    );
  }

  #onSession(session: http2.ServerHttp2Session): void {
    const ctx = this.#pendingCtx;
    if (!ctx) {
      session.destroy();
      return;
    }
    this.#ctxBySession.set(session, ctx);
    this.#sessions.add(session);
    this.emit("session", session);
    session.on("error", () => {});
    try {
      session.setLocalWindowSize(
        this.#opts.connectionWindowSize ?? HBONE_DEFAULTS.connectionWindowSize,
      );
    } catch {
      // not fatal: the 64 KiB default window still works, just slower
    }
    const opts = this.#opts;
    let active = 0;
    const started = Date.now();
    let end: Pick<ConnectionEnd, "reason" | "streams" | "goawayCode" | "error"> | undefined;
    // the first signal of an end wins; it is reported once the session has closed
    const mark = (
      reason: ConnectionEndReason,
      extra: { goawayCode?: number; error?: HboneError } = {},
    ): void => {
      end ??= { reason, streams: active, ...extra };
    };
    this.#markEnd.set(session, mark);
    session.on("goaway", (code: number) => mark("goaway", { goawayCode: code }));
    session.on("error", (e: Error) =>
      mark("error", { error: toHboneError(e, "HBONE connection") }),
    );
    const stopPing = startKeepalive(
      session,
      opts.pingIntervalMs ?? HBONE_DEFAULTS.pingIntervalMs,
      opts.pingTimeoutMs ?? HBONE_DEFAULTS.pingTimeoutMs,
      (error) => {
        mark("keepalive-timeout", { error });
        session.destroy();
      },
      () => ctx.transport.bytesRead,
    );
    let idleTimer: NodeJS.Timeout | undefined;
    const idleMs = opts.idleTimeoutMs ?? 3_600_000;
    const armIdle = (): void => {
      if (idleMs <= 0) return;
      idleTimer = setTimeout(() => {
        mark("idle");
        session.close();
      }, idleMs);
      idleTimer.unref();
    };
    armIdle();
    const rr = opts.rapidReset ?? { maxResets: 100, windowMs: 1000 };
    let resets: number[] = [];
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      active++;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = undefined;
      stream.once("close", () => {
        active--;
        if (!stream.headersSent) {
          // cancelled by the client before we answered: the rapid-reset pattern
          const now = Date.now();
          resets.push(now);
          if (resets.length > rr.maxResets) {
            resets = resets.filter((t) => now - t < rr.windowMs);
            if (resets.length > rr.maxResets && !session.destroyed) {
              this.emit(
                "clientError",
                new HboneError(
                  "ERR_HBONE_SESSION",
                  `rapid reset: more than ${rr.maxResets} streams cancelled within ${rr.windowMs} ms; connection closed`,
                ),
              );
              mark("rapid-reset", { goawayCode: RST_ENHANCE_YOUR_CALM });
              session.goaway(RST_ENHANCE_YOUR_CALM);
              session.destroy();
              return;
            }
          }
        }
        if (active === 0 && !session.destroyed) armIdle();
      });
    });
    session.once("close", () => {
      stopPing();
      if (idleTimer) clearTimeout(idleTimer);
      mark("reset");
      const hook = opts.hooks?.onConnectionEnd;
      if (hook && end) {
        try {
          hook({
            role: "server",
            ...end,
            durationMs: Date.now() - started,
            peerIdentity: ctx.peerIdentity,
            localIdentity: ctx.localIdentity,
            localAddress: ctx.localAddress,
            localPort: ctx.localPort,
            remoteAddress: ctx.remoteAddress,
            remotePort: ctx.remotePort,
          });
        } catch {
          // hooks never break the server
        }
      }
      this.#sessions.delete(session);
      if (this.#closing && this.#sessions.size === 0) this.emit("drained");
    });
  }

  async #onStream(
    stream: http2.ServerHttp2Stream,
    rawHeaders: http2.IncomingHttpHeaders,
  ): Promise<void> {
    stream.on("error", () => {});
    const ctx = stream.session ? this.#ctxBySession.get(stream.session) : undefined;
    const respondEnd = (status: number): void => {
      if (stream.closed || stream.destroyed || stream.headersSent) return;
      try {
        stream.respond({ ":status": status }, { endStream: true });
      } catch {
        stream.close(RST_REFUSED_STREAM);
      }
    };
    if (!ctx) {
      respondEnd(503);
      return;
    }
    const headers = flatten(rawHeaders);
    if (headers[":method"] !== "CONNECT") {
      respondEnd(400);
      return;
    }
    let authority: Authority;
    try {
      authority = parseAuthority(headers[":authority"] ?? "");
    } catch {
      respondEnd(400);
      return;
    }
    if (
      this.#opts.requireLocalAuthority &&
      authority.kind === "ip" &&
      authority.host !== ctx.localAddress
    ) {
      respondEnd(400);
      return;
    }
    // a set rather than a listener on a server-wide signal: EventTarget listeners cost more per
    // stream than a set entry
    const abort = new AbortController();
    this.#inflight.add(abort);
    stream.once("close", () => {
      this.#inflight.delete(abort);
      // a shared reason: abort() without one builds a DOMException (a stack trace) per stream
      abort.abort(STREAM_CLOSED);
    });
    const request: HboneServerRequest = {
      authority,
      authorityText: headers[":authority"] ?? "",
      peerIdentity: ctx.peerIdentity,
      localIdentity: ctx.localIdentity,
      localAddress: ctx.localAddress,
      localPort: ctx.localPort,
      remoteAddress: ctx.remoteAddress,
      remotePort: ctx.remotePort,
      baggage: headers[HEADER_BAGGAGE],
      forwarded: parseForwarded(headers[HEADER_FORWARDED]),
      traceparent: headers[HEADER_TRACEPARENT],
      forwardedNetwork: headers[HEADER_X_FORWARDED_NETWORK],
      headers,
      signal: abort.signal,
    };
    let decision: HboneDecision;
    try {
      decision = await this.#handler(request);
    } catch (e) {
      this.emit("handlerError", toHboneError(e, `HBONE handler for ${request.authorityText}`));
      respondEnd(503);
      return;
    }
    if (stream.closed || stream.destroyed) return;
    const info: TunnelInfo = {
      role: "server",
      authority: request.authorityText,
      peerIdentity: ctx.peerIdentity,
      localIdentity: ctx.localIdentity,
      localAddress: ctx.localAddress,
      localPort: ctx.localPort,
      remoteAddress: ctx.remoteAddress,
      remotePort: ctx.remotePort,
      headers,
    };
    switch (decision.action) {
      case "deny":
        respondEnd(decision.status ?? 401);
        return;
      case "no-route":
        respondEnd(503);
        return;
      case "reject":
        respondEnd(decision.status >= 400 && decision.status <= 599 ? decision.status : 503);
        return;
      case "accept": {
        stream.respond({ ":status": 200 });
        const tunnel = new HboneStream(stream, info, headers, this.#opts.hooks);
        decision.onTunnel(tunnel);
        return;
      }
      case "connect":
        this.#connectUpstream(stream, info, request, decision);
        return;
    }
  }

  #connectUpstream(
    stream: http2.ServerHttp2Stream,
    info: TunnelInfo,
    request: HboneServerRequest,
    decision: Extract<HboneDecision, { action: "connect" }>,
  ): void {
    const timeoutMs =
      decision.timeoutMs ??
      this.#opts.upstreamConnectTimeoutMs ??
      HBONE_DEFAULTS.upstreamConnectTimeoutMs;
    const upstream = net.connect({
      host: decision.host,
      port: decision.port,
      allowHalfOpen: true,
      noDelay: true,
      ...(decision.localAddress !== undefined ? { localAddress: decision.localAddress } : {}),
    });
    let connected = false;
    let failed = false;
    const timer = setTimeout(() => {
      upstream.destroy();
      fail(
        new HboneError(
          "ERR_HBONE_TIMEOUT",
          `connect ${decision.host}:${decision.port} timed out after ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const fail = (error: HboneError): void => {
      clearTimeout(timer);
      if (failed) return;
      failed = true;
      try {
        decision.onError?.(error);
      } catch {
        // the embedder's callback never breaks the server
      }
      if (!stream.headersSent && !stream.closed) {
        try {
          stream.respond({ ":status": 503 }, { endStream: true });
        } catch {
          stream.close(RST_REFUSED_STREAM);
        }
      }
    };
    const onEarlyClose = (): void => {
      if (!connected) {
        clearTimeout(timer);
        upstream.destroy();
      }
    };
    stream.once("close", onEarlyClose);
    upstream.once("error", (e) => {
      if (!connected) fail(toHboneError(e, `connect ${decision.host}:${decision.port}`));
    });
    upstream.once("connect", () => {
      connected = true;
      clearTimeout(timer);
      if (stream.closed || stream.destroyed) {
        upstream.destroy();
        return;
      }
      if (decision.proxyProtocol) {
        const pp = typeof decision.proxyProtocol === "object" ? decision.proxyProtocol : {};
        const dest =
          pp.destination ??
          (request.authority.kind === "ip"
            ? { address: request.authority.host, port: request.authority.port }
            : {
                address: canonicalIpText(upstream.remoteAddress),
                port: upstream.remotePort ?? decision.port,
              });
        try {
          upstream.write(
            encodeProxyV2({
              source: pp.source ?? { address: request.remoteAddress, port: request.remotePort },
              destination: dest,
              identity: request.peerIdentity,
            }),
          );
        } catch (e) {
          upstream.destroy();
          fail(toHboneError(e, "PROXY v2 header"));
          return;
        }
      }
      stream.removeListener("close", onEarlyClose);
      stream.respond({ ":status": 200 });
      const tunnel = new HboneStream(stream, info, request.headers, this.#opts.hooks);
      pipeHalfClose(tunnel, upstream);
      try {
        decision.onTunnel?.(tunnel, upstream);
      } catch {
        // the embedder's callback never breaks the server
      }
    });
  }

  /** Sends GOAWAY on every open connection (they finish their tunnels); keeps listening. */
  drain(): void {
    for (const s of this.#sessions) {
      if (s.closed || s.destroyed) continue;
      this.#markEnd.get(s)?.("closed");
      s.close();
    }
  }

  /**
   * Stops listening, sends GOAWAY and waits up to `graceMs` (default 30 s) for open tunnels to
   * finish, then destroys what is left. Nothing stays listening or pending.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.#closing = true;
    const listening = new Promise<void>((resolve) => {
      if (!this.#net.listening) resolve();
      else this.#net.close(() => resolve());
    });
    this.drain();
    if (this.#sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        t.unref();
        this.once("drained", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const a of this.#inflight) a.abort(SERVER_CLOSED);
    this.#inflight.clear();
    for (const s of this.#sessions) {
      this.#markEnd.get(s)?.("destroyed");
      s.destroy();
    }
    for (const s of this.#sockets) s.destroy();
    await listening;
  }
}

/** How long a side whose peer has gone may take to flush what was already written to it. */
const LINGER_MS = 5_000;

/**
 * A TLS socket over a JS stream knows no addresses; give it the TCP socket's, so that
 * `verifyClient` and the embedder see the same ones as without read-ahead.
 */
function adoptAddresses(socket: tls.TLSSocket, transport: net.Socket): void {
  for (const key of [
    "remoteAddress",
    "remotePort",
    "remoteFamily",
    "localAddress",
    "localPort",
    "localFamily",
  ] as const) {
    Object.defineProperty(socket, key, { value: transport[key], configurable: true });
  }
}

function whenClosed(s: Duplex, fn: () => void): void {
  if (s.closed) queueMicrotask(fn);
  else s.once("close", fn);
}

/**
 * `gone` has closed: release `other` too, so nothing stays half-open. After an abort (error, reset,
 * destroy) at once; after a clean close `other` gets END_STREAM/FIN and, if it is still sending to
 * a side that can no longer take it, is destroyed once that is flushed (at most LINGER_MS).
 */
function release(gone: Duplex, other: Duplex): void {
  if (other.destroyed) return;
  if (gone.errored || !gone.readableEnded) {
    other.destroy();
    return;
  }
  if (!other.writableEnded) other.end();
  if (other.readableEnded) return;
  if (other.writableFinished) {
    other.destroy();
    return;
  }
  const t = setTimeout(() => other.destroy(), LINGER_MS);
  t.unref();
  other.once("finish", () => other.destroy());
  other.once("close", () => clearTimeout(t));
}

/**
 * Pipes a tunnel and a TCP socket both ways with half-close: END_STREAM → FIN and FIN → END_STREAM;
 * an error on either side tears down both (the tunnel with CANCEL); once either side has closed the
 * other is released as well (see `release`), also when it closed before this was called.
 */
export function pipeHalfClose(tunnel: HboneStream, socket: net.Socket): void {
  socket.on("error", () => tunnel.destroy());
  tunnel.on("error", () => socket.destroy());
  tunnel.pipe(socket);
  socket.pipe(tunnel);
  whenClosed(socket, () => release(socket, tunnel));
  whenClosed(tunnel, () => release(tunnel, socket));
}
