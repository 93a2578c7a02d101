// Web-standard adapter: `Request` → decision → `Response | undefined`, for any runtime with fetch
// (Node, Deno, Bun, Workers), and a Hono middleware on top of it.
import type { AppDecision, Authorizer } from "./authorizer.js";
import { type ConnectionInfo, requestFactsFromWeb } from "./request.js";

/** The refusal Envoy's RBAC filter sends (403 `RBAC: access denied`; 401 for a bad JWT). */
export function denyResponse(d: Pick<AppDecision, "status" | "body">): Response {
  return new Response(d.body, { status: d.status, headers: { "content-type": "text/plain" } });
}

/** Decides a web Request; the response is set when the request must be refused. */
export async function authorizeRequest(
  authorizer: Authorizer,
  request: Request,
  conn: ConnectionInfo,
): Promise<{ decision: AppDecision; response?: Response }> {
  let facts: ReturnType<typeof requestFactsFromWeb>;
  try {
    facts = requestFactsFromWeb(request, conn);
  } catch {
    // A request we cannot even read is decided on what is left: an empty path is invalid-request.
    facts = {
      method: request.method,
      authority: "",
      path: "",
      headers: {},
      sourceIp: conn.remoteAddress,
      destinationIp: conn.localAddress ?? "0.0.0.0",
      destinationPort: conn.localPort ?? 0,
    };
  }
  const decision = await authorizer.authorize(facts);
  return decision.allowed ? { decision } : { decision, response: denyResponse(decision) };
}

/** The bits of a Hono context the middleware uses (no runtime dependency on hono). */
export interface HonoLikeContext {
  readonly req: { readonly raw: Request };
  set(key: "authz", value: AppDecision): void;
}

/**
 * Hono middleware. `connection(c)` gives the peer address: with @hono/node-server,
 * `(c) => ({ remoteAddress: getConnInfo(c).remote.address ?? "" , … })`; each runtime has its own.
 * The decision is at `c.get("authz")`.
 */
export function honoAuthz<C extends HonoLikeContext>(
  authorizer: Authorizer,
  connection: (c: C) => ConnectionInfo,
): (c: C, next: () => Promise<void>) => Promise<Response | undefined> {
  return async (c, next) => {
    let conn: ConnectionInfo;
    try {
      conn = connection(c);
    } catch {
      conn = { remoteAddress: "" };
    }
    const { decision, response } = await authorizeRequest(authorizer, c.req.raw, conn);
    c.set("authz", decision);
    if (response) return response;
    await next();
    return undefined;
  };
}
