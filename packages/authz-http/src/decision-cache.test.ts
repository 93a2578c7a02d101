// Decisions are memoised per policy set on every attribute a policy can read. These checks pin
// that the memo never answers for a request that differs in something that matters.
import { describe, expect, it } from "vitest";
import { testAuthorizer } from "./harness.testutil.js";
import type { RequestFacts } from "./index.js";

const HEADER_POLICY = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: canary-only, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - when: [{ key: "request.headers[x-canary]", values: ["yes"] }]
    - from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }]
`;

const base: RequestFacts = {
  method: "GET",
  authority: "api",
  path: "/x",
  headers: { "user-agent": "t" },
  sourceIp: "127.0.0.1",
  destinationIp: "127.0.0.1",
  destinationPort: 8080,
};

describe("decision memo", () => {
  it("a header a policy reads, and X-Forwarded-For for remoteIpBlocks, are part of the key", async () => {
    const { authorizer } = await testAuthorizer(HEADER_POLICY);
    const decide = async (headers: Record<string, string>) =>
      (await authorizer.authorize({ ...base, headers: { ...base.headers, ...headers } })).decision;
    for (let i = 0; i < 3; i++) {
      expect(await decide({})).toBe("deny");
      expect(await decide({ "x-canary": "yes" })).toBe("allow");
      expect(await decide({ "x-canary": "no" })).toBe("deny");
      expect(await decide({ "x-forwarded-for": "10.1.2.3" })).toBe("allow");
      expect(await decide({ "x-forwarded-for": "192.0.2.1" })).toBe("deny");
      // Other headers cannot change the answer, but a malformed one is still Envoy's 400.
      expect(await decide({ "x-canary": "yes", "x-other": "1" })).toBe("allow");
      const bad = await authorizer.authorize({
        ...base,
        headers: { "x-canary": "yes", "bad header": "1" },
      });
      expect(bad.decidedBy).toBe("implicit:invalid-request");
      const crlf = await authorizer.authorize({ ...base, headers: { "x-canary": "yes\r\nx: y" } });
      expect(crlf.decidedBy).toBe("implicit:invalid-request");
    }
    expect(authorizer.policySet?.cacheable).toBe(true);
    expect(authorizer.policySet?.headerNames).toEqual(["x-canary", "x-forwarded-for"]);
  });

  it("principal, source address, path and method are part of the key; CUSTOM sets are not memoised", async () => {
    const { authorizer } = await testAuthorizer();
    const d = (f: Partial<RequestFacts>) => authorizer.decide({ ...base, ...f });
    for (let i = 0; i < 2; i++) {
      expect(await d({ method: "GET", path: "/hello" })).toMatchObject({ decision: "allow" });
      expect(await d({ method: "POST", path: "/orders" })).toMatchObject({ decision: "deny" });
      expect(await d({ method: "GET", path: "/admin" })).toMatchObject({ decision: "deny" });
      expect(await d({ method: "GET", path: "/x/../admin" })).toMatchObject({ decision: "deny" });
    }
    let calls = 0;
    const { authorizer: custom } = await testAuthorizer(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: CUSTOM
  provider: { name: ext-authz }
  rules: [{ to: [{ operation: { paths: ["/x"] } }] }]
`,
      {
        customProviders: () => {
          calls++;
          return calls % 2 === 0 ? "allow" : "deny";
        },
      },
    );
    expect(custom.policySet?.cacheable).toBe(false);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await custom.authorize(base)).decision);
    expect(answers).toEqual(["deny", "allow", "deny", "allow"]);
  });
});
