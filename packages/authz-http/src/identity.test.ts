// Caller identity from each source the app can trust, on real servers with real TLS: the mTLS peer
// (certificates from the project's CA), XFCC from a trusted proxy (by CIDR and by mTLS identity),
// the mesh workload state (LOCAL_XDS), a JWT verified with jose — and a forged XFCC from anyone
// else, which must leave the request unauthenticated.
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority } from "@ambientkit/identity";
import express from "express";
import { generateKeyPair, jwtVerify, SignJWT } from "jose";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { APP, listen, memoryLogger, POLICIES, parsed, testCa } from "./harness.testutil.js";
import {
  type AppDecision,
  type AuthorizerOptions,
  createAuthorizer,
  DENY_BODY,
  type DecisionLogEntry,
  staticPolicySource,
} from "./index.js";
import { expressAuthz, localXdsFileSource, type NodeAdapterOptions } from "./node/index.js";

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

const WRITER = "spiffe://cluster.local/ns/shop/sa/writer";
const GATEWAY = "spiffe://cluster.local/ns/istio-system/sa/gateway";

async function app(
  options: Partial<AuthorizerOptions>,
  adapter: NodeAdapterOptions = {},
  tls?: { cert: string; key: string; ca: string },
) {
  const logger = memoryLogger();
  const log: DecisionLogEntry[] = [];
  const authorizer = await createAuthorizer({
    app: APP,
    sources: [staticPolicySource({ resources: parsed(POLICIES) })],
    logger,
    decisionLog: { sink: (e) => log.push(e) },
    ...options,
  });
  const e = express();
  e.use(expressAuthz(authorizer, adapter));
  e.all("/{*any}", (req, res) => {
    const d = (req as IncomingMessage & { authz?: AppDecision }).authz;
    res.json({
      principal: d?.identity.principal,
      source: d?.identity.source,
      decidedBy: d?.decidedBy,
    });
  });
  const server = tls
    ? createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: false }, e)
    : createHttpServer(e);
  const port = await listen(server);
  closers.push(() => server.close());
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${port}`, logger, log };
}

function agent(options: { localAddress?: string; cert?: string; key?: string; ca?: string }) {
  const a = new Agent({
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    connect: {
      ...(options.cert ? { cert: options.cert, key: options.key } : {}),
      ...(options.ca ? { ca: options.ca, servername: "" } : {}),
      rejectUnauthorized: options.ca !== undefined,
      checkServerIdentity: () => undefined,
    },
  });
  closers.push(() => a.close());
  return a;
}

async function post(url: string, dispatcher: Agent, headers: Record<string, string> = {}) {
  const r = await undiciFetch(`${url}/orders`, { method: "POST", dispatcher, headers });
  const text = await r.text();
  return {
    status: r.status,
    body: r.status === 200 ? (JSON.parse(text) as Record<string, unknown>) : text,
  };
}

describe("mTLS peer certificate (the app terminates mTLS)", () => {
  it("a verified SVID is the principal; no certificate or a foreign CA's certificate is unauthenticated", async () => {
    const ca = await testCa();
    const server = await ca.issue("spiffe://cluster.local/ns/shop/sa/api");
    const { url } = await app(
      { identity: { mtls: true } },
      { peerVerifier: ca.verifier },
      { cert: server.cert, key: server.key, ca: ca.rootPem },
    );
    const writer = await ca.issue(WRITER);
    const ok = await post(url, agent({ ...writer, ca: ca.rootPem }));
    expect(ok).toEqual({
      status: 200,
      body: { principal: WRITER, source: "mtls", decidedBy: "shop/allow-reads" },
    });
    expect((await post(url, agent({ ca: ca.rootPem }))).status).toBe(403);
    // Same SPIFFE ID, signed by a CA the app does not trust: the chain does not verify.
    const rogue = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const forged = await rogue.issue(WRITER);
    const r = await post(
      url,
      agent({ cert: forged.certChainPem, key: forged.privateKeyPem, ca: ca.rootPem }),
    );
    expect(r).toEqual({ status: 403, body: DENY_BODY });
  });
});

describe("x-forwarded-client-cert", () => {
  const xfcc = `By=${GATEWAY};Hash=abc;Subject="";URI=${WRITER}`;

  it("trusted by CIDR: the proxy at 127.0.0.2 speaks for its client", async () => {
    const { url, log } = await app({
      identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.2/32"] } } },
    });
    const viaProxy = await post(url, agent({ localAddress: "127.0.0.2" }), {
      "x-forwarded-client-cert": xfcc,
    });
    expect(viaProxy).toEqual({
      status: 200,
      body: { principal: WRITER, source: "xfcc", decidedBy: "shop/allow-reads" },
    });
    expect(log.at(-1)).toMatchObject({
      decision: "allow",
      identitySource: "xfcc",
      principal: WRITER,
    });
  });

  it("a forged XFCC from an untrusted peer is ignored, logged, and the request is unauthenticated", async () => {
    const { url, logger, log } = await app({
      identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.2/32"] } } },
    });
    const forged = await post(url, agent({ localAddress: "127.0.0.1" }), {
      "x-forwarded-client-cert": xfcc,
    });
    expect(forged).toEqual({ status: 403, body: DENY_BODY });
    expect(log.at(-1)).toMatchObject({
      decision: "deny",
      principal: null,
      identitySource: "none",
      decidedBy: "implicit:no-allow-match",
    });
    expect(log.at(-1)?.notes.join()).toMatch(/from untrusted peer 127\.0\.0\.1 ignored/);
    expect(
      logger.lines.some((l) => l.includes("x-forwarded-client-cert from untrusted peer")),
    ).toBe(true);
  });

  it("trusted by mTLS identity; a peer with its own valid SVID forging XFCC gets no identity at all", async () => {
    const ca = await testCa();
    const server = await ca.issue("spiffe://cluster.local/ns/shop/sa/api");
    const { url } = await app(
      { identity: { mtls: true, xfcc: { trustedProxies: { identities: [GATEWAY] } } } },
      { peerVerifier: ca.verifier },
      { cert: server.cert, key: server.key, ca: ca.rootPem },
    );
    const gateway = await ca.issue(GATEWAY);
    const viaGateway = await post(url, agent({ ...gateway, ca: ca.rootPem }), {
      "x-forwarded-client-cert": xfcc,
    });
    expect(viaGateway).toMatchObject({ status: 200, body: { principal: WRITER, source: "xfcc" } });
    const reader = await ca.issue("spiffe://cluster.local/ns/shop/sa/reader");
    const forged = await post(url, agent({ ...reader, ca: ca.rootPem }), {
      "x-forwarded-client-cert": xfcc,
    });
    expect(forged).toEqual({ status: 403, body: DENY_BODY });
    // The same reader without the header is itself, and still not allowed to POST /orders.
    const plain = await undiciFetch(`${url}/hello`, {
      dispatcher: agent({ ...reader, ca: ca.rootPem }),
    });
    expect(await plain.json()).toMatchObject({
      principal: "spiffe://cluster.local/ns/shop/sa/reader",
      source: "mtls",
    });
  });

  it("a malformed XFCC from a trusted proxy is a deny with a log line, not an anonymous pass", async () => {
    const { url, logger, log } = await app({
      identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.2"] } } },
    });
    const r = await undiciFetch(`${url}/hello`, {
      dispatcher: agent({ localAddress: "127.0.0.2" }),
      headers: { "x-forwarded-client-cert": 'URI="spiffe://cluster.local/ns/x/sa/y' },
    });
    expect(r.status).toBe(403);
    expect(await r.text()).toBe(DENY_BODY);
    expect(log.at(-1)).toMatchObject({ decidedBy: "error:ERR_AUTHZ_HTTP_INVALID_XFCC" });
    expect(logger.lines.some((l) => l.startsWith("error authz-http: deny GET /hello"))).toBe(true);
  });
});

describe("mesh workload state (LOCAL_XDS): source IP → workload, as ztunnel knows its callers", () => {
  it("a caller at a workload's IP gets that workload's identity; an unknown IP is unauthenticated", async () => {
    const dir = await mkdtemp(join(tmpdir(), "authz-http-wl-"));
    const file = join(dir, "local-xds.yaml");
    await writeFile(
      file,
      `workloads:
  - uid: Kubernetes//Pod/shop/writer
    name: writer
    namespace: shop
    serviceAccount: writer
    trustDomain: cluster.local
    workloadIps: ["127.0.0.3"]
    protocol: HBONE
    node: node-a
    workloadName: writer
    workloadType: deployment
    canonicalName: writer
    canonicalRevision: v1
    clusterId: Kubernetes
    services: {}
`,
    );
    const workloads = localXdsFileSource(file, { namespace: "shop", name: "api" });
    const { url } = await app({
      sources: [staticPolicySource({ resources: parsed(POLICIES) }), workloads],
      identity: { workloads },
    });
    const fromWriter = await post(url, agent({ localAddress: "127.0.0.3" }));
    expect(fromWriter).toEqual({
      status: 200,
      body: { principal: WRITER, source: "workload-state", decidedBy: "shop/allow-reads" },
    });
    expect((await post(url, agent({ localAddress: "127.0.0.4" }))).status).toBe(403);
    await workloads.close();
  });
});

describe("request.auth.* from a JWT the app's verifier checked (jose)", () => {
  it("a verified token's claims are matched; a bad token is 401, no token is unauthenticated", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const policy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reports-for-alice, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - from: [{ source: { requestPrincipals: ["https://issuer.example/alice"] } }]
      when: [{ key: "request.auth.claims[groups]", values: ["finance"] }]
`;
    const logger = memoryLogger();
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [staticPolicySource({ resources: parsed(policy) })],
      logger,
      identity: {
        jwt: async (facts) => {
          const h = facts.headers.authorization;
          if (typeof h !== "string" || !h.startsWith("Bearer ")) return null;
          const { payload } = await jwtVerify(h.slice(7), publicKey, {
            issuer: "https://issuer.example",
          });
          return payload as Record<string, unknown>;
        },
      },
    });
    const e = express();
    e.use(expressAuthz(authorizer));
    e.get("/reports", (_req, res) => res.send("report"));
    const server = createHttpServer(e);
    const port = await listen(server);
    closers.push(() => server.close());
    const token = (sub: string, groups: string[]) =>
      new SignJWT({ groups })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer("https://issuer.example")
        .setSubject(sub)
        .setExpirationTime("5m")
        .sign(privateKey);
    const get = (auth?: string) =>
      fetch(`http://127.0.0.1:${port}/reports`, auth ? { headers: { authorization: auth } } : {});
    const alice = await get(`Bearer ${await token("alice", ["finance"])}`);
    expect(alice.status).toBe(200);
    expect((await get(`Bearer ${await token("alice", ["sales"])}`)).status).toBe(403);
    expect((await get(`Bearer ${await token("bob", ["finance"])}`)).status).toBe(403);
    expect((await get()).status).toBe(403);
    const bad = await get(`Bearer ${(await token("alice", ["finance"])).slice(0, -4)}AAAA`);
    expect(bad.status).toBe(401);
    expect(await bad.text()).toBe("Jwt verification fails");
  });
});

describe("mTLS over node:http2 and gRPC", () => {
  it("node:http2 secure server: the client's SVID is the principal", async () => {
    const { createSecureServer, connect } = await import("node:http2");
    const { withAuthz } = await import("./node/index.js");
    const { testAuthorizer } = await import("./harness.testutil.js");
    const ca = await testCa();
    const server = await ca.issue("spiffe://cluster.local/ns/shop/sa/api");
    const { authorizer } = await testAuthorizer(POLICIES, { identity: { mtls: true } });
    const h2 = createSecureServer(
      {
        cert: server.cert,
        key: server.key,
        ca: ca.rootPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      withAuthz(
        authorizer,
        (req, res) => res.end(JSON.stringify({ principal: req.authz?.identity.principal })),
        { peerVerifier: ca.verifier },
      ),
    );
    const port = await listen(h2);
    closers.push(() => h2.close());
    const call = async (client?: { cert: string; key: string }) => {
      const session = connect(`https://127.0.0.1:${port}`, {
        ca: ca.rootPem,
        checkServerIdentity: () => undefined,
        ...(client ?? {}),
      });
      try {
        return await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const s = session.request({ ":method": "POST", ":path": "/orders" });
          let status = 0;
          let body = "";
          s.on("response", (h) => {
            status = Number(h[":status"]);
          });
          s.setEncoding("utf8").on("data", (c: string) => {
            body += c;
          });
          s.on("end", () => resolve({ status, body })).on("error", reject);
          s.end();
        });
      } finally {
        session.close();
      }
    };
    expect(await call(await ca.issue(WRITER))).toEqual({
      status: 200,
      body: JSON.stringify({ principal: WRITER }),
    });
    expect(await call()).toEqual({ status: 403, body: DENY_BODY });
  });

  it("grpc-js over mTLS: the interceptor reads the peer certificate of the call", async () => {
    const grpc = await import("@grpc/grpc-js");
    const { grpcAuthzInterceptor, grpcDecision } = await import("./node/index.js");
    const { testAuthorizer } = await import("./harness.testutil.js");
    const ca = await testCa();
    const serverId = await ca.issue("spiffe://cluster.local/ns/shop/sa/api");
    // Only the writer may call Orders/Create over gRPC.
    const { authorizer } = await testAuthorizer(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: grpc-writer, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/writer"] } }]
      to: [{ operation: { paths: ["/test.Orders/Create"] } }]
`,
      { identity: { mtls: true } },
    );
    const server = new grpc.Server({
      interceptors: [await grpcAuthzInterceptor(authorizer, { peerVerifier: ca.verifier })],
    });
    const json = {
      serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
      deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
    };
    const definition = {
      Create: {
        path: "/test.Orders/Create",
        requestStream: false,
        responseStream: false,
        requestSerialize: json.serialize,
        requestDeserialize: json.deserialize,
        responseSerialize: json.serialize,
        responseDeserialize: json.deserialize,
      },
    } as unknown as import("@grpc/grpc-js").ServiceDefinition;
    server.addService(definition, {
      Create: (
        call: { metadata: import("@grpc/grpc-js").Metadata },
        cb: (e: null, r: unknown) => void,
      ) => cb(null, grpcDecision(call.metadata)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createSsl(
          Buffer.from(ca.rootPem),
          [{ cert_chain: Buffer.from(serverId.cert), private_key: Buffer.from(serverId.key) }],
          // grpc-js asks for a client certificate only when it also requires one.
          true,
        ),
        (e, p) => (e ? reject(e) : resolve(p)),
      ),
    );
    closers.push(() => server.forceShutdown());
    const Client = grpc.makeGenericClientConstructor(definition, "Orders");
    const call = async (id?: { cert: string; key: string }) => {
      const creds = grpc.credentials.createSsl(
        Buffer.from(ca.rootPem),
        id ? Buffer.from(id.key) : null,
        id ? Buffer.from(id.cert) : null,
        { checkServerIdentity: () => undefined },
      );
      const client = new Client(`127.0.0.1:${port}`, creds) as unknown as Record<
        string,
        (
          r: unknown,
          cb: (e: import("@grpc/grpc-js").ServiceError | null, r?: unknown) => void,
        ) => void
      >;
      try {
        return await new Promise<{ code: number; res?: unknown }>((resolve) =>
          client.Create?.({}, (e, res) => resolve({ code: e ? e.code : 0, res })),
        );
      } finally {
        (client as unknown as import("@grpc/grpc-js").Client).close();
      }
    };
    expect(await call(await ca.issue(WRITER))).toEqual({
      code: 0,
      res: {
        decision: "allow",
        enforced: true,
        decidedBy: "shop/grpc-writer",
        rule: 0,
        principal: WRITER,
        identitySource: "mtls",
      },
    });
    expect((await call(await ca.issue("spiffe://cluster.local/ns/shop/sa/reader"))).code).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    // Without a certificate the TLS handshake itself is refused (grpc-js requires one when it asks).
    expect((await call()).code).not.toBe(grpc.status.OK);
  });
});
