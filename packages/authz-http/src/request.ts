// The request as an enforcement point sees it; every adapter (web Request, node:http, Express,
// Fastify, gRPC) produces this, so the decision core is written once.

/** One request's attributes, taken as sent (the engine normalises paths as Envoy does). */
export interface RequestFacts {
  readonly method: string;
  /** `:authority` / Host as sent, port included if sent. */
  readonly authority: string;
  /** Raw path with query, before any normalisation. */
  readonly path: string;
  /** Lower-case names; a list is duplicates. Pseudo-headers are not included. */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** Address of the immediate peer (the socket), not a forwarded one. */
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /**
   * SPIFFE URI of the immediate peer, verified by the adapter (chain to the trust bundle, URI SAN);
   * null or absent for plaintext or an unverifiable certificate.
   */
  readonly peerPrincipal?: string | null;
  readonly sni?: string;
}

/** Envoy's RBAC filter answer to a denied HTTP request. */
export const DENY_STATUS = 403;
export const DENY_BODY = "RBAC: access denied";
/** Envoy's jwt_authn answer to a token that does not verify. */
export const INVALID_JWT_STATUS = 401;
export const INVALID_JWT_BODY = "Jwt verification fails";
/** gRPC status PERMISSION_DENIED and UNAUTHENTICATED. */
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_UNAUTHENTICATED = 16;

/** The connection a web `Request` arrived on: runtimes expose it next to the request. */
export interface ConnectionInfo {
  readonly remoteAddress: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly peerPrincipal?: string | null;
}

/**
 * A web `Request` → RequestFacts. The URL of a `Request` has already been parsed by the runtime
 * (dot segments resolved, some escapes normalised), so the raw path is what the URL kept.
 */
export function requestFactsFromWeb(request: Request, conn: ConnectionInfo): RequestFacts {
  const url = new URL(request.url);
  const headers: Record<string, string | string[]> = Object.create(null);
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const port =
    conn.localPort ?? (url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80);
  return {
    method: request.method,
    authority: request.headers.get("host") ?? url.host,
    path: url.pathname + url.search,
    headers,
    sourceIp: conn.remoteAddress,
    destinationIp: conn.localAddress ?? "0.0.0.0",
    destinationPort: port,
    ...(conn.peerPrincipal !== undefined ? { peerPrincipal: conn.peerPrincipal } : {}),
  };
}
