// @ambientkit/identity — SPIFFE IDs, X.509-SVIDs, trust bundles, an Istio-compatible CA, rotation.
// The root entry is universal (no node: imports); Node-only pieces are exported from "./node".

export {
  type JwtAuthority,
  TrustBundle,
  type TrustBundleInit,
  TrustBundleSet,
  type TrustBundleSource,
} from "./bundle.js";
export { IdentityError, type IdentityErrorCode } from "./errors.js";
// --- spiffe ids, svid rules, bundles, verification (identity-core) ---
export {
  base64Decode,
  base64Encode,
  decodePem,
  decodePemCertificates,
  decodePemCsr,
  decodePemPrivateKey,
  encodePem,
  encodePemCertificates,
  type PemBlock,
  type PemPrivateKeyLabel,
} from "./pem.js";
export {
  checkSpiffeId,
  checkSpiffePath,
  checkSpiffePathSegment,
  checkTrustDomainName,
  DEFAULT_TRUST_DOMAIN,
  type IstioIdentity,
  isSpiffeId,
  istioIdentity,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  normalizeSpiffeId,
  parseIstioIdentity,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  type SpiffeIdErrorCode,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  TrustDomain,
  TrustDomainAliases,
  tryParseSpiffeId,
} from "./spiffe-id.js";
export {
  type CertificateFacts,
  certificateFacts,
  checkX509SvidLeaf,
  checkX509SvidSigningCert,
  KEY_USAGE,
  parseCertificate,
  parseX509Svid,
  SVID_RULES,
  type SvidCheckOptions,
  type SvidRule,
  spiffeIdFromCertificate,
  svidError,
  type X509Svid,
} from "./svid.js";
export { type VerifiedSvid, type VerifyX509SvidOptions, verifyX509Svid } from "./verify.js";

// --- keys, csrs, ca, rotation (identity-ca) ---

export {
  type CacertsFiles,
  type CaRuntime,
  type CaTtlPolicy,
  CertificateAuthority,
  CLOCK_SKEW_GRACE_PERIOD_MS,
  type CreateIntermediateOptions,
  type CreateRootOptions,
  DEFAULT_INTERMEDIATE_TTL_MS,
  DEFAULT_WORKLOAD_CERT_TTL_MS,
  formatDuration,
  type IssuedCertificate,
  type IssuedKeyAndCertificate,
  MAX_WORKLOAD_CERT_TTL_MS,
  parseDuration,
  SELF_SIGNED_CA_CERT_TTL_MS,
  type SignOptions,
} from "./ca.js";
export { type CertificateSigningRequest, type CsrKeyInfo, createCsr, parseCsr } from "./csr.js";
export {
  DEFAULT_KEY_ALGORITHM,
  exportPrivateKeyDer,
  exportPrivateKeyPem,
  exportPublicKeyDer,
  exportPublicKeyPem,
  generateKeyPair,
  importPrivateKeyDer,
  importPrivateKeyPem,
  isKeyAlgorithm,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  type KeyPair,
  keyAlgorithmOf,
  type SigningAlgorithm,
  samePublicKey,
  signingAlgorithm,
  type WebCryptoKey,
} from "./keys.js";
export {
  type CertificateEvent,
  CertificateManager,
  type CertificateManagerOptions,
  DEFAULT_INITIAL_BACKOFF_MS,
  DEFAULT_MAX_BACKOFF_MS,
  DEFAULT_REFRESH_RATIO,
  type ManagedCertificate,
  type RotationClock,
} from "./rotation.js";
