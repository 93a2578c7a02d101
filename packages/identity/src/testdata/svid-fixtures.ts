// Test-only helpers: cheap X.509 certificate generation for SVID tests (keys are made once and
// reused, certificates in a loop). Not exported from the package entry points.
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  type JsonGeneralName,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  type X509Certificate,
  X509CertificateGenerator,
} from "../x509-lib.js";

type WebCryptoKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>;
/** A WebCrypto key pair. */
export interface TestKeys {
  publicKey: WebCryptoKey;
  privateKey: WebCryptoKey;
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

/** A P-256 key pair (WebCrypto). */
export async function p256(): Promise<TestKeys> {
  return (await globalThis.crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as TestKeys;
}

export const HOUR = 3600_000;
/** The fixed clock the fixtures are valid at. */
export const NOW: Date = new Date("2026-06-01T12:00:00Z");

/** Everything that can be set (or mutated) on a certificate. `null` drops the extension. */
export interface CertSpec {
  subject?: string;
  issuer?: { cert: X509Certificate; keys: TestKeys };
  /** Key whose public half is certified; default `issuer` keys when self-signed. */
  keys: TestKeys;
  /** Sign with this private key instead of the issuer's (bad-signature mutations). */
  signWith?: WebCryptoKey;
  /** Override the issuer name written into the certificate. */
  issuerName?: string;
  uris?: string[];
  dns?: string[];
  /** Further SAN entries, e.g. `{ type: "upn", value }` (an otherName). */
  otherSans?: JsonGeneralName[];
  sanCritical?: boolean;
  ca?: boolean | null;
  pathLength?: number;
  keyUsage?: number | null;
  keyUsageCritical?: boolean;
  eku?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
  extra?: Extension[];
  serial?: string;
  /** Signature algorithm; default ECDSA with SHA-256 (use for RSA / Ed25519 issuers). */
  signingAlgorithm?: SigningAlgorithm;
}

export type SigningAlgorithm = Parameters<
  typeof X509CertificateGenerator.create
>[0]["signingAlgorithm"];

let serialCounter = 1;

export async function makeCert(spec: CertSpec): Promise<X509Certificate> {
  const extensions: Extension[] = [];
  if (spec.ca !== null && spec.ca !== undefined) {
    extensions.push(new BasicConstraintsExtension(spec.ca, spec.pathLength, true));
  }
  if (spec.keyUsage !== null && spec.keyUsage !== undefined) {
    extensions.push(new KeyUsagesExtension(spec.keyUsage, spec.keyUsageCritical ?? true));
  }
  if (spec.eku !== null && spec.eku !== undefined)
    extensions.push(new ExtendedKeyUsageExtension(spec.eku, false));
  const names: JsonGeneralName[] = [
    ...(spec.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(spec.otherSans ?? []),
  ];
  if (names.length > 0)
    extensions.push(new SubjectAlternativeNameExtension(names, spec.sanCritical ?? true));
  extensions.push(...(spec.extra ?? []));
  const subject = spec.subject ?? "";
  const issuerName = spec.issuerName ?? (spec.issuer ? spec.issuer.cert.subject : subject);
  const signingKey =
    spec.signWith ?? (spec.issuer ? spec.issuer.keys.privateKey : spec.keys.privateKey);
  return X509CertificateGenerator.create({
    serialNumber:
      spec.serial ?? (serialCounter++).toString(16).padStart(16, "0").replace(/^0/, "1"),
    subject,
    issuer: issuerName,
    notBefore: spec.notBefore ?? new Date(NOW.getTime() - HOUR),
    notAfter: spec.notAfter ?? new Date(NOW.getTime() + 24 * HOUR),
    publicKey: spec.keys.publicKey,
    signingKey,
    signingAlgorithm: spec.signingAlgorithm ?? SIGN,
    extensions,
  });
}

export const LEAF_KU: number = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment;
export const CA_KU: number = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;
export const BOTH_EKU: string[] = [ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth];
export { ExtendedKeyUsage, Extension, KeyUsageFlags };

/** A root, an intermediate and an Istio-profile leaf for `td`, plus the keys used. */
export interface Pki {
  td: string;
  rootKeys: TestKeys;
  intKeys: TestKeys;
  leafKeys: TestKeys;
  root: X509Certificate;
  intermediate: X509Certificate;
  leaf: X509Certificate;
  /** Default leaf spec (valid); spread and override one field to mutate a rule. */
  leafSpec: CertSpec;
  intSpec: CertSpec;
}

export async function makePki(td = "cluster.local", keys?: TestKeys[]): Promise<Pki> {
  const [rootKeys, intKeys, leafKeys] = keys ?? [await p256(), await p256(), await p256()];
  if (!rootKeys || !intKeys || !leafKeys) throw new Error("need three key pairs");
  const root = await makeCert({
    subject: `O=${td}`,
    keys: rootKeys,
    ca: true,
    keyUsage: CA_KU,
    notBefore: new Date(NOW.getTime() - 1000 * HOUR),
    notAfter: new Date(NOW.getTime() + 10000 * HOUR),
  });
  const intSpec: CertSpec = {
    subject: `O=${td}, CN=intermediate`,
    issuer: { cert: root, keys: rootKeys },
    keys: intKeys,
    ca: true,
    keyUsage: CA_KU,
    notBefore: new Date(NOW.getTime() - 100 * HOUR),
    notAfter: new Date(NOW.getTime() + 1000 * HOUR),
  };
  const intermediate = await makeCert(intSpec);
  const leafSpec: CertSpec = {
    issuer: { cert: intermediate, keys: intKeys },
    keys: leafKeys,
    uris: [`spiffe://${td}/ns/default/sa/client`],
    sanCritical: true,
    ca: false,
    keyUsage: LEAF_KU,
    eku: BOTH_EKU,
  };
  const leaf = await makeCert(leafSpec);
  return { td, rootKeys, intKeys, leafKeys, root, intermediate, leaf, leafSpec, intSpec };
}

export function der(cert: X509Certificate): Uint8Array {
  return new Uint8Array(cert.rawData);
}
