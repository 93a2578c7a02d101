// An Istio-compatible certificate authority: what istiod does when it signs workload CSRs
// (security/pkg/pki/ca, security/pkg/pki/util/generate_cert.go). Universal: WebCrypto only.
import { ECDSASigValue } from "@peculiar/asn1-ecc";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  Extension as AsnExtension,
  KeyUsageFlags as AsnKeyUsageFlags,
  Name as AsnName,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  type SubjectPublicKeyInfo,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import { fromBER, RawData } from "asn1js";
import { type CertificateSigningRequest, createCsr, parseCsr } from "./csr.js";
import { IdentityError } from "./errors.js";
import {
  bufferSource,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  type KeyAlgorithm,
  type KeyPair,
  samePublicKey,
  signingAlgorithm,
} from "./keys.js";
import { decodePemCertificates, encodePem } from "./pem.js";
import { parseSpiffeId, parseTrustDomain, type SpiffeId, type TrustDomain } from "./spiffe-id.js";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  type Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from "./x509-lib.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** istiod `DEFAULT_WORKLOAD_CERT_TTL`: 24 h. */
export const DEFAULT_WORKLOAD_CERT_TTL_MS: number = DAY;
/** istiod `MAX_WORKLOAD_CERT_TTL`: 90 days. A longer request is an error, not a clamp. */
export const MAX_WORKLOAD_CERT_TTL_MS: number = 90 * DAY;
/** istiod `CITADEL_SELF_SIGNED_CA_CERT_TTL`: 10 years (3650 days). */
export const SELF_SIGNED_CA_CERT_TTL_MS: number = 3650 * DAY;
/** istiod `ClockSkewGracePeriod`: leaf notBefore is backdated by 2 minutes. */
export const CLOCK_SKEW_GRACE_PERIOD_MS: number = 2 * MINUTE;
/** Default lifetime of an intermediate made by {@link CertificateAuthority.createIntermediate}: 1 year. */
export const DEFAULT_INTERMEDIATE_TTL_MS: number = 365 * DAY;

/** Clock and randomness a CA uses; inject them in tests. */
export interface CaRuntime {
  /** Current time (default `() => new Date()`). */
  now?: () => Date;
  /** `n` random bytes (default `crypto.getRandomValues`). Serial numbers use 16 bytes. */
  randomBytes?: (n: number) => Uint8Array;
}

/** TTL policy of a CA, istiod's env defaults unless overridden. */
export interface CaTtlPolicy {
  /** Used when a request has no TTL or a TTL ≤ 0 (default 24 h). */
  defaultTtlMs?: number;
  /** Requests above this fail with `ERR_IDENTITY_CA_TTL` (default 90 days). */
  maxTtlMs?: number;
}

export interface CreateRootOptions extends CaRuntime, CaTtlPolicy {
  /** Trust domain; the root's subject is `O=<trust domain>` (istiod: Org = trust domain). */
  trustDomain: string | TrustDomain;
  /** Key of a new root (default `rsa-2048`, istiod's `CITADEL_SELF_SIGNED_CA_RSA_KEY_SIZE`). */
  keyAlgorithm?: KeyAlgorithm;
  /** Re-use an existing key (istiod's root rotation re-signs with the same key). */
  key?: KeyPair;
  /** Root lifetime (default 10 years). */
  ttlMs?: number;
}

export interface CreateIntermediateOptions {
  /** Key of the intermediate (default: the same algorithm as this CA's key, as istiod's GenKeyCert). */
  keyAlgorithm?: KeyAlgorithm;
  key?: KeyPair;
  /** Lifetime (default 1 year), clamped to this CA's notAfter. */
  ttlMs?: number;
  /** Subject O (default: this CA's trust domain when known). */
  organization?: string;
  /** Subject CN (default none). */
  commonName?: string;
  /** BasicConstraints pathLenConstraint (default none). */
  pathLength?: number;
}

/** The four files of Istio's plug-in CA (`cacerts`) layout. */
export interface CacertsFiles {
  /** The signing (issuing) certificate. */
  "ca-cert.pem": string;
  /** The signing key, PKCS#8. */
  "ca-key.pem": string;
  /** The trust anchors (one or more roots). */
  "root-cert.pem": string;
  /** Signing cert, then intermediates, then the root (istio tools/certs: `cat $^`). */
  "cert-chain.pem": string;
}

export interface SignOptions {
  /**
   * The identity to certify. istiod takes it from the caller's authenticated identity, never
   * from the CSR: the CSR's SANs and subject are ignored.
   */
  identity: string | SpiffeId;
  /** Requested lifetime in ms; absent or ≤ 0 means the CA's default. Above the max is an error. */
  ttlMs?: number;
}

/** A certificate the CA issued, with the chain in istiod's CreateCertificate order. */
export interface IssuedCertificate {
  readonly identity: string;
  /** The leaf, PEM. */
  readonly certificatePem: string;
  /**
   * IstioCertificateResponse.cert_chain: the leaf, then each intermediate as its own element,
   * then the root bundle as ONE element (it may hold several roots). Roots are not repeated.
   */
  readonly chain: readonly string[];
  /** Leaf + intermediates: what a TLS peer presents (`cert-chain.pem` of a workload). */
  readonly certChainPem: string;
  /** The trust anchors (`root-cert.pem`). */
  readonly rootCertPem: string;
  /** Serial number, lowercase hex. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** An issued certificate together with the private key the CA generated for it. */
export interface IssuedKeyAndCertificate extends IssuedCertificate {
  readonly key: KeyPair;
  /** The key as PKCS#8 PEM (`key.pem`). */
  readonly privateKeyPem: string;
}

interface LeafTemplate {
  issuer: AsnName;
  /** Each already DER (the same for every leaf of this CA). */
  fixedExtensions: AsnExtension[];
  signatureAlgorithmId: AlgorithmIdentifier;
  signing: { name: string; hash?: string };
  intermediatePems: string[];
  rootCertPem: string;
}

interface CaParts {
  template?: LeafTemplate;
  key: KeyPair;
  signing: X509Certificate;
  /** Between the signing cert and the root, nearest first. */
  intermediates: X509Certificate[];
  roots: X509Certificate[];
  /** The root in `roots` this CA's path ends at. */
  anchor: X509Certificate;
  trustDomain: string | undefined;
  runtime: Required<CaRuntime>;
  ttl: Required<CaTtlPolicy>;
}

const kParts = Symbol("ca-parts");

/**
 * An Istio-compatible CA. Make one with {@link CertificateAuthority.createRoot} (istiod's
 * self-signed CA), {@link CertificateAuthority.fromPem} (a plug-in `cacerts` bundle, checked the
 * way istiod checks it) or {@link CertificateAuthority.createIntermediate}.
 */
export class CertificateAuthority {
  readonly #parts: CaParts;

  /** @internal use the static factories */
  constructor(token: symbol, parts: CaParts) {
    if (token !== kParts) throw new TypeError("use CertificateAuthority.createRoot() or fromPem()");
    this.#parts = parts;
  }

  /**
   * Creates a self-signed root as istiod's self-signed CA does: subject `O=<trust domain>`, no
   * SAN, BasicConstraints CA:TRUE (critical), KeyUsage keyCertSign only (critical), a 128-bit
   * random serial, notBefore = now (no backdate), 10 years, RSA 2048 unless asked otherwise.
   */
  static async createRoot(options: CreateRootOptions): Promise<CertificateAuthority> {
    const td =
      typeof options.trustDomain === "string"
        ? parseTrustDomain(options.trustDomain)
        : options.trustDomain;
    const runtime = resolveRuntime(options);
    const ttl = resolveTtl(options);
    const ttlMs = options.ttlMs ?? SELF_SIGNED_CA_CERT_TTL_MS;
    if (!(ttlMs > 0)) throw caConfigError(`root TTL must be positive, got ${ttlMs} ms`);
    const key = options.key ?? (await generateKeyPair(options.keyAlgorithm ?? "rsa-2048"));
    const now = runtime.now();
    const name = new Name([{ "2.5.4.10": [td.name] }]);
    const cert = await generate({
      serialNumber: serialHex(runtime),
      subject: name,
      issuer: name,
      notBefore: now,
      notAfter: new Date(now.getTime() + ttlMs),
      publicKey: key.publicKey,
      signingKey: key.privateKey,
      signingAlgorithm: signingAlgorithm(key.algorithm),
      extensions: [
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true),
        new BasicConstraintsExtension(true, undefined, true),
        await SubjectKeyIdentifierExtension.create(key.publicKey),
      ],
    });
    return new CertificateAuthority(kParts, {
      key,
      signing: cert,
      intermediates: [],
      roots: [cert],
      anchor: cert,
      trustDomain: td.name,
      runtime,
      ttl,
    });
  }

  /**
   * Loads a plug-in CA (Istio's `cacerts`: ca-cert.pem, ca-key.pem, root-cert.pem,
   * cert-chain.pem) with istiod's consistency checks: the signing cert verifies up to a root in
   * root-cert.pem through the chain (signatures, names, CA flags, keyCertSign, path length,
   * validity now), the key parses and matches the signing cert, and the signing cert is a CA.
   * Failures are `ERR_IDENTITY_CA_CONFIG` errors naming the file at fault.
   */
  static async fromPem(
    files: { caCertPem: string; caKeyPem: string; rootCertPem: string; certChainPem?: string },
    options: CaRuntime & CaTtlPolicy & { trustDomain?: string } = {},
  ): Promise<CertificateAuthority> {
    const runtime = resolveRuntime(options);
    const ttl = resolveTtl(options);
    const [signing, ...extraInCaCert] = parseCerts(files.caCertPem, "ca-cert.pem");
    if (signing === undefined) throw caConfigError("ca-cert.pem holds no certificate");
    const roots = parseCerts(files.rootCertPem, "root-cert.pem");
    const chainCerts =
      files.certChainPem && files.certChainPem.trim() !== ""
        ? parseCerts(files.certChainPem, "cert-chain.pem")
        : [];
    let key: KeyPair;
    try {
      key = await importPrivateKeyPem(files.caKeyPem);
    } catch (cause) {
      throw caConfigError(
        `failed to parse private key PEM (ca-key.pem): ${(cause as Error).message}`,
        cause,
      );
    }
    const pool = [...extraInCaCert, ...chainCerts].filter(
      (c) => !sameCert(c, signing) && !roots.some((r) => sameCert(r, c)),
    );
    const now = runtime.now();
    const path = await buildPath(signing, pool, roots, now);
    if (!(await samePublicKey(key.publicKey, new Uint8Array(signing.publicKey.rawData)))) {
      throw caConfigError(
        "the cert does not match the key: ca-key.pem is not the key of ca-cert.pem",
      );
    }
    const bc = signing.getExtension(BasicConstraintsExtension);
    if (!bc?.ca) {
      throw caConfigError(
        "certificate is not authorized to sign other certificates: ca-cert.pem is not a CA (BasicConstraints CA:TRUE missing)",
      );
    }
    const root = path.at(-1) as X509Certificate;
    return new CertificateAuthority(kParts, {
      key,
      signing,
      intermediates: path.slice(1, -1),
      roots: roots.some((r) => sameCert(r, root)) ? roots : [root, ...roots],
      anchor: root,
      trustDomain: options.trustDomain ?? firstOrg(root),
      runtime,
      ttl,
    });
  }

  /** The trust domain this CA was made for (from createRoot, or the root's O= when loaded). */
  get trustDomain(): string | undefined {
    return this.#parts.trustDomain;
  }

  /** The key algorithm of the signing key. */
  get keyAlgorithm(): KeyAlgorithm {
    return this.#parts.key.algorithm;
  }

  /** The signing certificate, PEM. */
  get caCertPem(): string {
    return pem(this.#parts.signing);
  }

  /** The trust anchors (root-cert.pem). */
  get rootCertPem(): string {
    return this.#parts.roots.map(pem).join("");
  }

  /** Signing cert, intermediates, root: Istio's cacerts `cert-chain.pem`. */
  get certChainPem(): string {
    const p = this.#parts;
    const chain = [p.signing, ...p.intermediates];
    if (!sameCert(p.anchor, p.signing)) chain.push(p.anchor);
    return chain.map(pem).join("");
  }

  get notBefore(): Date {
    return this.#parts.signing.notBefore;
  }

  get notAfter(): Date {
    return this.#parts.signing.notAfter;
  }

  get defaultTtlMs(): number {
    return this.#parts.ttl.defaultTtlMs;
  }

  get maxTtlMs(): number {
    return this.#parts.ttl.maxTtlMs;
  }

  /** The CA's files in Istio's plug-in `cacerts` layout. */
  async toCacerts(): Promise<CacertsFiles> {
    return {
      "ca-cert.pem": this.caCertPem,
      "ca-key.pem": await exportPrivateKeyPem(this.#parts.key),
      "root-cert.pem": this.rootCertPem,
      "cert-chain.pem": this.certChainPem,
    };
  }

  /**
   * Mints an intermediate CA under this CA (subject `O=<trust domain>[, CN=…]`, CA:TRUE critical,
   * keyCertSign critical, SKI/AKI, notBefore backdated 2 minutes, lifetime clamped to this CA's).
   */
  async createIntermediate(options: CreateIntermediateOptions = {}): Promise<CertificateAuthority> {
    const p = this.#parts;
    const key = options.key ?? (await generateKeyPair(options.keyAlgorithm ?? p.key.algorithm));
    const now = p.runtime.now();
    this.assertSignerValid(now);
    const ttlMs = options.ttlMs ?? DEFAULT_INTERMEDIATE_TTL_MS;
    if (!(ttlMs > 0)) throw caConfigError(`intermediate TTL must be positive, got ${ttlMs} ms`);
    const org = options.organization ?? p.trustDomain;
    const rdns: Record<string, string[]>[] = [];
    if (org !== undefined) rdns.push({ "2.5.4.10": [org] });
    if (options.commonName !== undefined) rdns.push({ "2.5.4.3": [options.commonName] });
    if (rdns.length === 0)
      throw caConfigError("an intermediate needs an organization or a commonName");
    const extensions: Extension[] = [
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true),
      new BasicConstraintsExtension(true, options.pathLength, true),
      await SubjectKeyIdentifierExtension.create(key.publicKey),
    ];
    const aki = this.authorityKeyId();
    if (aki) extensions.push(aki);
    const cert = await generate({
      serialNumber: serialHex(p.runtime),
      subject: new Name(rdns),
      issuer: p.signing.subjectName,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_GRACE_PERIOD_MS),
      notAfter: clampTo(new Date(now.getTime() + ttlMs), p.signing.notAfter),
      publicKey: key.publicKey,
      signingKey: p.key.privateKey,
      signingAlgorithm: signingAlgorithm(p.key.algorithm),
      extensions,
    });
    return new CertificateAuthority(kParts, {
      key,
      signing: cert,
      intermediates: p.roots.some((r) => sameCert(r, p.signing))
        ? [...p.intermediates]
        : [p.signing, ...p.intermediates],
      roots: p.roots,
      anchor: p.anchor,
      trustDomain: p.trustDomain,
      runtime: p.runtime,
      ttl: p.ttl,
    });
  }

  /**
   * Signs a CSR with istiod's workload profile: the CSR's self-signature must verify; its SANs
   * and subject are ignored; the SAN is the given identity (one URI SAN, critical); subject empty
   * (or CN = identity when the CSR had a CN, istiod's dual-use); KeyUsage digitalSignature +
   * keyEncipherment (critical); EKU serverAuth + clientAuth; CA:FALSE (critical); AKI from the
   * signer; 128-bit random serial; notBefore = now − 2 min; notAfter = now + TTL clamped to the
   * signing cert's notAfter. TTL > max is `ERR_IDENTITY_CA_TTL`.
   */
  async sign(
    csr: string | Uint8Array | CertificateSigningRequest,
    options: SignOptions,
  ): Promise<IssuedCertificate> {
    const p = this.#parts;
    const id =
      typeof options.identity === "string" ? parseSpiffeId(options.identity) : options.identity;
    if (id.isRoot) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_SIGN",
        `cannot issue a workload certificate for ${id}: an X509-SVID leaf needs a non-root path (e.g. /ns/<ns>/sa/<sa>)`,
      );
    }
    const ttlMs = this.resolveRequestTtl(options.ttlMs);
    const request =
      typeof csr === "string" || csr instanceof Uint8Array ? await parseCsr(csr) : csr;
    const now = p.runtime.now();
    this.assertSignerValid(now);
    const identity = id.toString();
    const t = this.leafTemplate();
    // X.509 times have whole seconds; compute with what the certificate will say.
    const nowS = Math.floor(now.getTime() / 1000) * 1000;
    const notBefore = new Date(nowS - CLOCK_SKEW_GRACE_PERIOD_MS);
    const notAfter = clampTo(new Date(nowS + Math.floor(ttlMs / 1000) * 1000), p.signing.notAfter);
    const serial = serialBytes(p.runtime);
    const subject =
      request.hasCommonName && identity.length <= 64
        ? new AsnName([
            new RelativeDistinguishedName([
              new AttributeTypeAndValue({
                type: OID_CN,
                value: new AttributeValue({ utf8String: identity }),
              }),
            ]),
          ])
        : new AsnName();
    const san = extension(
      OID_SAN,
      true,
      new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: identity })]),
    );
    let tbs: Uint8Array;
    try {
      const tbsCertificate = new TBSCertificate({
        version: Version.v3,
        serialNumber: serial.slice().buffer,
        signature: t.signatureAlgorithmId,
        issuer: t.issuer,
        validity: validity(notBefore, notAfter),
        subject,
        subjectPublicKeyInfo: new RawDer(request.publicKeyDer) as unknown as SubjectPublicKeyInfo,
        extensions: new Extensions([...t.fixedExtensions, san]),
      });
      tbs = new Uint8Array(AsnConvert.serialize(tbsCertificate));
    } catch (cause) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_SIGN",
        `cannot encode the certificate for ${identity}: ${(cause as Error).message}`,
        { cause },
      );
    }
    let signature: Uint8Array;
    try {
      const raw = new Uint8Array(
        await globalThis.crypto.subtle.sign(t.signing, p.key.privateKey, bufferSource(tbs)),
      );
      signature = t.signing.name === "ECDSA" ? ecdsaRawToDer(raw) : raw;
    } catch (cause) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_SIGN",
        `cannot sign the certificate for ${identity}: ${(cause as Error).message}`,
        { cause },
      );
    }
    const der = new Uint8Array(
      AsnConvert.serialize(
        new Certificate({
          tbsCertificate: new RawDer(tbs) as unknown as TBSCertificate,
          signatureAlgorithm: t.signatureAlgorithmId,
          signatureValue: signature.slice().buffer,
        }),
      ),
    );
    const leafPem = encodePem("CERTIFICATE", der);
    return {
      identity,
      certificatePem: leafPem,
      chain: [leafPem, ...t.intermediatePems, t.rootCertPem],
      certChainPem: leafPem + t.intermediatePems.join(""),
      rootCertPem: t.rootCertPem,
      serialNumber: hex(serial[0] === 0 && serial.length > 1 ? serial.subarray(1) : serial),
      notBefore,
      notAfter,
    };
  }

  /** What every leaf of this CA shares, computed once: issuer name bytes, fixed extensions, chain. */
  private leafTemplate(): LeafTemplate {
    const p = this.#parts;
    if (p.template) return p.template;
    const signingDer = new Uint8Array(p.signing.rawData);
    const ski = p.signing.getExtension(SubjectKeyIdentifierExtension);
    const aki = ski
      ? [
          extension(
            OID_AKI,
            false,
            new AuthorityKeyIdentifier({
              keyIdentifier: new KeyIdentifier(fromHex(ski.keyId)),
            }),
          ),
        ]
      : [];
    const inter = [p.signing, ...p.intermediates].filter(
      (c) => !p.roots.some((r) => sameCert(r, c)),
    );
    const alg = p.key.algorithm;
    p.template = {
      issuer: rawSubject(signingDer),
      fixedExtensions: [LEAF_KEY_USAGE, LEAF_EXT_KEY_USAGE, LEAF_BASIC_CONSTRAINTS, ...aki].map(
        encoded,
      ),
      signatureAlgorithmId: encoded(
        alg === "ec-p256"
          ? new AlgorithmIdentifier({ algorithm: "1.2.840.10045.4.3.2" })
          : alg === "ec-p384"
            ? new AlgorithmIdentifier({ algorithm: "1.2.840.10045.4.3.3" })
            : alg === "ed25519"
              ? new AlgorithmIdentifier({ algorithm: "1.3.101.112" })
              : new AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.11", parameters: null }),
      ),
      signing: signingAlgorithm(alg) as LeafTemplate["signing"],
      intermediatePems: inter.map(pem),
      rootCertPem: p.roots.map(pem).join(""),
    };
    return p.template;
  }

  /**
   * Generates a key (default ECDSA P-256, like ztunnel), builds a ztunnel-profile CSR and signs it:
   * what `ambientkit ca issue` does.
   */
  async issue(
    identity: string | SpiffeId,
    options: { keyAlgorithm?: KeyAlgorithm; ttlMs?: number } = {},
  ): Promise<IssuedKeyAndCertificate> {
    const key = await generateKeyPair(options.keyAlgorithm ?? "ec-p256");
    const csrPem = await createCsr(identity, key);
    const signOptions: SignOptions = { identity };
    if (options.ttlMs !== undefined) signOptions.ttlMs = options.ttlMs;
    const issued = await this.sign(csrPem, signOptions);
    return { ...issued, key, privateKeyPem: await exportPrivateKeyPem(key) };
  }

  private resolveRequestTtl(requested: number | undefined): number {
    const { defaultTtlMs, maxTtlMs } = this.#parts.ttl;
    if (requested !== undefined && !Number.isFinite(requested)) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_TTL",
        `requested TTL ${requested} is not a finite number of ms`,
      );
    }
    if (requested !== undefined && requested > maxTtlMs) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_TTL",
        `requested TTL ${formatDuration(requested)} is greater than the max allowed TTL ${formatDuration(maxTtlMs)}; ask for a shorter TTL`,
      );
    }
    return requested === undefined || requested <= 0 ? defaultTtlMs : requested;
  }

  private assertSignerValid(now: Date): void {
    const signing = this.#parts.signing;
    if (now.getTime() >= signing.notAfter.getTime()) {
      throw new IdentityError(
        "ERR_IDENTITY_CA_SIGN",
        `signing certificate has expired at ${signing.notAfter.toISOString()}; rotate the CA certificate`,
      );
    }
  }

  private authorityKeyId(): AuthorityKeyIdentifierExtension | undefined {
    const ski = this.#parts.signing.getExtension(SubjectKeyIdentifierExtension);
    return ski ? new AuthorityKeyIdentifierExtension(ski.keyId, false) : undefined;
  }
}

// ---- helpers ----

// ---- DER for the Istio leaf profile, encoded with @peculiar/asn1-schema + asn1-x509 (the
// profile is fixed, so the TBSCertificate is built directly instead of through X509CertificateGenerator:
// signing stays cheap, and the issuer name is the signer's subject DER byte for byte) ----

const OID_SAN = "2.5.29.17";
const OID_AKI = "2.5.29.35";
const OID_CN = "2.5.4.3";

/**
 * Already-encoded DER placed as-is into a structure asn1-schema serializes (asn1-schema calls
 * `toASN()` on convertible values): the signer's subject Name, the CSR's SubjectPublicKeyInfo and
 * the signed TBSCertificate keep their exact bytes.
 */
class RawDer {
  readonly #block: AsnBlock | DerBytes;
  constructor(der: Uint8Array | AsnBlock) {
    this.#block = der instanceof Uint8Array ? new DerBytes({ data: der }) : der;
  }
  toASN(): AsnBlock | DerBytes {
    return this.#block;
  }
  fromASN(): this {
    throw new Error("RawDer is for encoding only");
  }
}
type AsnBlock = ReturnType<typeof fromBER>["result"];

/**
 * asn1js's RawData (bytes written out unchanged), also when the enclosing SEQUENCE encodes its
 * children into a shared writer: constant parts are not decoded and re-encoded for every leaf.
 */
class DerBytes extends RawData {
  override toBER(sizeOnly?: boolean, writer?: { write(buf: ArrayBuffer): void }): ArrayBuffer {
    const bytes = super.toBER(sizeOnly);
    writer?.write(bytes);
    return bytes;
  }
}

/** `value` serialized once by asn1-schema, then reused as-is wherever a `T` goes. */
function encoded<T extends object>(value: T): T {
  return new RawDer(new Uint8Array(AsnConvert.serialize(value))) as unknown as T;
}

function extension(oid: string, critical: boolean, value: object): AsnExtension {
  return new AsnExtension({
    extnID: oid,
    critical,
    extnValue: new OctetString(AsnConvert.serialize(value)),
  });
}

/** KeyUsage critical: digitalSignature | keyEncipherment. */
const LEAF_KEY_USAGE = extension(
  "2.5.29.15",
  true,
  new KeyUsage(AsnKeyUsageFlags.digitalSignature | AsnKeyUsageFlags.keyEncipherment),
);
/** ExtendedKeyUsage (not critical, as Go): serverAuth, clientAuth. */
const LEAF_EXT_KEY_USAGE = extension(
  "2.5.29.37",
  false,
  new ExtendedKeyUsage(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]),
);
/** BasicConstraints critical, CA:FALSE (the DEFAULT is omitted: an empty SEQUENCE). */
const LEAF_BASIC_CONSTRAINTS = extension("2.5.29.19", true, new BasicConstraints({ cA: false }));

/** UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5). */
function x509Time(d: Date): Time {
  const y = d.getUTCFullYear();
  return y >= 1950 && y < 2050 ? new Time({ utcTime: d }) : new Time({ generalTime: d });
}

function validity(notBefore: Date, notAfter: Date): Validity {
  const v = new Validity();
  v.notBefore = x509Time(notBefore);
  v.notAfter = x509Time(notAfter);
  return v;
}

/** WebCrypto's r‖s → ECDSA-Sig-Value DER. */
function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return new Uint8Array(
    AsnConvert.serialize(
      new ECDSASigValue({
        r: derInteger(raw.subarray(0, half)),
        s: derInteger(raw.subarray(half)),
      }),
    ),
  );
}

/** Unsigned big-endian bytes → the minimal content bytes of a positive DER INTEGER. */
function derInteger(b: Uint8Array): ArrayBuffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  const out = new Uint8Array(v.length + ((v[0] as number) & 0x80 ? 1 : 0));
  out.set(v, out.length - v.length);
  return out.buffer;
}

/** 16 random bytes as a positive, minimal DER INTEGER body (istiod: random in [0, 2^128)). */
function serialBytes(runtime: Required<CaRuntime>): Uint8Array {
  const bytes = runtime.randomBytes(16);
  if (bytes.length !== 16) throw caConfigError("randomBytes(16) must return 16 bytes");
  let i = 0;
  while (i < 15 && bytes[i] === 0) i++;
  const v = bytes.slice(i);
  return v.length === 1 && v[0] === 0 ? Uint8Array.of(1) : new Uint8Array(derInteger(v));
}

/** The subject Name of a DER certificate, kept byte for byte. */
function rawSubject(certDer: Uint8Array): AsnName {
  let subject: Uint8Array | undefined;
  try {
    // asn1-x509 keeps the TBSCertificate bytes; asn1js keeps each element's encoding.
    const tbsRaw = AsnConvert.parse(certDer, Certificate).tbsCertificateRaw;
    const tbs = tbsRaw === undefined ? undefined : fromBER(tbsRaw, { parseEmbedded: false });
    const fields = (
      tbs?.result as
        | {
            valueBlock?: {
              value?: { idBlock: { tagClass: number }; valueBeforeDecodeView: Uint8Array }[];
            };
          }
        | undefined
    )?.valueBlock?.value;
    const offset = fields?.[0]?.idBlock.tagClass === 3 ? 1 : 0; // [0] EXPLICIT version
    const view = fields?.[offset + 4]?.valueBeforeDecodeView;
    subject = view === undefined ? undefined : new Uint8Array(view);
    if (subject !== undefined) AsnConvert.parse(subject, AsnName); // it is a Name
  } catch (cause) {
    throw caConfigError(`signing certificate is malformed: ${(cause as Error).message}`, cause);
  }
  if (subject === undefined) throw caConfigError("signing certificate has no subject");
  return new RawDer(subject) as unknown as AsnName;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

type GenerateParams = Parameters<typeof X509CertificateGenerator.create>[0];

async function generate(params: GenerateParams): Promise<X509Certificate> {
  return X509CertificateGenerator.create(params);
}

function resolveRuntime(r: CaRuntime): Required<CaRuntime> {
  return {
    now: r.now ?? (() => new Date()),
    randomBytes:
      r.randomBytes ?? ((n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n))),
  };
}

function resolveTtl(t: CaTtlPolicy): Required<CaTtlPolicy> {
  const defaultTtlMs = t.defaultTtlMs ?? DEFAULT_WORKLOAD_CERT_TTL_MS;
  const maxTtlMs = t.maxTtlMs ?? MAX_WORKLOAD_CERT_TTL_MS;
  if (!(defaultTtlMs > 0) || !(maxTtlMs > 0)) {
    throw caConfigError("defaultTtlMs and maxTtlMs must be positive numbers of milliseconds");
  }
  return { defaultTtlMs, maxTtlMs };
}

/** 128 random bits as hex, like istiod's genSerialNum (never zero). */
function serialHex(runtime: Required<CaRuntime>): string {
  const bytes = runtime.randomBytes(16);
  if (bytes.length !== 16) throw caConfigError("randomBytes(16) must return 16 bytes");
  if (bytes.every((b) => b === 0)) bytes[15] = 1;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function clampTo(d: Date, limit: Date): Date {
  return d.getTime() >= limit.getTime() ? new Date(limit.getTime()) : d;
}

function pem(cert: X509Certificate): string {
  return encodePem("CERTIFICATE", new Uint8Array(cert.rawData));
}

function sameCert(a: X509Certificate, b: X509Certificate): boolean {
  return a.equal(b);
}

function firstOrg(cert: X509Certificate): string | undefined {
  return cert.subjectName.getField("O")[0];
}

function parseCerts(text: string, file: string): X509Certificate[] {
  let ders: Uint8Array[];
  try {
    ders = decodePemCertificates(text, { allowOtherBlocks: false });
  } catch (cause) {
    throw caConfigError(`failed to parse cert PEM (${file}): ${(cause as Error).message}`, cause);
  }
  return ders.map((der) => {
    try {
      return new X509Certificate(bufferSource(der));
    } catch (cause) {
      throw caConfigError(
        `failed to parse a certificate in ${file}: ${(cause as Error).message}`,
        cause,
      );
    }
  });
}

/**
 * Builds signing cert → … → root and checks it as Go's x509 Verify does for istiod: issuer
 * names, signatures, validity at `now`, CA:TRUE, keyCertSign (when KeyUsage is present) and
 * pathLenConstraint on every issuer. Returns the path, signing cert first, root last.
 */
async function buildPath(
  signing: X509Certificate,
  pool: X509Certificate[],
  roots: X509Certificate[],
  now: Date,
): Promise<X509Certificate[]> {
  const fail = (why: string): IdentityError =>
    caConfigError(
      `cannot verify the cert with the provided root chain and cert pool: ${why} (check that cert-chain.pem and root-cert.pem belong to ca-cert.pem)`,
    );
  const path: X509Certificate[] = [signing];
  for (let depth = 0; depth < 10; depth++) {
    const current = path.at(-1) as X509Certificate;
    checkValidity(current, now, fail);
    if (roots.some((r) => sameCert(r, current))) return path;
    let parent: X509Certificate | undefined;
    for (const candidate of [...roots, ...pool]) {
      if (candidate.subject !== current.issuer || path.some((c) => sameCert(c, candidate)))
        continue;
      if (await current.verify({ publicKey: candidate.publicKey, signatureOnly: true })) {
        parent = candidate;
        break;
      }
    }
    if (parent === undefined) {
      throw fail(
        `no certificate in the chain or roots issued "${current.subject || "(empty subject)"}" (issuer "${current.issuer}")`,
      );
    }
    const bc = parent.getExtension(BasicConstraintsExtension);
    if (!bc?.ca)
      throw fail(`issuer "${parent.subject}" is not a CA (BasicConstraints CA:TRUE missing)`);
    const ku = parent.getExtension(KeyUsagesExtension);
    if (ku && (ku.usages & KeyUsageFlags.keyCertSign) === 0) {
      throw fail(`issuer "${parent.subject}" lacks the keyCertSign key usage`);
    }
    // pathLen counts the CA certs below the issuer (excluding the leaf-most signing cert's
    // own position when it is itself a CA: Go counts intermediates between).
    if (bc.pathLength !== undefined && path.length - 1 > bc.pathLength) {
      throw fail(`path length constraint of "${parent.subject}" (${bc.pathLength}) exceeded`);
    }
    path.push(parent);
  }
  throw fail("chain longer than 10 certificates");
}

function checkValidity(
  cert: X509Certificate,
  now: Date,
  fail: (why: string) => IdentityError,
): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw fail(`"${cert.subject}" is not valid before ${cert.notBefore.toISOString()}`);
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw fail(`"${cert.subject}" expired at ${cert.notAfter.toISOString()}`);
  }
}

/** Go-style duration text for TTL errors (`2160h0m0s`), so messages match istiod's. */
export function formatDuration(ms: number): string {
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds - h * 3600) / 60);
  const s = totalSeconds - h * 3600 - m * 60;
  const sText = Number.isInteger(s) ? String(s) : String(Number(s.toFixed(3)));
  return `${h}h${m}m${sText}s`;
}

/**
 * Parses `90s`, `15m`, `24h`, `7d`, `1h30m` or a number of ms (what the CLI and configs accept).
 * Returns milliseconds; throws `ERR_IDENTITY_CA_TTL` for anything else.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    if (m.index !== consumed) break;
    consumed += m[0].length;
    const n = Number(m[1]);
    const unit = m[2];
    total +=
      n *
      (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? MINUTE : unit === "h" ? HOUR : DAY);
  }
  if (t === "" || consumed !== t.length) {
    throw new IdentityError(
      "ERR_IDENTITY_CA_TTL",
      `invalid duration ${JSON.stringify(text)}; use forms like 24h, 90m, 7d or 1h30m`,
    );
  }
  return total;
}

function caConfigError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_CA_CONFIG",
    message,
    cause === undefined ? undefined : { cause },
  );
}
