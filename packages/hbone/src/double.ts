import { parseAuthority } from "./authority.js";
import { dialHbone, openTunnel, type TunnelRequest } from "./client.js";
import { HboneError } from "./errors.js";
import type { HbonePool, PoolRequest } from "./pool.js";
import type { HboneDecision, HboneHandler, HboneServerRequest } from "./server.js";
import type { HboneHooks, HboneStream } from "./stream.js";
import type { HboneCredentials } from "./tls.js";

/** Double HBONE: HBONE to a network gateway, and inside that tunnel a second mTLS + HTTP/2 CONNECT. */
export interface DoubleTunnelOptions {
  /** The outer hop: the gateway's address and SANs, our SVID. Pooled when `pool` is given. */
  outer: Omit<PoolRequest, keyof TunnelRequest>;
  /** Pool for the outer connection (ztunnel pools it; the inner one never is). */
  pool?: HbonePool;
  /** The inner hop: expected Service SANs, and our credentials (default: the outer ones). */
  inner: {
    expectedIdentities: readonly string[];
    credentials?: HboneCredentials;
    hooks?: HboneHooks;
  };
  /** `service-hostname:port`, used on both CONNECTs. */
  authority: string;
  /** Our network, sent as `x-forwarded-network` on the inner CONNECT. */
  network: string;
  baggage?: TunnelRequest["baggage"];
  forwarded?: TunnelRequest["forwarded"];
  traceparent?: TunnelRequest["traceparent"];
  timeoutMs?: number;
}

/**
 * Opens a double-HBONE tunnel. The outer CONNECT carries baggage/forwarded/traceparent and no
 * `x-forwarded-network`; the inner CONNECT (same authority) adds `x-forwarded-network`. The inner
 * connection is not pooled and closes with the returned tunnel.
 */
export async function openDoubleTunnel(opts: DoubleTunnelOptions): Promise<HboneStream> {
  const auth = parseAuthority(opts.authority);
  if (auth.kind !== "hostname") {
    throw new HboneError(
      "ERR_HBONE_BAD_AUTHORITY",
      `double HBONE needs a service hostname:port authority, got ${opts.authority}`,
    );
  }
  const common = {
    authority: opts.authority,
    ...(opts.baggage !== undefined ? { baggage: opts.baggage } : {}),
    ...(opts.forwarded !== undefined ? { forwarded: opts.forwarded } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
  const traceparent = opts.traceparent !== undefined ? { traceparent: opts.traceparent } : {};
  const outerReq: PoolRequest = { ...opts.outer, ...common, ...traceparent };
  const outer = opts.pool ? await opts.pool.open(outerReq) : await openTunnel(outerReq);
  try {
    const conn = await dialHbone({
      address: opts.outer.address,
      socket: outer,
      credentials: opts.inner.credentials ?? opts.outer.credentials,
      expectedIdentities: opts.inner.expectedIdentities,
      maxStreams: 1,
      ...(opts.inner.hooks ? { hooks: opts.inner.hooks } : {}),
    });
    conn.once("close", () => {
      if (!outer.destroyed) outer.end();
    });
    try {
      const inner = await conn.open({ ...common, ...traceparent, forwardedNetwork: opts.network });
      inner.once("close", () => {
        void conn.close();
      });
      return inner;
    } catch (e) {
      conn.destroy();
      throw e;
    }
  } catch (e) {
    outer.destroy();
    throw e;
  }
}

/**
 * The gateway side of double HBONE (an East/West gateway): terminates the outer tunnel and forwards
 * the inner bytes untouched to the HBONE port of the destination `resolve` picks for the
 * `hostname:port` authority. IP authorities are refused (400), unknown services get 503.
 */
export function gatewayHandler(
  resolve: (
    request: HboneServerRequest,
  ) =>
    | { host: string; port: number }
    | undefined
    | Promise<{ host: string; port: number } | undefined>,
): HboneHandler {
  return async (request): Promise<HboneDecision> => {
    if (request.authority.kind !== "hostname")
      return { action: "reject", status: 400, reason: "double HBONE needs a hostname authority" };
    const target = await resolve(request);
    if (!target) return { action: "no-route", reason: `no endpoint for ${request.authorityText}` };
    return { action: "connect", host: target.host, port: target.port };
  };
}
