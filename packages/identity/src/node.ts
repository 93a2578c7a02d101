// @ambientkit/identity/node — Node-only pieces: node:tls options for HBONE mTLS, cacerts files.
export {};
