// The one place @peculiar/x509 is imported for its values. Import X.509 classes from here, never
// from "@peculiar/x509" directly: ES modules evaluate their imports in source order, so the
// Reflect shim below runs before tsyringe (pulled in by @peculiar/x509) checks for it.
// `import type` from "@peculiar/x509" is fine anywhere (it is erased).
import { reflectMetadataReady } from "./reflect-shim.js";

export * from "@peculiar/x509";

/** Used binding, so bundlers that honour `sideEffects: false` keep the shim import. */
export const x509Ready: boolean = reflectMetadataReady;
