// The servers the authz-http suite measures, run in their own process (`node authz-http-servers.js
// <target>...`): the load generator must not share their event loop, and the instruction count
// (under valgrind) must cover only the server. Each listens on 127.0.0.1; the ports are printed
// as one line, `PORTS_LINE <json>`; with an IPC channel, the message "cpu" is answered with the
// process's CPU time so far.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createAuthorizer, parsePolicyYaml, staticPolicySource } from "@ambientkit/authz-http";
import { expressAuthz, fastifyAuthz } from "@ambientkit/authz-http/node";
import { authz as casbinAuthz } from "casbin-express-authz";
import express from "express";
import Fastify from "fastify";

export const POLICIES = 100;
/** The benchmark's caller is allowed by the last of the 100 policies. */
export const CALLER = POLICIES - 1;
export const PORTS_LINE = "AUTHZ_HTTP_BENCH_PORTS";

export const TARGETS = [
  "express",
  "express+no-op",
  "express+authz-http",
  "express+casbin",
  "fastify",
  "fastify+no-op",
  "fastify+authz-http",
] as const;
export type Target = (typeof TARGETS)[number];

/** The request every target answers 200 to: ours reads XFCC, casbin-express-authz basic auth. */
export const REQUEST_PATH = "/hello";
export const REQUEST_HEADERS: Readonly<Record<string, string>> = {
  "x-forwarded-client-cert": `URI=spiffe://cluster.local/ns/bench/sa/user-${CALLER}`,
  authorization: `Basic ${Buffer.from(`user-${CALLER}:x`).toString("base64")}`,
};

/** 100 ALLOW policies on the app's Service, one per caller. */
function policyYaml(): string {
  return Array.from(
    { length: POLICIES },
    (_, i) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-user-${i}, namespace: bench }
spec:
  targetRefs: [{ kind: Service, group: "", name: hello }]
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/bench/sa/user-${i}"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/hello"] } }]
`,
  ).join("---\n");
}

/** The same rule set as casbin rows: user, path, method (keyMatch on the path). */
const CASBIN_MODEL = `
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act
`;
const casbinRows = (): string =>
  Array.from({ length: POLICIES }, (_, i) => `p, user-${i}, /hello, GET`).join("\n");

async function authorizer() {
  const parsed = parsePolicyYaml(policyYaml(), "bench.yaml");
  if (parsed.issues.length > 0) throw new Error(parsed.issues.map((i) => i.message).join("\n"));
  return createAuthorizer({
    app: { workload: { namespace: "bench", labels: { app: "hello" } }, service: { name: "hello" } },
    sources: [staticPolicySource({ resources: parsed.resources })],
    // The load generator stands in for the trusted proxy that forwards the caller's identity.
    identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.1/32"] } } },
  });
}

async function listenNode(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

/** Starts one target; the route answers "hello" as the frameworks' own hello-world does. */
async function serve(target: Target): Promise<number> {
  const hello = (_req: unknown, res: { send(b: string): void }) => res.send("hello");
  if (target.startsWith("express")) {
    const app = express();
    if (target === "express+no-op") app.use((_req, _res, next) => next());
    if (target === "express+authz-http") app.use(expressAuthz(await authorizer()));
    if (target === "express+casbin") {
      // casbin ships CommonJS and ESM builds; casbin-express-authz checks `instanceof Enforcer`
      // against the CommonJS one, so the enforcer must come from that build too.
      const { newEnforcer, newModelFromString, StringAdapter } = createRequire(import.meta.url)(
        "casbin",
      ) as typeof import("casbin");
      const enforcer = newEnforcer(
        await newModelFromString(CASBIN_MODEL),
        new StringAdapter(casbinRows()),
      );
      app.use(casbinAuthz({ newEnforcer: enforcer }));
    }
    app.get(REQUEST_PATH, hello);
    return listenNode(app);
  }
  const f = Fastify();
  if (target === "fastify+no-op") f.addHook("onRequest", (_request, _reply, done) => done());
  if (target === "fastify+authz-http")
    await f.register(fastifyAuthz, { authorizer: await authorizer() });
  f.get(REQUEST_PATH, async () => "hello");
  await f.listen({ port: 0, host: "127.0.0.1" });
  return (f.server.address() as AddressInfo).port;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wanted = process.argv.slice(2) as Target[];
  const ports: Partial<Record<Target, number>> = {};
  for (const t of wanted) {
    if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}`);
    ports[t] = await serve(t);
  }
  // The CPU time this process spent (user + system, µs), asked for around each load run: the
  // server's own cost per request, whatever the load generator or a neighbour does meanwhile.
  process.on("message", (m) => {
    if (m === "cpu") {
      const u = process.cpuUsage();
      process.send?.({ cpuUs: u.user + u.system });
    }
  });
  process.stdout.write(`${PORTS_LINE} ${JSON.stringify(ports)}\n`);
}
