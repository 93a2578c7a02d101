// The one place @peculiar/x509 is imported for its values. Import X.509 classes from here, never
// from "@peculiar/x509" directly: ES modules evaluate their imports in source order, so the
// Reflect shim below runs before tsyringe (pulled in by @peculiar/x509) checks for it.
// `import type` from "@peculiar/x509" is fine anywhere (it is erased).
import { reflectMetadataReady } from "./reflect-shim.js";

export * from "@peculiar/x509";

/**
 * A used binding alone does not keep the shim: a bundler may skip this re-export module and with it
 * the import above, which is why package.json's `sideEffects` lists this file and reflect-shim.js.
 */
export const x509Ready: boolean = reflectMetadataReady;
