// node:http / node:http2 handlers, Express 5 middleware and a Fastify 5 plugin: all the same
// core, answering a deny as Envoy's RBAC filter does (403, `RBAC: access denied`).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { AppDecision, Authorizer } from "../authorizer.js";
import type { RequestFacts } from "../request.js";
import { type NodeAdapterOptions, nodeRequestFacts } from "./facts.js";

/** The decision a handler reads: `req.authz` (node:http, Express) / `request.authz` (Fastify). */
export interface WithAuthz {
  authz?: AppDecision;
}

type AnyReq = IncomingMessage | Http2ServerRequest;

/**
 * The decision on a request (node:http, Express `req`, Fastify `request`), typed, without
 * augmenting a framework's Request type; undefined if no adapter decided it.
 */
export function authzOf(req: object): AppDecision | undefined {
  return (req as WithAuthz).authz ?? undefined;
}
type AnyRes = ServerResponse | Http2ServerResponse;

/** Decides a node request; never rejects (a failure is a deny value). */
export function authorizeNodeRequest(
  authorizer: Authorizer,
  req: AnyReq,
  options: NodeAdapterOptions = {},
  url?: string,
): Promise<AppDecision> {
  const d = decideNodeRequest(authorizer, req, options, url);
  return d instanceof Promise ? d : Promise.resolve(d);
}

/** As authorizeNodeRequest, synchronous when nothing asynchronous (mTLS check, JWT) is needed. */
export function decideNodeRequest(
  authorizer: Authorizer,
  req: AnyReq,
  options: NodeAdapterOptions = {},
  url?: string,
  attachToReq = true,
): AppDecision | Promise<AppDecision> {
  const attach = (d: AppDecision): AppDecision => {
    if (attachToReq) (req as AnyReq & WithAuthz).authz = d;
    return d;
  };
  const decide = (facts: RequestFacts): AppDecision | Promise<AppDecision> => {
    const d = authorizer.decide(facts);
    return d instanceof Promise ? d.then(attach) : attach(d);
  };
  let facts: RequestFacts | Promise<RequestFacts>;
  try {
    facts = nodeRequestFacts(req, options, url);
  } catch {
    facts = unreadable(req);
  }
  return facts instanceof Promise
    ? facts.then(decide, () => decide(unreadable(req)))
    : decide(facts);
}

/** What is left of a request whose attributes could not be read: it decides as a deny. */
function unreadable(req: AnyReq): RequestFacts {
  return {
    method: req.method ?? "",
    authority: "",
    path: "",
    headers: {},
    sourceIp: req.socket?.remoteAddress ?? "",
    destinationIp: "",
    destinationPort: 0,
  };
}

/** Writes the refusal. */
export function sendDeny(res: AnyRes, d: Pick<AppDecision, "status" | "body">): void {
  const r = res as ServerResponse;
  if (r.headersSent) {
    r.destroy();
    return;
  }
  r.writeHead(d.status, {
    "content-type": "text/plain",
    "content-length": Buffer.byteLength(d.body),
  });
  r.end(d.body);
}

/** Wraps a node:http or node:http2 (compat API) request handler. */
export function withAuthz<Req extends AnyReq, Res extends AnyRes>(
  authorizer: Authorizer,
  handler: (req: Req & WithAuthz, res: Res) => void,
  options: NodeAdapterOptions = {},
): (req: Req, res: Res) => void {
  return (req, res) => {
    const go = (d: AppDecision): void => {
      if (!d.allowed) sendDeny(res, d);
      else handler(req as Req & WithAuthz, res);
    };
    const d = decideNodeRequest(authorizer, req, options);
    if (d instanceof Promise) void d.then(go);
    else go(d);
  };
}

/** The parts of Express's req the middleware reads (no runtime dependency on express). */
interface ExpressLikeRequest extends IncomingMessage, WithAuthz {
  originalUrl?: string;
}

/** Express 5 middleware: `app.use(expressAuthz(authorizer))`; the decision is `req.authz`. */
export function expressAuthz(
  authorizer: Authorizer,
  options: NodeAdapterOptions = {},
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const r = req as ExpressLikeRequest;
    const go = (d: AppDecision): void => {
      if (d.allowed) next();
      else sendDeny(res, d);
    };
    let d: AppDecision | Promise<AppDecision>;
    try {
      d = decideNodeRequest(authorizer, r, options, r.originalUrl ?? r.url);
    } catch (err) {
      next(err);
      return;
    }
    if (d instanceof Promise) d.then(go, next);
    else go(d);
  };
}

/** Structural Fastify types, so `./node` loads without fastify installed. */
interface FastifyLikeRequest {
  readonly raw: IncomingMessage | Http2ServerRequest;
  authz?: AppDecision | null;
}
interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  header(name: string, value: string): FastifyLikeReply;
  send(body: string): FastifyLikeReply;
}
interface FastifyLikeInstance {
  decorateRequest(name: "authz", value: null): unknown;
  addHook(
    name: "onRequest",
    hook: (request: FastifyLikeRequest, reply: FastifyLikeReply, done: () => void) => void,
  ): unknown;
}

export interface FastifyAuthzOptions extends NodeAdapterOptions {
  readonly authorizer: Authorizer;
}

/**
 * Fastify 5 plugin. Marked with fastify-plugin's `skip-override` so its onRequest hook applies to
 * the context it is registered in and that context's children, not to siblings: register it at the
 * root to protect every route, inside a child plugin to protect only that plugin's routes.
 * The decision is `request.authz`.
 */
export const fastifyAuthz: ((
  instance: FastifyLikeInstance,
  opts: FastifyAuthzOptions,
) => Promise<void>) &
  Record<symbol, unknown> = Object.assign(
  async (instance: FastifyLikeInstance, opts: FastifyAuthzOptions): Promise<void> => {
    const { authorizer, ...adapter } = opts;
    instance.decorateRequest("authz", null);
    // Callback style: a decision available in the same tick continues in the same tick.
    instance.addHook("onRequest", (request, reply, done) => {
      const go = (d: AppDecision): void => {
        request.authz = d;
        if (d.allowed) done();
        else reply.code(d.status).header("content-type", "text/plain").send(d.body);
      };
      // On Fastify's request (decorated, so its shape is stable), not on the raw one.
      const d = decideNodeRequest(authorizer, request.raw, adapter, undefined, false);
      if (d instanceof Promise) void d.then(go);
      else go(d);
    });
  },
  {
    // fastify-plugin's conventions, set directly so fastify-plugin need not be installed.
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "@ambientkit/authz-http",
    [Symbol.for("plugin-meta")]: { name: "@ambientkit/authz-http", fastify: "5.x" },
  },
);
