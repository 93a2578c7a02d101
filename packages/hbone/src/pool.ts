import type { ConnectionOptions } from "node:tls";
import { formatSocketAddress } from "./authority.js";
import {
  type DialOptions,
  dialHbone,
  type HboneConnection,
  type HboneSocketFactory,
  type TunnelRequest,
} from "./client.js";
import { HboneError } from "./errors.js";
import { HBONE_DEFAULTS } from "./settings.js";
import type { HboneHooks, HboneStream } from "./stream.js";
import { type HboneCredentials, identityOfCredentials } from "./tls.js";

/** ztunnel's `WorkloadKey`: connections are shared only between requests with equal keys. */
export interface PoolKey {
  sourceIdentity: string;
  expectedIdentities: readonly string[];
  destination: { host: string; port: number };
  sourceIp: string | undefined;
}

export interface HbonePoolOptions {
  /** Streams per connection before another connection is opened (default 100; min with the peer's SETTINGS). */
  maxStreamsPerConnection?: number;
  /** Close a connection with no streams after this long (default 5 min). */
  idleTimeoutMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  hooks?: HboneHooks;
  /** Per-stream and connection receive windows of dialled connections (default 4 MiB / 16 MiB). */
  streamWindowSize?: number;
  connectionWindowSize?: number;
  /**
   * Opens every dialled connection's TCP socket instead of `net.connect` (`DialOptions.connect`):
   * an in-pod ztunnel gives each pod its own pool whose sockets start inside that pod's network
   * namespace with ztunnel's packet mark.
   */
  connect?: HboneSocketFactory;
  /** Replaces `dialHbone` (tests, custom transports). */
  dial?: (opts: DialOptions) => Promise<HboneConnection>;
}

/** One pooled CONNECT: where to go, as whom, and what to ask for. */
export interface PoolRequest extends TunnelRequest {
  /** Next hop (`podIP:15008`, `waypointIP:15008`, gateway address). */
  address: { host: string; port: number };
  /** The source workload's SVID and trust bundle. */
  credentials: HboneCredentials;
  expectedIdentities: readonly string[];
  /** Source IP to bind; part of the key. */
  sourceIp?: string;
  /** TLS options replacing the ones built from `credentials` (see `DialOptions.tlsOptions`). */
  tlsOptions?: ConnectionOptions;
}

interface Entry {
  conn: HboneConnection;
  idle: NodeJS.Timeout | undefined;
}

/**
 * A connection pool like ztunnel's `WorkloadHBONEPool`: per key, 1..n mTLS HTTP/2 connections;
 * up to `maxStreamsPerConnection` tunnels each, then a new connection; one dial at a time per key
 * (others wait for it); GOAWAY'd or dead connections leave the pool while their tunnels finish;
 * idle connections are closed after `idleTimeoutMs`.
 */
export class HbonePool {
  readonly #opts: HbonePoolOptions;
  readonly #conns = new Map<string, Entry[]>();
  readonly #dialing = new Map<string, Promise<HboneConnection>>();
  readonly #ids = new WeakMap<HboneCredentials, string>();
  #closed = false;
  /** Number of connections dialled over the pool's life (for tests and metrics). */
  dials = 0;

  constructor(opts: HbonePoolOptions = {}) {
    this.#opts = opts;
  }

  /** The key a request maps to. */
  keyOf(req: PoolRequest): PoolKey {
    let id = this.#ids.get(req.credentials);
    if (id === undefined) {
      id = identityOfCredentials(req.credentials);
      this.#ids.set(req.credentials, id);
    }
    return {
      sourceIdentity: id,
      expectedIdentities: [...req.expectedIdentities],
      destination: { host: req.address.host, port: req.address.port },
      sourceIp: req.sourceIp,
    };
  }

  /** Open connections, per key (for debugging and tests). */
  get connectionCount(): number {
    let n = 0;
    for (const list of this.#conns.values()) n += list.length;
    return n;
  }

  /** Opens a tunnel on a pooled connection (dialling one if needed). */
  async open(req: PoolRequest): Promise<HboneStream> {
    const key = this.keyOf(req);
    const k = JSON.stringify([
      key.sourceIdentity,
      key.expectedIdentities,
      formatSocketAddress(key.destination.host, key.destination.port),
      key.sourceIp ?? "",
    ]);
    for (let attempt = 0; attempt < 1000; attempt++) {
      if (this.#closed) throw new HboneError("ERR_HBONE_CLOSED", "the HBONE pool is closed");
      const entry = this.#conns.get(k)?.find((e) => e.conn.available);
      if (entry) {
        if (entry.idle) clearTimeout(entry.idle);
        entry.idle = undefined;
        try {
          return await entry.conn.open(req);
        } catch (e) {
          if (e instanceof HboneError && e.code === "ERR_HBONE_CLOSED" && !req.signal?.aborted)
            continue;
          throw e;
        }
      }
      const pending = this.#dialing.get(k);
      if (pending) {
        const failed = await pending.then(
          () => undefined,
          (e: unknown) => e,
        );
        if (failed) throw failed;
        continue;
      }
      const dial = this.#dial(k, req);
      this.#dialing.set(k, dial);
      try {
        await dial;
      } finally {
        this.#dialing.delete(k);
      }
    }
    throw new HboneError("ERR_HBONE_SESSION", "could not obtain a pooled HBONE connection");
  }

  async #dial(k: string, req: PoolRequest): Promise<HboneConnection> {
    const o = this.#opts;
    const dial = o.dial ?? dialHbone;
    this.dials++;
    const conn = await dial({
      address: req.address,
      credentials: req.credentials,
      expectedIdentities: req.expectedIdentities,
      ...(req.sourceIp !== undefined ? { localAddress: req.sourceIp } : {}),
      ...(req.tlsOptions !== undefined ? { tlsOptions: req.tlsOptions } : {}),
      ...(o.connect !== undefined ? { connect: o.connect } : {}),
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? HBONE_DEFAULTS.handshakeTimeoutMs,
      maxStreams: o.maxStreamsPerConnection ?? HBONE_DEFAULTS.poolMaxStreamsPerConnection,
      pingIntervalMs: o.pingIntervalMs ?? HBONE_DEFAULTS.pingIntervalMs,
      pingTimeoutMs: o.pingTimeoutMs ?? HBONE_DEFAULTS.pingTimeoutMs,
      ...(o.hooks ? { hooks: o.hooks } : {}),
      ...(o.streamWindowSize !== undefined ? { streamWindowSize: o.streamWindowSize } : {}),
      ...(o.connectionWindowSize !== undefined
        ? { connectionWindowSize: o.connectionWindowSize }
        : {}),
    });
    if (this.#closed) {
      conn.destroy();
      throw new HboneError("ERR_HBONE_CLOSED", "the HBONE pool is closed");
    }
    const entry: Entry = { conn, idle: undefined };
    const list = this.#conns.get(k) ?? [];
    list.push(entry);
    this.#conns.set(k, list);
    const remove = (): void => {
      if (entry.idle) clearTimeout(entry.idle);
      entry.idle = undefined;
      const l = this.#conns.get(k);
      if (!l) return;
      const i = l.indexOf(entry);
      if (i >= 0) l.splice(i, 1);
      if (l.length === 0) this.#conns.delete(k);
    };
    conn.once("goaway", remove);
    conn.once("dead", remove);
    conn.once("close", remove);
    const idleMs = o.idleTimeoutMs ?? HBONE_DEFAULTS.poolUnusedReleaseTimeoutMs;
    const armIdle = (): void => {
      if (entry.idle || conn.activeStreams > 0 || idleMs <= 0) return;
      entry.idle = setTimeout(() => {
        entry.idle = undefined;
        if (conn.activeStreams === 0) {
          remove();
          void conn.close("idle");
        }
      }, idleMs);
      entry.idle.unref();
    };
    conn.on("streamClosed", armIdle);
    return conn;
  }

  /** Closes every connection (GOAWAY; open tunnels finish) and refuses new requests. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#conns.values()].flat();
    this.#conns.clear();
    await Promise.all(
      all.map((e) => {
        if (e.idle) clearTimeout(e.idle);
        return e.conn.close();
      }),
    );
  }

  /** Tears every connection down now. */
  destroy(): void {
    this.#closed = true;
    for (const e of [...this.#conns.values()].flat()) {
      if (e.idle) clearTimeout(e.idle);
      e.conn.destroy();
    }
    this.#conns.clear();
  }
}
