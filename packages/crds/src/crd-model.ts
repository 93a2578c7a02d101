/** One version of a kind in a schema set, as the CRD declares it. */
export interface CrdVersionData {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated?: boolean;
  deprecationWarning?: string;
  /** Index into the generated schema texts. */
  schema: number;
}

/** One kind (one CRD) in a schema set. */
export interface CrdKindData {
  group: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  versions: CrdVersionData[];
}

/** One schema set: an Istio release or a Gateway API channel. */
export interface CrdSetData {
  /** e.g. "istio/1.30", "istio/master", "gateway-api/standard". */
  id: string;
  family: "istio" | "gateway-api";
  /** Gateway API bundle version, e.g. "v1.6.1". */
  bundle?: string;
  kinds: CrdKindData[];
}
