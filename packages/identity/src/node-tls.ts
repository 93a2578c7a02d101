// node:tls settings for HBONE mutual TLS, as ztunnel configures rustls (src/tls/{lib,certificate,
// workload}.rs): TLS 1.3 only, AES-GCM suites, ALPN h2, no SNI, client certificate required, the
// server accepts clients of its trust domain(s), the client accepts only the expected server
// identities, and the bundle is always the one of the peer leaf's trust domain. Node-only.
import { createServer, type Server, type Socket } from "node:net";
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  type PeerCertificate,
  type SecureContextOptions,
  type TLSSocket,
  type Server as TlsServer,
} from "node:tls";
import type { TrustBundle, TrustBundleSet } from "./bundle.js";
import { IdentityError } from "./errors.js";
import { encodePem } from "./pem.js";
import { parseSpiffeId, type SpiffeId, tryParseSpiffeId } from "./spiffe-id.js";
import { checkX509SvidLeaf, parseCertificate } from "./svid.js";

/** ztunnel's TLS 1.3 suites (README: "only TLS 1.3 with … AES_256_GCM_SHA384 and AES_128_GCM_SHA256"). */
export const HBONE_TLS_CIPHERSUITES = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
/** Key-exchange groups OpenSSL can offer that match rustls' defaults (X25519MLKEM768 is not in Node 20's OpenSSL). */
export const HBONE_ECDH_CURVES = "X25519:P-256:P-384";
/** ALPN of HBONE on both sides. */
export const HBONE_ALPN: readonly string[] = ["h2"];

/** A workload's TLS credentials: leaf + intermediates (PEM), and its PKCS#8 key. */
export interface MtlsIdentity {
  /** Leaf first, then intermediates (an issued `certChainPem`). */
  readonly certChainPem: string;
  readonly privateKeyPem: string;
}

/** What both sides share. */
export interface HboneTlsCommon {
  /** Trust bundles by trust domain. The peer leaf's trust domain picks the bundle; never "any root". */
  readonly trustBundles: TrustBundleSet;
}

export interface HboneServerTlsConfig extends HboneTlsCommon {
  readonly identity: MtlsIdentity;
  /**
   * Trust domains whose clients are accepted. Default: the trust domain of the server's own
   * certificate only, as ztunnel's TrustDomainVerifier (which does not honour aliases).
   */
  readonly acceptedTrustDomains?: readonly string[];
}

export interface HboneClientTlsConfig extends HboneTlsCommon {
  readonly identity: MtlsIdentity;
  /**
   * The server must present one of these SPIFFE IDs (ztunnel: the destination workload's
   * identity plus its Service's SANs), or one under an entry ending in `/` (see
   * {@link matchesExpectedIdentity}). An empty list rejects every server.
   */
  readonly expectedIdentities: readonly (string | SpiffeId)[];
}

/** A peer that passed the HBONE checks. */
export interface VerifiedPeer {
  /** The peer's SPIFFE ID (its leaf's one URI SAN). */
  readonly identity: string;
  readonly trustDomain: string;
}

function baseOptions(): {
  minVersion: "TLSv1.3";
  maxVersion: "TLSv1.3";
  ciphers: string;
  ecdhCurve: string;
} {
  return {
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    // node:tls reads TLS 1.3 suites from `ciphers` (names starting TLS_); there is no
    // `ciphersuites` option, and an unknown option is silently ignored.
    ciphers: HBONE_TLS_CIPHERSUITES,
    ecdhCurve: HBONE_ECDH_CURVES,
  };
}

function rootsPem(bundles: Iterable<TrustBundle>): string {
  let out = "";
  for (const b of bundles) {
    for (const c of b.x509Authorities) out += encodePem("CERTIFICATE", new Uint8Array(c.rawData));
  }
  return out;
}

function ownTrustDomain(identity: MtlsIdentity): string {
  const leaf = firstCertDer(identity.certChainPem);
  return checkX509SvidLeaf(parseCertificate(leaf)).trustDomain.name;
}

function firstCertDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) {
    throw new IdentityError("ERR_IDENTITY_TLS_PEER", "certChainPem holds no CERTIFICATE block");
  }
  return new Uint8Array(Buffer.from((m[1] as string).replace(/\s+/g, ""), "base64"));
}

function acceptedDomains(config: HboneServerTlsConfig): string[] {
  return [...(config.acceptedTrustDomains ?? [ownTrustDomain(config.identity)])];
}

/**
 * SecureContext options for an HBONE server: TLS 1.3 only, ztunnel's suites, client certificate
 * required and verified against the roots of the accepted trust domains only. Pass them to
 * `tls.createServer`/`http2.createSecureServer` (with `ALPNProtocols: ['h2']`, added here), then
 * call {@link verifyHboneClient} on every `secureConnection` — or use {@link createHboneTlsServer},
 * which does both.
 */
export function hboneServerTlsOptions(config: HboneServerTlsConfig): SecureContextOptions & {
  requestCert: true;
  rejectUnauthorized: true;
  ALPNProtocols: string[];
} {
  const accepted = acceptedDomains(config);
  const bundles = accepted
    .map((td) => config.trustBundles.get(td))
    .filter((b): b is TrustBundle => b !== undefined);
  if (bundles.length === 0) {
    throw new IdentityError(
      "ERR_IDENTITY_NO_BUNDLE_FOR_TRUST_DOMAIN",
      `no trust bundle for the accepted trust domains (${accepted.join(", ")}); add their roots to trustBundles`,
    );
  }
  return {
    ...baseOptions(),
    cert: config.identity.certChainPem,
    key: config.identity.privateKeyPem,
    ca: rootsPem(bundles),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [...HBONE_ALPN],
  };
}

/**
 * Options for `tls.connect` to an HBONE server: TLS 1.3 only, ALPN h2, the workload's client
 * certificate, the roots of every bundle (OpenSSL builds the chain), and a
 * `checkServerIdentity` that then requires the server's URI SAN ∈ `expectedIdentities` and the
 * chain's anchor to belong to the bundle of the server's trust domain. Connect by IP address:
 * Node sends no SNI for an IP `host`, as ztunnel (`enable_sni = false`). No session is reused.
 */
export function hboneClientTlsOptions(config: HboneClientTlsConfig): ConnectionOptions {
  const expected = config.expectedIdentities.map((id) => {
    if (typeof id !== "string") return id.toString();
    if (!id.endsWith("/")) return parseSpiffeId(id).toString();
    const r = tryParseSpiffeId(id.slice(0, -1));
    if (!r.ok) {
      throw new IdentityError(
        r.error.code,
        `${JSON.stringify(id)} is not a SPIFFE ID prefix (spiffe://<trust-domain>/[path/]): ${r.error.message}`,
        { cause: r.error },
      );
    }
    return id;
  });
  return {
    ...baseOptions(),
    cert: config.identity.certChainPem,
    key: config.identity.privateKeyPem,
    ca: rootsPem(config.trustBundles),
    rejectUnauthorized: true,
    ALPNProtocols: [...HBONE_ALPN],
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      try {
        const peer = checkPeerChain(cert, config.trustBundles, "server");
        if (!matchesExpectedIdentity(peer.identity, expected)) {
          return peerError(
            `identity verification error: peer did not present the expected SAN (${expected.join(", ") || "none"}), got ${peer.identity}`,
          );
        }
        return undefined;
      } catch (error) {
        return error as Error;
      }
    },
  };
}

/**
 * True when `id` (a valid SPIFFE ID) equals an expected SPIFFE ID, or lies under an expected
 * entry that ends in `/`: `spiffe://cluster.local/` = any identity of that trust domain,
 * `spiffe://cluster.local/ns/default/` = any identity under that path (as Envoy's prefix
 * matchers). Both sides are parsed by `parseSpiffeId`: nothing is lower-cased and an invalid
 * `id` matches nothing.
 */
export function matchesExpectedIdentity(id: string, expected: readonly string[]): boolean {
  const r = tryParseSpiffeId(id);
  if (!r.ok) return false;
  return expected.some((e) => {
    if (!e.endsWith("/")) return e === id;
    const p = tryParseSpiffeId(e.slice(0, -1));
    return (
      p.ok &&
      r.id.trustDomain.name === p.id.trustDomain.name &&
      r.id.path.startsWith(`${p.id.path}/`)
    );
  });
}

/**
 * The server-side trust-domain rule (ztunnel's `TrustDomainVerifier`, exact, never lower-cased):
 * `identity` must be a valid SPIFFE ID of one of `accepted`. Returns it; throws
 * `ERR_IDENTITY_TLS_PEER` (`undefined`, a peer without a valid X509-SVID, fails too).
 */
export function checkPeerTrustDomain(
  identity: string | undefined,
  accepted: readonly string[],
): string {
  const r = identity === undefined ? undefined : tryParseSpiffeId(identity);
  if (identity === undefined || !r?.ok || !accepted.includes(r.id.trustDomain.name)) {
    throw peerError(
      `identity verification error: peer did not present the expected trustdomain (${accepted.join(", ")}), got ${identity ?? "no valid X509-SVID"}`,
    );
  }
  return identity;
}

/**
 * Checks an accepted server-side socket: OpenSSL verified the chain against the accepted
 * roots; this requires a valid X509-SVID leaf whose trust domain is accepted and whose chain
 * anchors in THAT trust domain's bundle (ztunnel's TrustDomainVerifier). Returns the peer;
 * throws `ERR_IDENTITY_TLS_PEER`.
 */
export function verifyHboneClient(socket: TLSSocket, config: HboneServerTlsConfig): VerifiedPeer {
  if (!socket.authorized) {
    throw peerError(
      `client certificate rejected: ${String(socket.authorizationError ?? "no certificate")}`,
    );
  }
  const cert = socket.getPeerCertificate(true);
  const claimed = cert?.raw ? peerIdentity(socket) : undefined;
  const accepted = acceptedDomains(config);
  // A leaf that is no X509-SVID gets checkPeerChain's more precise error.
  if (claimed !== undefined) checkPeerTrustDomain(claimed, accepted);
  return checkPeerChain(cert, config.trustBundles, "client");
}

/** The SPIFFE ID of a connected TLS peer (its leaf's one URI SAN), or undefined. */
export function peerIdentity(socket: TLSSocket): string | undefined {
  return peerCertificateIdentity(socket.getPeerCertificate(false));
}

/** The SPIFFE ID of a peer certificate's leaf (a valid X509-SVID), or undefined. */
export function peerCertificateIdentity(cert: PeerCertificate | undefined): string | undefined {
  if (!cert?.raw) return undefined;
  try {
    return checkX509SvidLeaf(parseCertificate(new Uint8Array(cert.raw))).toString();
  } catch {
    return undefined;
  }
}

function checkPeerChain(
  cert: PeerCertificate | undefined,
  bundles: TrustBundleSet,
  role: "client" | "server",
): VerifiedPeer {
  if (!cert?.raw) throw peerError(`the ${role} presented no certificate`);
  let id: SpiffeId;
  try {
    id = checkX509SvidLeaf(parseCertificate(new Uint8Array(cert.raw)));
  } catch (cause) {
    throw peerError(
      `the ${role} certificate is not a valid X509-SVID: ${(cause as Error).message}`,
      cause,
    );
  }
  // The chain OpenSSL built: follow issuerCertificate to the self-signed anchor.
  let anchor: PeerCertificate = cert;
  for (let i = 0; i < 16; i++) {
    const next = (anchor as PeerCertificate & { issuerCertificate?: PeerCertificate })
      .issuerCertificate;
    if (next === undefined || next === anchor || next.raw.equals(anchor.raw)) break;
    anchor = next;
  }
  const bundle = bundles.get(id.trustDomain.name);
  if (bundle === undefined) {
    throw peerError(`no X.509 bundle found for trust domain "${id.trustDomain.name}" (peer ${id})`);
  }
  const anchored = bundle.x509Authorities.some((a) => Buffer.from(a.rawData).equals(anchor.raw));
  if (!anchored || anchor === cert) {
    throw peerError(
      `the ${role} chain of ${id} does not lead to a root of trust domain "${id.trustDomain.name}"`,
    );
  }
  return { identity: id.toString(), trustDomain: id.trustDomain.name };
}

/** The local end of an accepted TCP connection (its original destination for a TPROXY listener). */
export interface LocalAddress {
  readonly address: string;
  readonly port: number;
}

export interface HboneTlsServerOptions extends HboneTlsCommon {
  /**
   * The server identity, or a function choosing one per connection from the local address the
   * client dialled (a node proxy serving several pods on one listener: ztunnel sends no SNI, so
   * the destination address is what selects the certificate). Return undefined to refuse.
   */
  readonly identity: MtlsIdentity | ((local: LocalAddress) => MtlsIdentity | undefined);
  /** As {@link HboneServerTlsConfig.acceptedTrustDomains}; default: each identity's own trust domain. */
  readonly acceptedTrustDomains?: readonly string[];
  /** Handshake deadline (default 10 s); slower clients are disconnected. */
  readonly handshakeTimeoutMs?: number;
  /** Called for every rejected or failed connection (handshake error, failed peer check). */
  readonly onReject?: (error: Error, local: LocalAddress) => void;
}

/**
 * An HBONE TLS listener. For each TCP connection the identity for its local address is chosen,
 * and the socket is handed to a (non-listening) `tls.Server` built for that identity — one per
 * identity object, cached, so returning a new object after rotation switches certificates for
 * new connections. After the TLS 1.3 handshake {@link verifyHboneClient} runs; only verified
 * sockets reach `onConnection`, the rest are destroyed and reported to `onReject`. `close()`
 * the returned server to stop listening; verified sockets are the caller's to end (add an
 * 'error' listener to them).
 */
export function createHboneTlsServer(
  options: HboneTlsServerOptions,
  onConnection: (socket: TLSSocket, peer: VerifiedPeer) => void,
): Server {
  const perIdentity = new WeakMap<MtlsIdentity, TlsServer>();
  const select =
    typeof options.identity === "function"
      ? options.identity
      : (): MtlsIdentity => options.identity as MtlsIdentity;
  const localOf = (s: Socket): LocalAddress => ({
    address: s.localAddress ?? "",
    port: s.localPort ?? 0,
  });
  const reject = (error: Error, local: LocalAddress): void => {
    options.onReject?.(error, local);
  };
  const tlsServerFor = (identity: MtlsIdentity): TlsServer => {
    let tlsServer = perIdentity.get(identity);
    if (tlsServer !== undefined) return tlsServer;
    const config: HboneServerTlsConfig = {
      identity,
      trustBundles: options.trustBundles,
      ...(options.acceptedTrustDomains
        ? { acceptedTrustDomains: options.acceptedTrustDomains }
        : {}),
    };
    // rejectUnauthorized: false only so that a failed chain reaches our check with its reason
    // (Node destroys silently otherwise); verifyHboneClient rejects every unauthorized socket.
    tlsServer = createTlsServer({
      ...hboneServerTlsOptions(config),
      rejectUnauthorized: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
    });
    tlsServer.on("secureConnection", (socket: TLSSocket) => {
      let peer: VerifiedPeer;
      try {
        if (socket.alpnProtocol !== "h2") throw peerError("the client did not negotiate ALPN h2");
        peer = verifyHboneClient(socket, config);
      } catch (error) {
        socket.destroy();
        reject(error as Error, localOf(socket));
        return;
      }
      onConnection(socket, peer);
    });
    tlsServer.on("tlsClientError", (error: Error, socket: TLSSocket) => {
      socket.destroy();
      reject(error, localOf(socket));
    });
    perIdentity.set(identity, tlsServer);
    return tlsServer;
  };
  return createServer((raw: Socket) => {
    const local = localOf(raw);
    try {
      const identity = select(local);
      if (identity === undefined) {
        throw peerError(`no workload identity is served on ${local.address}:${local.port}`);
      }
      tlsServerFor(identity).emit("connection", raw);
    } catch (error) {
      raw.destroy();
      reject(error as Error, local);
    }
  });
}

function peerError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_TLS_PEER",
    message,
    cause === undefined ? undefined : { cause },
  );
}
