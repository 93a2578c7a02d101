// @ambientkit/identity/node — Node-only pieces: node:tls options for HBONE mTLS, cacerts files.
export {
  CACERTS_FILE_NAMES,
  loadCaDirectory,
  type OutputFile,
  writeCaDirectory,
  writeFileAtomic,
  writeFilesAtomic,
  writeWorkloadFiles,
} from "./ca-files.js";
export {
  createHboneTlsServer,
  HBONE_ALPN,
  HBONE_ECDH_CURVES,
  HBONE_TLS_CIPHERSUITES,
  type HboneClientTlsConfig,
  type HboneServerTlsConfig,
  type HboneTlsCommon,
  type HboneTlsServerOptions,
  hboneClientTlsOptions,
  hboneServerTlsOptions,
  type LocalAddress,
  type MtlsIdentity,
  peerIdentity,
  type VerifiedPeer,
  verifyHboneClient,
} from "./node-tls.js";
