// @ambientkit/crds — typed Istio and Gateway API CRDs, and offline validation as the Kubernetes API
// server and istiod's webhook would. Universal: nothing here imports from node:.
import * as gatewayApi from "./gen/gateway-api-types.js";
import * as istioMaster from "./gen/istio-master-types.js";
import * as istio from "./gen/istio-types.js";

export type { CrdKindData, CrdSetData, CrdVersionData } from "./crd-model.js";
export { type ObjectMeta, ObjectMetaSchema } from "./object-meta.js";
// The validator, as the `./validate` subpath exports it.
export * from "./validate-entry.js";
/**
 * Generated TS types and zod schemas: Istio (stable release 1.30, and master) and Gateway API
 * (experimental channel, a superset of standard).
 */
export { gatewayApi, istio, istioMaster };
