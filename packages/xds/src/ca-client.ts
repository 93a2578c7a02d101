// A client of istiod's CA (`istio.v1.auth.IstioCertificateService/CreateCertificate`), as ztunnel's
// `src/identity/caclient.rs` uses it: a fresh ECDSA P-256 key and CSR per certificate, the requested
// TTL, `ImpersonatedIdentity` metadata in shared mode, a bearer token re-read per call, `clusterid`.
// The returned chain is verified before it is used: leaf first, root last, the leaf's one URI SAN is
// the identity asked for, its key is ours, and it chains to the returned root and to the mesh roots
// we already trust. Plugs into @ambientkit/identity's CertificateManager for half-life rotation.
import { readFile } from "node:fs/promises";
import {
  createCsr,
  decodePemCertificates,
  exportPrivateKeyPem,
  generateKeyPair,
  type ManagedCertificate,
  parseCertificate,
  parseSpiffeId,
  samePublicKey,
  TrustBundle,
  verifyX509Svid,
} from "@ambientkit/identity";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { XdsClientError } from "./errors.js";
import { IstioCertificateService } from "./gen/ca_pb.js";

/** ztunnel's `SECRET_TTL` default: 24 h. */
export const DEFAULT_SECRET_TTL_SECONDS: number = 24 * 60 * 60;

export interface IstioCaClientOptions {
  /** `CA_ADDRESS`: `https://istiod.istio-system.svc:15012`, or `http://…` for local use only. */
  readonly address: string;
  /** `CA_ROOT_CA`: PEM of the root that signed the CA's serving certificate (required for https). */
  readonly rootCert?: string;
  /** The name the CA's certificate is checked against when dialling an IP. */
  readonly serverName?: string;
  /** Bearer token file, re-read on every request. */
  readonly tokenFile?: string;
  /** `CLUSTER_ID`, sent as `clusterid` metadata (default `Kubernetes`). */
  readonly clusterId?: string;
  /**
   * `PROXY_MODE=shared` (the default): ztunnel asks for certificates of the pods it serves, so each
   * request carries `ImpersonatedIdentity`. Set false for a client requesting its own identity.
   */
  readonly impersonate?: boolean;
  /** `SECRET_TTL` in seconds (default 24 h). */
  readonly ttlSeconds?: number;
  /**
   * Mesh roots (PEM) the issued chain must also verify against. Without it, the chain is checked
   * against the root the CA returned — which only proves the chain is internally consistent.
   */
  readonly trustedRoots?: string;
  /** Per-request deadline (ms, default 10 s). */
  readonly timeoutMs?: number;
  /** Extra request metadata (ztunnel's `CA_HEADERS`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** What one request returns: the chain to serve, our key, and the CA's roots. */
export interface IssuedWorkloadCertificate extends ManagedCertificate {
  readonly identity: string;
  readonly rootCertPem: string;
}

function caError(message: string, cause?: unknown): XdsClientError {
  return new XdsClientError("ERR_XDS_CLIENT_CA", message, cause === undefined ? {} : { cause });
}

export class IstioCaClient {
  readonly #o: IstioCaClientOptions;
  readonly #client: ReturnType<typeof createClient<typeof IstioCertificateService>>;
  readonly #session: Http2SessionManager;

  constructor(options: IstioCaClientOptions) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch (cause) {
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        `CA address ${JSON.stringify(options.address)} is not a URL: use https://host:15012`,
        { cause },
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        `CA address ${options.address} must start with https:// or http://`,
      );
    if (url.protocol === "https:" && (options.rootCert ?? "") === "")
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        "an https CA address needs rootCert: the PEM of the root that signed istiod's certificate (CA_ROOT_CA)",
      );
    const ttl = options.ttlSeconds ?? DEFAULT_SECRET_TTL_SECONDS;
    if (!Number.isSafeInteger(ttl) || ttl < 0)
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        `ttlSeconds must be a whole number of seconds ≥ 0, got ${ttl}`,
      );
    this.#o = options;
    // Our own session manager so close() can tear the connection down.
    this.#session = new Http2SessionManager(
      url.origin,
      { idleConnectionTimeoutMs: 60_000 },
      url.protocol === "https:"
        ? {
            ca: options.rootCert,
            ...(options.serverName !== undefined ? { servername: options.serverName } : {}),
          }
        : {},
    );
    this.#client = createClient(
      IstioCertificateService,
      createGrpcTransport({
        baseUrl: url.origin,
        readMaxBytes: 4 * 1024 * 1024,
        sessionManager: this.#session,
      }),
    );
  }

  /** Closes the connection to the CA; later requests open a new one. */
  close(): void {
    this.#session.abort();
  }

  async #headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      clusterid: this.#o.clusterId ?? "Kubernetes",
      ...this.#o.headers,
    };
    if (this.#o.tokenFile !== undefined) {
      let token: string;
      try {
        token = (await readFile(this.#o.tokenFile, "utf8")).trim();
      } catch (cause) {
        throw new XdsClientError(
          "ERR_XDS_CLIENT_TOKEN",
          `cannot read the CA token file ${this.#o.tokenFile}: ${(cause as Error).message} — mount the projected service-account token (audience istio-ca) there`,
          { cause },
        );
      }
      if (token === "")
        throw new XdsClientError(
          "ERR_XDS_CLIENT_TOKEN",
          `the CA token file ${this.#o.tokenFile} is empty`,
        );
      headers.authorization = `Bearer ${token}`;
    }
    return headers;
  }

  /**
   * Requests a certificate for `identity` (a SPIFFE ID). Throws `XdsClientError` with
   * `ERR_XDS_CLIENT_TOKEN`, `ERR_XDS_CLIENT_UNAUTHENTICATED`, or `ERR_XDS_CLIENT_CA` (the CA refused,
   * or answered with a chain that failed a check); nothing is returned half-checked.
   */
  async fetchCertificate(identity: string): Promise<IssuedWorkloadCertificate> {
    const id = parseSpiffeId(identity).toString();
    const key = await generateKeyPair("ec-p256");
    const csr = await createCsr(id, key);
    const headers = await this.#headers();
    let chainPems: string[];
    try {
      const res = await this.#client.createCertificate(
        {
          csr,
          validityDuration: BigInt(this.#o.ttlSeconds ?? DEFAULT_SECRET_TTL_SECONDS),
          metadata: this.#o.impersonate === false ? {} : { ImpersonatedIdentity: id },
        },
        { headers, timeoutMs: this.#o.timeoutMs ?? 10_000 },
      );
      chainPems = res.certChain;
    } catch (e) {
      const ce = ConnectError.from(e);
      if (ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied)
        throw new XdsClientError(
          "ERR_XDS_CLIENT_UNAUTHENTICATED",
          `the CA at ${this.#o.address} refused our credentials (${ce.rawMessage}): check the token file and its audience (istio-ca)`,
          { cause: e },
        );
      throw caError(
        `the CA at ${this.#o.address} did not issue a certificate for ${id} (${Code[ce.code]}: ${ce.rawMessage})`,
        e,
      );
    }
    return this.#check(id, key, chainPems);
  }

  async #check(
    id: string,
    key: Awaited<ReturnType<typeof generateKeyPair>>,
    chainPems: readonly string[],
  ): Promise<IssuedWorkloadCertificate> {
    if (chainPems.length < 2)
      throw caError(
        `the CA answered with ${chainPems.length} certificate(s) for ${id}; a chain needs the leaf first and the root last`,
      );
    let ders: Uint8Array[][];
    try {
      ders = chainPems.map((p) => decodePemCertificates(p));
    } catch (cause) {
      throw caError(
        `the CA's chain for ${id} is not PEM certificates: ${(cause as Error).message}`,
        cause,
      );
    }
    const leafAndIntermediates = ders.slice(0, -1).flat();
    const rootPem = chainPems.at(-1) as string;
    const leafDer = leafAndIntermediates[0];
    if (leafDer === undefined) throw caError(`the CA's chain for ${id} has no leaf`);
    const leaf = parseCertificate(leafDer);
    if (!(await samePublicKey(new Uint8Array(leaf.publicKey.rawData), key.publicKey)))
      throw caError(`the CA issued a certificate for ${id} with a key that is not ours`);
    const td = parseSpiffeId(id).trustDomain.toString();
    const anchors = [
      rootPem,
      ...(this.#o.trustedRoots !== undefined ? [this.#o.trustedRoots] : []),
    ];
    for (const anchor of anchors) {
      try {
        const verified = await verifyX509Svid(
          leafAndIntermediates,
          TrustBundle.fromPem(td, anchor),
        );
        if (verified.id.toString() !== id)
          throw caError(
            `did not find expected SAN: ${id} (the CA issued ${verified.id.toString()})`,
          );
      } catch (cause) {
        if (cause instanceof XdsClientError) throw cause;
        throw caError(
          `the certificate the CA issued for ${id} does not verify against ${anchor === rootPem ? "the root it returned" : "the trusted mesh roots"}: ${(cause as Error).message}`,
          cause,
        );
      }
    }
    return {
      identity: id,
      certChainPem: chainPems
        .slice(0, -1)
        .map((p) => (p.endsWith("\n") ? p : `${p}\n`))
        .join(""),
      privateKeyPem: await exportPrivateKeyPem(key),
      rootCertPem: rootPem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    };
  }
}
