// node:http / node:http2 handlers, Express 5 middleware and a Fastify 5 plugin: all the same
// core, answering a deny as Envoy's RBAC filter does (403, `RBAC: access denied`).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { type AppDecision, type Authorizer, decideWellFormed } from "../authorizer.js";
import type { RequestFacts } from "../request.js";
import { type NodeAdapterOptions, nodeRequestFacts, parsedStrictly } from "./facts.js";

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
  let facts: RequestFacts | Promise<RequestFacts>;
  let strict = false;
  try {
    facts = nodeRequestFacts(req, options, url);
    strict = parsedStrictly(req);
  } catch {
    facts = unreadable(req);
  }
  // No closure on the synchronous path: it runs once per request.
  if (facts instanceof Promise)
    return facts.then(
      (f) => decideAndAttach(authorizer, req, f, attachToReq, strict),
      () => decideAndAttach(authorizer, req, unreadable(req), attachToReq, false),
    );
  return decideAndAttach(authorizer, req, facts, attachToReq, strict);
}

function decideAndAttach(
  authorizer: Authorizer,
  req: AnyReq,
  facts: RequestFacts,
  attachToReq: boolean,
  strict: boolean,
): AppDecision | Promise<AppDecision> {
  // Headers Node's strict parser accepted are well-formed: they need no second scan.
  const d = strict ? decideWellFormed(authorizer, facts) : authorizer.decide(facts);
  if (!attachToReq) return d;
  if (d instanceof Promise)
    return d.then((x) => {
      (req as AnyReq & WithAuthz).authz = x;
      return x;
    });
  (req as AnyReq & WithAuthz).authz = d;
  return d;
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
  const go = (d: AppDecision, req: Req, res: Res): void => {
    if (!d.allowed) sendDeny(res, d);
    else handler(req as Req & WithAuthz, res);
  };
  return (req, res) => {
    const d = decideNodeRequest(authorizer, req, options);
    if (d instanceof Promise) void d.then((x) => go(x, req, res));
    else go(d, req, res);
  };
}

/** The parts of Express's req the middleware reads (no runtime dependency on express). */
interface ExpressLikeRequest extends IncomingMessage, WithAuthz {
  originalUrl?: string;
}

/**
 * Express requests carry their decision in `res.locals` under a symbol, read through a `req.authz`
 * getter on the app's request prototype. Express moves every `req` onto its app's request
 * prototype, which leaves each request object with a property layout of its own: a property added
 * to it makes V8 copy that layout. `res.locals` is a dictionary (Object.create(null)), where an
 * entry is a plain insertion; a WeakMap keyed by `req` was dearer still (its table is walked at
 * every scavenge).
 */
const DECISION = Symbol("@ambientkit/authz-http decision");
type Locals = { [DECISION]?: AppDecision };
const expressAccessor: PropertyDescriptor = {
  get(this: { res?: { locals?: Locals } }): AppDecision | undefined {
    return this.res?.locals?.[DECISION];
  },
  set(this: { res?: { locals?: Locals } }, d: AppDecision) {
    const locals = this.res?.locals;
    if (locals) locals[DECISION] = d;
  },
  configurable: true,
  enumerable: false,
};

/** Whether `proto` carries the getter, defining it when it is an Express app's request prototype. */
function expressProtoReady(proto: object | null, req: ExpressLikeRequest): boolean {
  if (proto === null) return false;
  const own = Object.getOwnPropertyDescriptor(proto, "authz");
  if (own?.get === expressAccessor.get) return true;
  // Only an app's own request object (`req.app.request` or one inheriting from it), never
  // IncomingMessage.prototype, which every server of the process shares.
  const app = (req as { app?: { request?: object } }).app;
  if (own !== undefined || app?.request === undefined) return false;
  const { res } = req as { res?: { locals?: unknown } };
  if (typeof res?.locals !== "object" || res.locals === null) return false;
  if (proto !== app.request && !Object.prototype.isPrototypeOf.call(app.request, proto))
    return false;
  Object.defineProperty(proto, "authz", expressAccessor);
  return true;
}

/** Express 5 middleware: `app.use(expressAuthz(authorizer))`; the decision is `req.authz`. */
export function expressAuthz(
  authorizer: Authorizer,
  options: NodeAdapterOptions = {},
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  // The last request prototype seen, and whether it has the getter: one app, one prototype.
  let lastProto: object | null | undefined;
  let viaProto = false;
  return (req, res, next) => {
    const r = req as ExpressLikeRequest;
    const proto = Object.getPrototypeOf(r) as object | null;
    if (proto !== lastProto) {
      viaProto = expressProtoReady(proto, r);
      lastProto = proto;
    }
    let d: AppDecision | Promise<AppDecision>;
    try {
      d = decideNodeRequest(authorizer, r, options, r.originalUrl ?? r.url, false);
    } catch (err) {
      next(err);
      return;
    }
    if (d instanceof Promise)
      d.then((x) => {
        attachExpress(r, res, x, viaProto);
        expressGo(x, res, next);
      }, next);
    else {
      attachExpress(r, res, d, viaProto);
      expressGo(d, res, next);
    }
  };
}

function attachExpress(
  req: ExpressLikeRequest,
  res: ServerResponse,
  d: AppDecision,
  viaProto: boolean,
): void {
  const locals = viaProto ? (res as { locals?: Locals }).locals : undefined;
  if (locals) locals[DECISION] = d;
  else req.authz = d;
}

function expressGo(d: AppDecision, res: ServerResponse, next: (err?: unknown) => void): void {
  if (d.allowed) next();
  else sendDeny(res, d);
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
      // On Fastify's request (decorated, so its shape is stable), not on the raw one.
      const d = decideNodeRequest(authorizer, request.raw, adapter, undefined, false);
      if (d instanceof Promise) void d.then((x) => fastifyGo(x, request, reply, done));
      else fastifyGo(d, request, reply, done);
    });
  },
  {
    // fastify-plugin's conventions, set directly so fastify-plugin need not be installed.
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "@ambientkit/authz-http",
    [Symbol.for("plugin-meta")]: { name: "@ambientkit/authz-http", fastify: "5.x" },
  },
);

function fastifyGo(
  d: AppDecision,
  request: FastifyLikeRequest,
  reply: FastifyLikeReply,
  done: () => void,
): void {
  request.authz = d;
  if (d.allowed) done();
  else reply.code(d.status).header("content-type", "text/plain").send(d.body);
}
