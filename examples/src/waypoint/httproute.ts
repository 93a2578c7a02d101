// Gateway API HTTPRoute matching for the reference waypoint: which route rule applies to a request
// (path Exact/PathPrefix/RegularExpression, headers, query params, method; Gateway API precedence),
// weighted backendRef choice, header modifiers and timeouts.
import type { IncomingHttpHeaders } from "node:http";
import type {
  HttpBackendRef,
  HttpHeaderModifier,
  HttpRoute,
  HttpRouteMatch,
  HttpRouteRule,
} from "../mesh/httproute-types.js";

/** The request facts a match looks at. */
export interface RouteRequest {
  method: string;
  /** Path with query, as received (`/a/b?x=1`). */
  url: string;
  headers: IncomingHttpHeaders;
}

/** A matched rule with its route and the match that selected it. */
export interface RouteChoice {
  route: HttpRoute;
  rule: HttpRouteRule;
  ruleIndex: number;
  /** `namespace/name` of the route. */
  routeKey: string;
}

function headerValue(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v.join(",") : v;
}

/** True when `m` matches the request (all of its conditions; an empty match is `PathPrefix /`). */
export function matches(m: HttpRouteMatch, req: RouteRequest): boolean {
  const u = new URL(req.url, "http://x");
  const path = u.pathname;
  const p = m.path ?? { type: "PathPrefix", value: "/" };
  const value = p.value ?? "/";
  switch (p.type ?? "PathPrefix") {
    case "Exact":
      if (path !== value) return false;
      break;
    case "PathPrefix": {
      const prefix = value.endsWith("/") && value !== "/" ? value.slice(0, -1) : value;
      if (!(prefix === "/" || path === prefix || path.startsWith(`${prefix}/`))) return false;
      break;
    }
    case "RegularExpression":
      if (!new RegExp(`^(?:${value})$`).test(path)) return false;
      break;
  }
  if (m.method !== undefined && m.method.toUpperCase() !== req.method.toUpperCase()) return false;
  for (const h of m.headers ?? []) {
    const got = headerValue(req.headers, h.name);
    if (got === undefined) return false;
    if (
      (h.type ?? "Exact") === "Exact" ? got !== h.value : !new RegExp(`^(?:${h.value})$`).test(got)
    )
      return false;
  }
  for (const q of m.queryParams ?? []) {
    const got = u.searchParams.get(q.name);
    if (got === null) return false;
    if (
      (q.type ?? "Exact") === "Exact" ? got !== q.value : !new RegExp(`^(?:${q.value})$`).test(got)
    )
      return false;
  }
  return true;
}

/** Gateway API precedence: exact path > longer prefix > method > more headers > more query params. */
function precedence(m: HttpRouteMatch): number[] {
  const p = m.path ?? { type: "PathPrefix", value: "/" };
  return [
    (p.type ?? "PathPrefix") === "Exact" ? 1 : 0,
    (p.value ?? "/").length,
    m.method ? 1 : 0,
    m.headers?.length ?? 0,
    m.queryParams?.length ?? 0,
  ];
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (b[i] ?? 0) - (a[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The rule that handles `req` among `routes` (already filtered to the parent), or undefined. */
export function selectRule(
  routes: readonly HttpRoute[],
  req: RouteRequest,
): RouteChoice | undefined {
  let best: { choice: RouteChoice; prec: number[]; order: number } | undefined;
  let order = 0;
  for (const route of routes) {
    const key = `${route.metadata?.namespace ?? "default"}/${route.metadata?.name ?? ""}`;
    (route.spec.rules ?? []).forEach((rule, ruleIndex) => {
      const ms = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
      for (const m of ms) {
        order++;
        if (!matches(m, req)) continue;
        const prec = precedence(m);
        if (!best || compare(prec, best.prec) < 0) {
          best = { choice: { route, rule, ruleIndex, routeKey: key }, prec, order };
        }
      }
    });
  }
  return best?.choice;
}

/** Weighted choice among backendRefs (weight default 1, 0 never chosen). */
export function pickBackend(
  refs: readonly HttpBackendRef[],
  random: () => number,
): HttpBackendRef | undefined {
  const total = refs.reduce((n, r) => n + (r.weight ?? 1), 0);
  if (total <= 0) return undefined;
  let r = random() * total;
  for (const ref of refs) {
    r -= ref.weight ?? 1;
    if (r < 0) return ref;
  }
  return refs.at(-1);
}

/** Applies a header modifier (set, add, remove) to a header record (lower-case names). */
export function applyHeaderModifier(
  headers: Record<string, string | string[] | undefined>,
  mod: HttpHeaderModifier | undefined,
): void {
  if (!mod) return;
  for (const s of mod.set ?? []) headers[s.name.toLowerCase()] = s.value;
  for (const a of mod.add ?? []) {
    const k = a.name.toLowerCase();
    const prev = headers[k];
    headers[k] =
      prev === undefined
        ? a.value
        : Array.isArray(prev)
          ? [...prev, a.value]
          : `${prev},${a.value}`;
  }
  for (const r of mod.remove ?? []) delete headers[r.toLowerCase()];
}

/** Gateway API duration (`10s`, `500ms`, `1m`, `1h30m`) to ms; undefined when absent or zero. */
export function parseGatewayDuration(d: string | undefined): number | undefined {
  if (!d) return undefined;
  let ms = 0;
  const re = /(\d+)(h|ms|m|s)/g;
  for (let m = re.exec(d); m !== null; m = re.exec(d)) {
    const n = Number(m[1]);
    ms += m[2] === "h" ? n * 3_600_000 : m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1000 : n;
  }
  return ms > 0 ? ms : undefined;
}
