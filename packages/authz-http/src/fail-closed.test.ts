// Fail closed: an unreadable source at start, a broken file at start, a malformed request
// attribute, an evaluation error — each is a deny with a clear log line. Plus the whole-middleware
// dry-run mode (log, don't enforce) and decision-log sampling.
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { APP, listen, memoryLogger, POLICIES, parsed, testAuthorizer } from "./harness.testutil.js";
import {
  type AppDecision,
  AuthzHttpError,
  authorizeRequest,
  createAuthorizer,
  DENY_BODY,
  type DecisionLogEntry,
  parseXfcc,
  staticPolicySource,
} from "./index.js";
import { directoryPolicySource, fastifyAuthz, withAuthz } from "./node/index.js";

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function fastifyWith(authorizer: Awaited<ReturnType<typeof createAuthorizer>>) {
  const app = Fastify();
  await app.register(fastifyAuthz, { authorizer });
  app.all("/*", async (request) => {
    const d = (request as unknown as { authz: AppDecision }).authz;
    return { decision: d.decision, enforced: d.enforced, decidedBy: d.decidedBy };
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  closers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

/** Raw bytes on a socket: what a framework-level client would refuse to send. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const s = connect(port, "127.0.0.1", () => s.end(text));
    s.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    s.on("end", () => resolve(out)).on("error", reject);
  });
}

describe("fail closed", () => {
  it("a policy directory that cannot be read at start: every request is denied, the log says why", async () => {
    const logger = memoryLogger();
    const missing = join(tmpdir(), `authz-http-missing-${process.pid}-${Date.now()}`);
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [directoryPolicySource(missing)],
      logger,
    });
    closers.push(() => authorizer.close());
    expect(authorizer.policySet).toBeUndefined();
    const url = await fastifyWith(authorizer);
    const r = await fetch(`${url}/hello`);
    expect(r.status).toBe(403);
    expect(await r.text()).toBe(DENY_BODY);
    const text = logger.lines.join("\n");
    expect(text).toContain(
      `policy source dir:${missing} rejected, no policy set yet: denying every request`,
    );
    expect(text).toContain("ENOENT");
    expect(text).toContain(
      "error authz-http: deny GET /hello from 127.0.0.1: ERR_AUTHZ_HTTP_NO_POLICY_SET",
    );
  });

  it("a broken file at start is denied too, and reported with file:line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "authz-http-badstart-"));
    await writeFile(
      join(dir, "a.yaml"),
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: shop }\nspec:\n  action: MAYBE\n",
    );
    const logger = memoryLogger();
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [directoryPolicySource(dir)],
      logger,
    });
    closers.push(() => authorizer.close());
    const d = await authorizer.authorize({
      method: "GET",
      authority: "api",
      path: "/hello",
      headers: {},
      sourceIp: "127.0.0.1",
      destinationIp: "127.0.0.1",
      destinationPort: 80,
    });
    expect(d).toMatchObject({ allowed: false, decidedBy: "error:ERR_AUTHZ_HTTP_NO_POLICY_SET" });
    expect(logger.lines.join("\n")).toContain(`${join(dir, "a.yaml")}:5:`);
  });

  it("a malformed request attribute is a deny: `OPTIONS *`, a lower-case method, an unparsable peer address", async () => {
    const { authorizer, logger } = await testAuthorizer(
      POLICIES.replace('methods: ["GET"]', 'methods: ["GET", "OPTIONS"]'),
    );
    const server = createServer(withAuthz(authorizer, (_req, res) => res.end("reached")));
    const port = await listen(server);
    closers.push(() => server.close());
    // `*` is a valid HTTP/1.1 target for OPTIONS, but not a path RBAC can match: Envoy answers 400.
    const star = await raw(port, "OPTIONS * HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    expect(star).toMatch(/^HTTP\/1\.1 403 /);
    expect(star.endsWith(DENY_BODY)).toBe(true);
    const lower = await raw(port, "get /hello HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    expect(lower).not.toContain("reached");
    // The web adapter with a peer address that is not an address: the engine refuses the input.
    const { decision, response } = await authorizeRequest(
      authorizer,
      new Request("http://api/hello"),
      { remoteAddress: "not-an-ip" },
    );
    expect(response?.status).toBe(403);
    expect(await response?.text()).toBe(DENY_BODY);
    expect(decision.decidedBy).toBe("error:ERR_AUTHZ_INVALID_INPUT");
    expect(logger.lines.some((l) => l.includes("ERR_AUTHZ_INVALID_INPUT"))).toBe(true);
  });

  it("an evaluation error (a CUSTOM provider callback that throws) is a deny, never an allow", async () => {
    const custom = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: CUSTOM
  provider: { name: ext-authz }
  rules: [{ to: [{ operation: { paths: ["/ext/*"] } }] }]
`;
    const { authorizer, logger } = await testAuthorizer(custom, {
      customProviders: () => {
        throw new Error("provider unreachable");
      },
    });
    const url = await fastifyWith(authorizer);
    expect((await fetch(`${url}/other`)).status).toBe(200);
    const r = await fetch(`${url}/ext/thing`);
    expect(r.status).toBe(403);
    expect(logger.lines.join("\n")).toMatch(
      /error authz-http: deny GET \/ext\/thing .*provider unreachable/,
    );
  });

  it("XFCC that does not parse is an error value, never an empty identity", () => {
    expect(() => parseXfcc('URI="spiffe://x')).toThrow(AuthzHttpError);
    expect(() => parseXfcc("URI=a,,URI=b")).toThrow(/ERR|empty element/);
    expect(
      parseXfcc('By=spiffe://a;Hash=1;Subject="CN=x, O=y";URI=spiffe://cluster.local/ns/a/sa/b'),
    ).toEqual([
      {
        by: "spiffe://a",
        hash: "1",
        subject: "CN=x, O=y",
        uris: ["spiffe://cluster.local/ns/a/sa/b"],
        dns: [],
      },
    ]);
  });

  it("bad options fail at start with the package's error", async () => {
    await expect(
      createAuthorizer({ app: APP, sources: [], logger: memoryLogger() }),
    ).rejects.toMatchObject({ code: "ERR_AUTHZ_HTTP_INVALID_OPTIONS" });
    await expect(
      createAuthorizer({
        app: APP,
        sources: [staticPolicySource({})],
        identity: { xfcc: { trustedProxies: { cidrs: ["10.0.0.0/33"] } } },
      }),
    ).rejects.toMatchObject({ code: "ERR_AUTHZ_HTTP_INVALID_OPTIONS" });
  });
});

describe("dry-run mode and the decision log", () => {
  it("dry-run: nothing is refused, every decision is logged with enforced=false", async () => {
    const log: DecisionLogEntry[] = [];
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [staticPolicySource({ resources: parsed(POLICIES) })],
      mode: "dry-run",
      decisionLog: { sink: (e) => log.push(e) },
      logger: memoryLogger(),
    });
    const url = await fastifyWith(authorizer);
    const r = await fetch(`${url}/admin`, { method: "POST" });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      decision: "deny",
      enforced: false,
      decidedBy: "shop/deny-admin",
    });
    expect(log.at(-1)).toMatchObject({
      decision: "deny",
      enforced: false,
      decidedBy: "shop/deny-admin",
      rule: 0,
      method: "POST",
      path: "/admin",
      identitySource: "none",
    });
  });

  it("istio.io/dry-run policies are shadows in the decision, not enforcement", async () => {
    const shadow = `${POLICIES}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-reports-shadow
  namespace: shop
  annotations: { "istio.io/dry-run": "true" }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/reports"] } }] }]
`;
    const log: DecisionLogEntry[] = [];
    const { authorizer } = await testAuthorizer(shadow, {
      decisionLog: { sink: (e) => log.push(e) },
    });
    const url = await fastifyWith(authorizer);
    expect((await fetch(`${url}/reports`)).status).toBe(200);
    expect(log.at(-1)?.dryRun).toEqual([
      { policy: "shop/deny-reports-shadow", action: "DENY", matched: true, rule: 0 },
    ]);
  });

  it("sampling: allows sampled away, denies kept", async () => {
    const log: DecisionLogEntry[] = [];
    const { authorizer } = await testAuthorizer(POLICIES, {
      decisionLog: { sink: (e) => log.push(e), sampleAllow: 0, sampleDeny: 1 },
    });
    const url = await fastifyWith(authorizer);
    for (let i = 0; i < 5; i++) await (await fetch(`${url}/hello`)).text();
    await (await fetch(`${url}/admin`)).text();
    expect(log.map((e) => e.decision)).toEqual(["deny"]);
  });
});

describe("policy text that bites", () => {
  it("an alias bomb is an issue with its position, not a crash or half a set", async () => {
    const { parsePolicyYaml } = await import("./index.js");
    const bomb = [
      "apiVersion: security.istio.io/v1",
      "kind: AuthorizationPolicy",
      "metadata: { name: b, namespace: shop }",
      "spec:",
      "  a: &a [x, x, x, x, x, x, x, x, x, x]",
      "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
    ].join("\n");
    const r = parsePolicyYaml(bomb, "bomb.yaml");
    expect(r.resources).toEqual([]);
    expect(r.issues[0]).toMatchObject({ file: "bomb.yaml", line: 1 });
  });
});
