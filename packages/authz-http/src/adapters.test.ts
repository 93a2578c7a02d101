// Every adapter on a real server on 127.0.0.1, called by a real client: the same policies must give
// the same answers everywhere, denies must look like Envoy's, and handlers must see the decision.
import { execFile } from "node:child_process";
import { createServer as createHttpServer, IncomingMessage, type Server } from "node:http";
import { createServer as createHttp2Server, connect as http2Connect } from "node:http2";
import { promisify } from "node:util";
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  file_google_protobuf_wrappers,
  StringValueSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { serve } from "@hono/node-server";
import { getConnInfo } from "@hono/node-server/conninfo";
import express from "express";
import Fastify from "fastify";
import { type Context, Hono } from "hono";
import { afterAll, describe, expect, it } from "vitest";
import { listen, testAuthorizer } from "./harness.testutil.js";
import { type AppDecision, DENY_BODY, honoAuthz } from "./index.js";
import {
  connectAuthz,
  expressAuthz,
  fastifyAuthz,
  grpcAuthzInterceptor,
  grpcDecision,
  withAuthz,
} from "./node/index.js";

const run = promisify(execFile);
const closers: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function curl(url: string, ...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", [
    "-s",
    "--path-as-is",
    "-w",
    "\n%{http_code}",
    ...args,
    url,
  ]);
  const i = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) };
}

/** The HTTP matrix every HTTP adapter must answer alike. */
async function httpMatrix(base: string): Promise<void> {
  const ok = await fetch(`${base}/hello`);
  expect(ok.status).toBe(200);
  expect(await ok.json()).toEqual({ decidedBy: "shop/allow-reads", rule: 0, decision: "allow" });

  const post = await fetch(`${base}/hello`, { method: "POST" });
  expect(post.status).toBe(403);
  expect(await post.text()).toBe(DENY_BODY);
  expect(post.headers.get("content-type")).toMatch(/^text\/plain/);

  const admin = await fetch(`${base}/admin/users`);
  expect(admin.status).toBe(403);
  expect(await admin.text()).toBe("RBAC: access denied");
}

function decisionBody(d: AppDecision | undefined | null) {
  return { decidedBy: d?.decidedBy, rule: d?.rule, decision: d?.decision };
}

describe("HTTP adapters on real servers", () => {
  it("Express 5 middleware: allow, 403 in Envoy's words, req.authz, raw path normalised", async () => {
    const { authorizer } = await testAuthorizer();
    const app = express();
    app.use(expressAuthz(authorizer));
    app.all("/{*any}", (req, res) => {
      res.json(decisionBody((req as { authz?: AppDecision }).authz));
    });
    const server = createHttpServer(app);
    const port = await listen(server);
    closers.push(() => server.close());
    await httpMatrix(`http://127.0.0.1:${port}`);
    // curl sends the dot segments as typed; Envoy's BASE normalisation makes this /admin.
    const dots = await curl(`http://127.0.0.1:${port}/public/../admin`);
    expect(dots.status).toBe(403);
    expect(dots.body).toBe(DENY_BODY);
    const encoded = await curl(`http://127.0.0.1:${port}/%61dmin`);
    expect(encoded.status).toBe(403);
  });

  it("Express: req.authz comes from the app's request prototype, per request and per app; node's IncomingMessage is left alone", async () => {
    const { authorizer } = await testAuthorizer();
    const seen: unknown[] = [];
    const apps = [express(), express()];
    const ports: number[] = [];
    for (const [i, app] of apps.entries()) {
      app.use(expressAuthz(authorizer));
      app.all("/{*any}", (req, res) => {
        const d = (req as { authz?: AppDecision }).authz;
        seen.push(d);
        res.json({ app: i, path: d?.request.path, own: Object.hasOwn(req, "authz") });
      });
      const server = createHttpServer(app);
      ports.push(await listen(server));
      closers.push(() => server.close());
    }
    for (const path of ["/a", "/b"])
      for (const [i, port] of ports.entries()) {
        const r = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(await r.json()).toEqual({ app: i, path, own: false });
      }
    // Four requests, four decisions: none served another request's.
    expect(new Set(seen).size).toBe(4);
    expect(Object.getOwnPropertyDescriptor(IncomingMessage.prototype, "authz")).toBeUndefined();
  });

  it("Fastify 5 plugin: skip-override at the root; encapsulated registration protects only its context", async () => {
    const { authorizer } = await testAuthorizer();
    const root = Fastify();
    await root.register(fastifyAuthz, { authorizer });
    root.all("/*", async (request) =>
      decisionBody((request as unknown as { authz: AppDecision }).authz),
    );
    await root.listen({ port: 0, host: "127.0.0.1" });
    closers.push(() => root.close());
    const port = (root.server.address() as { port: number }).port;
    await httpMatrix(`http://127.0.0.1:${port}`);

    // Encapsulation: the plugin registered inside /protected does not touch the sibling /open.
    const app = Fastify();
    await app.register((child, _opts, done) => {
      child.register(fastifyAuthz, { authorizer });
      child.post("/protected", async () => "reached");
      done();
    });
    app.post("/open", async (request) => ({
      authz: (request as unknown as { authz?: unknown }).authz ?? "none",
    }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    closers.push(() => app.close());
    const p2 = (app.server.address() as { port: number }).port;
    const protectedRes = await fetch(`http://127.0.0.1:${p2}/protected`, { method: "POST" });
    expect(protectedRes.status).toBe(403);
    const open = await fetch(`http://127.0.0.1:${p2}/open`, { method: "POST" });
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ authz: "none" });
  });

  it("Hono on @hono/node-server: web Request adapter, c.get('authz')", async () => {
    const { authorizer, logger } = await testAuthorizer();
    const app = new Hono<{ Variables: { authz: AppDecision } }>();
    app.use(
      "*",
      honoAuthz<Context<{ Variables: { authz: AppDecision } }>>(authorizer, (c) => {
        const info = getConnInfo(c);
        return { remoteAddress: info.remote.address ?? "", localAddress: "127.0.0.1" };
      }),
    );
    app.all("*", (c) => c.json(decisionBody(c.get("authz"))));
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((r) => server.once("listening", () => r()));
    closers.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    await httpMatrix(`http://127.0.0.1:${port}`).catch((e) => {
      throw new Error(logger.lines.join("\n"), { cause: e });
    });
  });

  it("node:http handler and node:http2 (compat API) handler", async () => {
    const { authorizer } = await testAuthorizer();
    const h1: Server = createHttpServer(
      withAuthz(authorizer, (req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(decisionBody(req.authz)));
      }),
    );
    const p1 = await listen(h1);
    closers.push(() => h1.close());
    await httpMatrix(`http://127.0.0.1:${p1}`);

    const h2 = createHttp2Server(
      withAuthz(authorizer, (req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(decisionBody(req.authz)));
      }),
    );
    const p2 = await listen(h2);
    closers.push(() => h2.close());
    const session = http2Connect(`http://127.0.0.1:${p2}`);
    closers.push(() => session.close());
    const call = (method: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ":method": method, ":path": path });
        let status = 0;
        let body = "";
        s.on("response", (h) => {
          status = Number(h[":status"]);
        });
        s.setEncoding("utf8");
        s.on("data", (c: string) => {
          body += c;
        });
        s.on("end", () => resolve({ status, body }));
        s.on("error", reject);
        s.end();
      });
    expect(await call("GET", "/hello")).toEqual({
      status: 200,
      body: JSON.stringify({ decidedBy: "shop/allow-reads", rule: 0, decision: "allow" }),
    });
    expect(await call("POST", "/hello")).toEqual({ status: 403, body: DENY_BODY });
    expect(await call("GET", "/admin/../admin")).toEqual({ status: 403, body: DENY_BODY });
    // curl over h2 prior knowledge as a second client.
    const viaCurl = await curl(`http://127.0.0.1:${p2}/admin`, "--http2-prior-knowledge");
    expect(viaCurl).toEqual({ status: 403, body: DENY_BODY });
  });
});

// A tiny proto service built from a descriptor, so no generated code is needed.
function echoService(): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "test/echo.proto",
    package: "test",
    dependency: ["google/protobuf/wrappers.proto"],
    syntax: "proto3",
    service: [
      {
        name: "Echo",
        method: ["Allowed", "Denied"].map((name) => ({
          name,
          inputType: ".google.protobuf.StringValue",
          outputType: ".google.protobuf.StringValue",
        })),
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined,
  );
  const svc = registry.getService("test.Echo");
  if (!svc) throw new Error("test.Echo not built");
  return svc;
}

describe("gRPC adapters", () => {
  it("@grpc/grpc-js server interceptor with a grpc-js client: PERMISSION_DENIED (7) and the decision in metadata", async () => {
    const { authorizer } = await testAuthorizer();
    const server = new grpc.Server({ interceptors: [await grpcAuthzInterceptor(authorizer)] });
    const json = {
      serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
      deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
    };
    const definition = Object.fromEntries(
      ["Allowed", "Denied"].map((m) => [
        m,
        {
          path: `/test.Echo/${m}`,
          requestStream: false,
          responseStream: false,
          requestSerialize: json.serialize,
          requestDeserialize: json.deserialize,
          responseSerialize: json.serialize,
          responseDeserialize: json.deserialize,
        },
      ]),
    ) as grpc.ServiceDefinition;
    const handler: grpc.handleUnaryCall<unknown, unknown> = (call, cb) =>
      cb(null, { got: call.request, authz: grpcDecision(call.metadata) });
    server.addService(definition, { Allowed: handler, Denied: handler });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    closers.push(() => server.forceShutdown());
    const Client = grpc.makeGenericClientConstructor(definition, "Echo");
    const client = new Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Record<
      string,
      (
        req: unknown,
        md: grpc.Metadata,
        cb: (e: grpc.ServiceError | null, r?: unknown) => void,
      ) => void
    >;
    closers.push(() => (client as unknown as grpc.Client).close());
    const call = (m: string, md = new grpc.Metadata()) =>
      new Promise<{ err: grpc.ServiceError | null; res?: unknown }>((resolve) =>
        client[m]?.({ q: 1 }, md, (err, res) => resolve({ err, res })),
      );
    const allowed = await call("Allowed");
    expect(allowed.err).toBeNull();
    expect(allowed.res).toMatchObject({
      got: { q: 1 },
      authz: { decision: "allow", decidedBy: "shop/allow-reads", rule: 1, principal: null },
    });
    const denied = await call("Denied");
    expect(denied.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.err?.details).toBe(DENY_BODY);
    // A client cannot plant its own decision for the handler to read.
    const md = new grpc.Metadata();
    md.set("x-ambientkit-authz", JSON.stringify({ decision: "allow", decidedBy: "me" }));
    const planted = await call("Allowed", md);
    expect(planted.res).toMatchObject({ authz: { decidedBy: "shop/allow-reads" } });
  });

  it("connect-node interceptor with a connect gRPC client: PermissionDenied, decision in context values", async () => {
    const { authorizer } = await testAuthorizer();
    const Echo = echoService();
    const authz = await connectAuthz(authorizer);
    const handler = connectNodeAdapter({
      interceptors: [authz.interceptor],
      contextValues: authz.contextValues,
      routes: (router) =>
        router.service(Echo, {
          allowed: (
            req: { value: string },
            ctx: { values: { get<T>(k: { defaultValue: T }): T } },
          ) => ({
            value: `${req.value}:${ctx.values.get(authz.decisionKey)?.decidedBy}`,
          }),
          denied: (req: { value: string }) => ({ value: req.value }),
        } as never),
    });
    const server = createHttp2Server(handler);
    const port = await listen(server);
    closers.push(() => server.close());
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
    const client = createClient(Echo, transport) as unknown as Record<
      "allowed" | "denied",
      (m: unknown) => Promise<{ value: string }>
    >;
    const ok = await client.allowed(create(StringValueSchema, { value: "hi" }));
    expect(ok.value).toBe("hi:shop/allow-reads");
    const err = await client
      .denied(create(StringValueSchema, { value: "hi" }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).code).toBe(7);
    expect((err as ConnectError).rawMessage).toBe(DENY_BODY);
    // The same server over the Connect protocol (HTTP/2 POST, JSON errors): same decisions.
    const connectClient = createClient(
      Echo,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "2" }),
    ) as unknown as Record<"allowed" | "denied", (m: unknown) => Promise<{ value: string }>>;
    expect((await connectClient.allowed(create(StringValueSchema, { value: "c" }))).value).toBe(
      "c:shop/allow-reads",
    );
    const cerr = await connectClient
      .denied(create(StringValueSchema, { value: "c" }))
      .catch((e: unknown) => e);
    expect((cerr as ConnectError).code).toBe(Code.PermissionDenied);
  });
});
