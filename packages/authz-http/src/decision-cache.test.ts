// Decisions are memoised per policy set on every attribute a policy can read. These checks pin
// that the memo never answers for a request that differs in something that matters.
import { describe, expect, it } from "vitest";
import { testAuthorizer } from "./harness.testutil.js";
import type { RequestFacts } from "./index.js";
import { DecisionMemo } from "./memo.js";

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

describe("decision memo keys", () => {
  it("a header value holding separators cannot pass for other headers", async () => {
    const { authorizer } = await testAuthorizer(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: both, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - when:
        - { key: "request.headers[x-a]", values: ["1"] }
        - { key: "request.headers[x-b]", values: ["2"] }
`);
    const d = (headers: Record<string, string | string[]>) =>
      authorizer.decide({ ...base, headers });
    expect(d({ "x-a": "1", "x-b": "2" })).toMatchObject({ decision: "allow" });
    // Joined with separators, this one header would spell the two above.
    expect(d({ "x-a": "1\u0001x-b\u00012" })).toMatchObject({ decision: "deny" });
    expect(d({ "x-a": ["1", "2"] })).toMatchObject({ decision: "deny" });
    expect(d({ "x-a": "1", "x-b": "2" })).toMatchObject({ decision: "allow" });
  });

  it("null and empty, absent and empty are different inputs; the memo is bounded", () => {
    const memo = new DecisionMemo<string>(3);
    const key = (principal: string | null, sni: string | undefined, path = "/") =>
      ["GET", 80, "10.0.0.1", "10.0.0.2", principal, sni, "api", path, "", null] as const;
    memo.set("nobody", ...key(null, undefined));
    memo.set("empty principal", ...key("", undefined));
    memo.set("empty sni", ...key(null, ""));
    expect(memo.get(...key(null, undefined))).toBe("nobody");
    expect(memo.get(...key("", undefined))).toBe("empty principal");
    expect(memo.get(...key(null, ""))).toBe("empty sni");
    expect(memo.get(...key(null, undefined, "/x"))).toBeUndefined();
    // The last hit answers only the very same inputs.
    expect(memo.get(...key(null, ""))).toBe("empty sni");
    expect(memo.get(...key(null, undefined))).toBe("nobody");
    expect(memo.size).toBe(3);
    // Full: the next entry starts over rather than growing.
    memo.set("fourth", ...key(null, undefined, "/x"));
    expect(memo.size).toBe(1);
    expect(memo.get(...key(null, undefined))).toBeUndefined();
    expect(memo.get(...key(null, undefined, "/x"))).toBe("fourth");
    expect(memo.get(...key(null, ""))).toBeUndefined();
  });

  it("an identity without notes is shared by a caller's requests, and frozen", async () => {
    const { authorizer } = await testAuthorizer(undefined, {
      identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.1/32"] } } },
    });
    const xfcc = { "x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/shop/sa/writer" };
    const a = await authorizer.authorize({ ...base, headers: { ...xfcc } });
    const b = await authorizer.authorize({ ...base, headers: { ...xfcc } });
    expect(a.identity).toEqual({
      principal: "spiffe://cluster.local/ns/shop/sa/writer",
      source: "xfcc",
      jwt: null,
      notes: [],
    });
    expect(b.identity).toBe(a.identity);
    expect(Object.isFrozen(a.identity)).toBe(true);
    expect(Object.isFrozen(a.identity.notes)).toBe(true);
  });
});
