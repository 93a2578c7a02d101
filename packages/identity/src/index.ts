// @ambientkit/identity — SPIFFE IDs, X.509-SVIDs, trust bundles, an Istio-compatible CA, rotation.
// The root entry is universal (no node: imports); Node-only pieces are exported from "./node".

export { IdentityError, type IdentityErrorCode } from "./errors.js";

// --- spiffe ids, svid rules, bundles, verification (identity-core) ---

// --- keys, csrs, ca, rotation (identity-ca) ---
