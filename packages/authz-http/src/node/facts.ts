// node:http / node:http2 requests → RequestFacts, with the mTLS peer verified once per connection.
import { Server as HttpServer, IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { PeerCertificate, TLSSocket } from "node:tls";
import type { RequestFacts } from "../request.js";

/**
 * Verifies a peer's certificate chain (leaf first, DER) as an X.509-SVID and returns its SPIFFE
 * URI; throws when it does not verify. With @ambientkit/identity:
 * `async (chain) => (await verifyX509Svid(chain, bundles)).id.toString()`.
 */
export type PeerVerifier = (chain: readonly Uint8Array[]) => Promise<string>;

export interface NodeAdapterOptions {
  /** Set when the app terminates mTLS itself: the peer's identity is then read and verified. */
  readonly peerVerifier?: PeerVerifier;
}

/** The chain the peer sent, leaf first, without a self-signed root. */
export function peerChain(cert: PeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  type Linked = PeerCertificate & { issuerCertificate?: Linked };
  let c = cert as Linked | undefined;
  const seen = new Set<unknown>();
  while (c?.raw && !seen.has(c)) {
    seen.add(c);
    const issuer: Linked | undefined = c.issuerCertificate;
    const selfSigned = issuer === c || (issuer?.raw && Buffer.compare(issuer.raw, c.raw) === 0);
    if (selfSigned && out.length > 0) break;
    out.push(new Uint8Array(c.raw));
    if (selfSigned) break;
    c = issuer;
  }
  return out;
}

const verified = new WeakMap<object, Promise<string | null>>();

/**
 * The verified SPIFFE identity of a TLS socket's peer, or null (plaintext, no certificate, or a
 * certificate that does not verify). Verified once per connection: the peer cannot change on it.
 */
export function tlsPeerIdentity(socket: Socket, verifier: PeerVerifier): Promise<string | null> {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== "function") return Promise.resolve(null);
  let p = verified.get(socket);
  if (!p) {
    const chain = peerChain(tls.getPeerCertificate(true));
    p =
      chain.length === 0
        ? Promise.resolve(null)
        : verifier(chain).then(
            (id) => id,
            () => null,
          );
    verified.set(socket, p);
  }
  return p;
}

/** Whether a flag makes Node's HTTP/1 parser lenient by default (`--insecure-http-parser`). */
function lenientByDefault(): boolean {
  const flag = /(?:^|\s)--insecure-http-parser(?:\s|=|$)/;
  return process.execArgv.some((a) => flag.test(a)) || flag.test(process.env.NODE_OPTIONS ?? "");
}
const LENIENT_BY_DEFAULT = lenientByDefault();

/**
 * Whether `req` was built by Node's own HTTP/1 parser in strict mode, on a node:http or node:https
 * server: then every header name is a lower-case token and no value holds NUL, CR or LF, since the
 * parser (llhttp) refuses any other request with a 400 before a handler sees it (checked byte by
 * byte in http-parser.test.ts), and the decision need not scan the values again. Not so for
 * fastify.inject or any other mock (no such server behind the socket), a server with
 * `insecureHTTPParser` or a process with `--insecure-http-parser` (lenient parsing), nor HTTP/2:
 * those requests are scanned.
 */
export function parsedStrictly(req: IncomingMessage | Http2ServerRequest): boolean {
  if (!(req instanceof IncomingMessage)) return false;
  const server = (req.socket as { server?: unknown } | null | undefined)?.server;
  if (!(server instanceof HttpServer) && !(server instanceof HttpsServer)) return false;
  const insecure = (server as { insecureHTTPParser?: boolean }).insecureHTTPParser;
  return insecure === false || (insecure === undefined && !LENIENT_BY_DEFAULT);
}

/** The addresses of a connection, as policies see them. */
interface Addresses {
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
}

/**
 * The addresses of each HTTP/1 connection, read once: Node's socket getters (remoteAddress,
 * localAddress, localPort) cost more than the rest of a memoised decision, and a connection's
 * addresses do not change while it lasts. Weak: a closed connection's entry goes with it.
 */
const addressesOf = new WeakMap<object, Addresses>();

function readAddresses(socket: Socket | null | undefined): Addresses {
  return {
    sourceIp: socket?.remoteAddress ?? "",
    destinationIp: socket?.localAddress ?? "",
    destinationPort: socket?.localPort ?? 0,
  };
}

/**
 * `socket`'s addresses, kept for the connection when `keep` (an HTTP/1 request's own socket; an
 * HTTP/2 request's socket is a proxy made per stream) and both are known.
 */
function addresses(socket: Socket | null | undefined, keep: boolean): Addresses {
  if (!keep || !socket) return readAddresses(socket);
  let a = addressesOf.get(socket);
  if (a === undefined) {
    a = readAddresses(socket);
    if (a.sourceIp !== "" && a.destinationIp !== "") addressesOf.set(socket, a);
  }
  return a;
}

/** Facts of a node:http or node:http2 (compat) request; a promise only when mTLS is verified. */
export function nodeRequestFacts(
  req: IncomingMessage | Http2ServerRequest,
  options: NodeAdapterOptions = {},
  url?: string,
): RequestFacts | Promise<RequestFacts> {
  const socket = req.socket as Socket;
  const headers = req.headers;
  // Pseudo-headers come with HTTP/2 only (an HTTP/1 header name cannot start with ":"). Each read
  // of a property of `req` is counted: Express gives every request object a property layout of
  // its own, so V8 can cache none of them and each costs a lookup through the prototype chain.
  const h2Method = headers[":method"] as string | undefined;
  const at = addresses(socket, req instanceof IncomingMessage);
  const facts: { -readonly [K in keyof RequestFacts]: RequestFacts[K] } = {
    method: h2Method ?? req.method ?? "",
    authority:
      (h2Method !== undefined ? (headers[":authority"] as string | undefined) : undefined) ??
      headers.host ??
      "",
    // The raw target as received; Express rewrites req.url inside routers, so callers pass originalUrl.
    path:
      url ??
      (h2Method !== undefined ? (headers[":path"] as string | undefined) : undefined) ??
      req.url ??
      "",
    // As received, pseudo-headers included (Envoy's header matchers see them too); not copied.
    headers: headers as Record<string, string | string[]>,
    sourceIp: at.sourceIp,
    destinationIp: at.destinationIp,
    destinationPort: at.destinationPort,
  };
  const sni = (socket as Partial<TLSSocket>)?.servername;
  if (sni) facts.sni = String(sni);
  if (!options.peerVerifier || !socket) return facts;
  return tlsPeerIdentity(socket, options.peerVerifier).then((peerPrincipal) => ({
    ...facts,
    peerPrincipal,
  }));
}
