// The subset of Gateway API HTTPRoute (gateway.networking.k8s.io/v1) the reference waypoint routes
// with. Objects are validated against the full CRD schema by @ambientkit/xds-types first.

export interface HttpHeaderMatch {
  type?: "Exact" | "RegularExpression";
  name: string;
  value: string;
}
export interface HttpRouteMatch {
  path?: { type?: "Exact" | "PathPrefix" | "RegularExpression"; value?: string };
  headers?: HttpHeaderMatch[];
  queryParams?: { type?: "Exact" | "RegularExpression"; name: string; value: string }[];
  method?: string;
}
export interface HttpHeaderModifier {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}
export interface HttpRouteFilter {
  type: string;
  requestHeaderModifier?: HttpHeaderModifier;
  responseHeaderModifier?: HttpHeaderModifier;
}
export interface HttpBackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: HttpRouteFilter[];
}
export interface HttpRouteRule {
  name?: string;
  matches?: HttpRouteMatch[];
  filters?: HttpRouteFilter[];
  backendRefs?: HttpBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
}
export interface HttpRoute {
  apiVersion: string;
  kind: "HTTPRoute";
  metadata?: { name?: string; namespace?: string };
  spec: {
    parentRefs?: {
      group?: string;
      kind?: string;
      name: string;
      namespace?: string;
      port?: number;
      sectionName?: string;
    }[];
    hostnames?: string[];
    rules?: HttpRouteRule[];
  };
}
