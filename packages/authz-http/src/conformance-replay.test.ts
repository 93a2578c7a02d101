// The waypoint cases of the authz sample conformance file, replayed over real HTTP through the
// Express middleware: each case's app is configured as the case's enforcement point, its caller
// speaks through a trusted proxy's XFCC (principal), a jose-signed JWT (claims) and the raw
// request line. The middleware must decide exactly as decide() does on the same input.
import { readFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  compilePolicies,
  type DecisionCase,
  type DecisionInput,
  parseDecisionCase,
} from "@ambientkit/authz";
import express from "express";
import { generateKeyPair, jwtVerify, SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { listen, memoryLogger } from "./harness.testutil.js";
import {
  type AppDecision,
  createAuthorizer,
  type DecisionLogEntry,
  staticPolicySource,
} from "./index.js";
import { expressAuthz } from "./node/index.js";

const casesPath = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "authz",
  "testdata",
  "authz-sample-cases.yaml",
);
const doc = parse(readFileSync(casesPath, "utf8")) as { cases: unknown[] };
const cases: DecisionCase[] = doc.cases.flatMap((raw, i) => {
  const c = parseDecisionCase(raw, ["cases", i]);
  if (!c.value) throw new Error(JSON.stringify(c.issues));
  return c.value.input.enforcement === "waypoint" ? [c.value] : [];
});

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});
const keys = await generateKeyPair("ES256");

/** Sends the request as the case wrote it: raw path, Host, duplicate headers. */
function send(
  port: number,
  input: DecisionInput,
  extra: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const r = input.request;
  const headers: Record<string, string | string[]> = { ...extra };
  for (const [k, v] of Object.entries(r?.headers ?? {}))
    headers[k] = typeof v === "string" ? v : [...v];
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: r?.method ?? "GET",
        path: r?.path ?? "/",
        headers: { ...headers, host: r?.host ?? "app" },
        setHost: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject).end();
  });
}

describe("waypoint conformance cases over real HTTP through the middleware", () => {
  it("there are waypoint cases to replay", () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
  });

  for (const c of cases) {
    it(`${c.id}: middleware decision equals decide()`, async () => {
      const input = c.input;
      const log: DecisionLogEntry[] = [];
      const service = input.service;
      if (!service || !input.waypoint) throw new Error("a waypoint case without service/waypoint");
      const authorizer = await createAuthorizer({
        app: {
          workload: input.workload,
          service: {
            name: service.name,
            kind: service.kind,
            protocol: service.protocol,
            ...(service.port !== undefined ? { port: service.port } : {}),
            ...(service.vip !== undefined ? { vip: service.vip } : {}),
          },
          waypoint: input.waypoint,
          attach: { selector: false, targetRefs: true },
          mesh: c.mesh,
        },
        sources: [staticPolicySource({ resources: c.policies })],
        // The test client is the trusted proxy that forwards the case's peer identity.
        identity: {
          xfcc: { trustedProxies: { cidrs: ["127.0.0.1/32", "::1/128"] } },
          jwt: async (facts) => {
            const h = facts.headers["x-test-jwt"];
            if (typeof h !== "string") return null;
            return (await jwtVerify(h, keys.publicKey)).payload as Record<string, unknown>;
          },
        },
        destinationIp: input.connection.destinationIp,
        destinationPort: input.connection.destinationPort,
        ...(input.customProviders !== undefined ? { customProviders: input.customProviders } : {}),
        logger: memoryLogger(),
        decisionLog: { sink: (e) => log.push(e) },
      });
      const app = express();
      app.use(expressAuthz(authorizer));
      app.all("/{*any}", (req, res) => {
        const d = (req as IncomingMessage & { authz?: AppDecision }).authz;
        res.json({ decision: d?.decision, decidedBy: d?.decidedBy, rule: d?.rule });
      });
      const server = createServer(app);
      const port = await listen(server);
      closers.push(() => server.close());

      const extra: Record<string, string> = {};
      if (input.connection.sourcePrincipal)
        extra["x-forwarded-client-cert"] = `URI=${input.connection.sourcePrincipal}`;
      if (input.request?.jwt)
        extra["x-test-jwt"] = await new SignJWT(input.request.jwt)
          .setProtectedHeader({ alg: "ES256" })
          .sign(keys.privateKey);
      const got = await send(port, input, extra);

      // What decide() says on the same input as the middleware observed it: the socket's source
      // address is 127.0.0.1 (a test cannot send from the case's 10.x address), headers as sent.
      const observed: DecisionInput = {
        ...input,
        connection: { ...input.connection, sourceIp: "127.0.0.1" },
      };
      const sentHeaders = { ...(input.request?.headers ?? {}), ...extra };
      const expected = compilePolicies(c.policies, c.mesh).decide(
        input.request
          ? { ...observed, request: { ...input.request, headers: sentHeaders } }
          : observed,
      );
      const body =
        got.status === 200 ? (JSON.parse(got.body) as Record<string, unknown>) : undefined;
      if (expected.decision === "allow") {
        expect(got.status, got.body).toBe(200);
        expect(body).toEqual({
          decision: "allow",
          decidedBy: expected.decidedBy,
          ...(expected.rule !== undefined ? { rule: expected.rule } : {}),
        });
      } else {
        expect(got).toEqual({ status: 403, body: "RBAC: access denied" });
      }
      // Denies and allows alike: the logged decision names the same policy and rule.
      expect(log).toHaveLength(1);
      expect({
        decision: log[0]?.decision,
        decidedBy: log[0]?.decidedBy,
        rule: log[0]?.rule,
      }).toEqual({
        decision: expected.decision,
        decidedBy: expected.decidedBy,
        rule: expected.rule,
      });
      // And the case file's own expectation, except where the source address is the point.
      const ipCase = JSON.stringify(c.policies).match(/ipBlocks|source\.ip|remote/);
      if (!ipCase) expect(expected.decision).toBe(c.expect.decision);
    });
  }
});
