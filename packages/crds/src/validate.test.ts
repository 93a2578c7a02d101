import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { gatewayApi, istio, istioMaster } from "./index.js";
import { validate } from "./validate.js";
import { validateYaml } from "./yaml.js";

const ap = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: "security.istio.io/v1",
  kind: "AuthorizationPolicy",
  metadata: { name: "p", namespace: "ns", ...extra },
  spec,
});

function messages(doc: unknown, options = {}) {
  return validate(doc, options).issues.map(
    (i) => `${i.severity} ${i.code} ${i.path}: ${i.message}`,
  );
}

describe("validate: documents and versions", () => {
  it("never throws on odd input", () => {
    for (const input of [
      null,
      undefined,
      1,
      "x",
      [],
      [1],
      { kind: 1 },
      { apiVersion: "v1" },
      { apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata: "x", spec: [] },
    ]) {
      const r = validate(input);
      expect(r.ok).toBe(false);
      expect(r.issues.length).toBeGreaterThan(0);
    }
  });

  it("skips kinds it does not validate, and rejects them with strict", () => {
    const deployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "d" } };
    expect(validate(deployment)).toMatchObject({ ok: true, skipped: true, kind: "Deployment" });
    expect(validate(deployment, { strict: true })).toMatchObject({ ok: false, skipped: false });
  });

  it("rejects unknown kinds in known groups and unknown or unserved versions", () => {
    expect(
      messages({
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualServce",
        metadata: { name: "a" },
      })[0],
    ).toContain(
      'kind/unknown kind: no matches for kind "VirtualServce" in group "networking.istio.io"',
    );
    expect(
      validate({
        apiVersion: "security.istio.io/v2",
        kind: "AuthorizationPolicy",
        metadata: { name: "a" },
      }).issues[0]?.code,
    ).toBe("version/unknown");
    const tls = {
      apiVersion: "gateway.networking.k8s.io/v1alpha2",
      kind: "TLSRoute",
      metadata: { name: "a" },
      spec: { hostnames: ["a.example"], rules: [{ backendRefs: [{ name: "s", port: 443 }] }] },
    };
    expect(validate(tls, { gatewayApi: "standard" }).issues[0]?.code).toBe("version/unserved");
    expect(validate(tls, { gatewayApi: "experimental" }).ok).toBe(true);
  });

  it("reports a schema set this build does not have", () => {
    const r = validate(ap({}), { istio: "1.99" as "1.30" });
    expect(r.ok).toBe(false);
    expect(r.issues[0]?.message).toContain("no Istio 1.99 CRDs in this build");
    // option values that name Object.prototype members are unknown sets too, not lookups
    const odd = validate(ap({}), {
      istio: "constructor" as "1.30",
      gatewayApi: "name" as "standard",
    });
    expect(odd.ok).toBe(false);
    expect(odd.issues[0]?.message).toContain("no Istio constructor CRDs in this build");
    // and the same document validates again with the real set (the memo is per set)
    expect(validate(ap({}), { istio: "1.30" }).issues.map((i) => i.code)).not.toContain(
      "kind/unknown",
    );
  });

  it("checks metadata.name as a DNS-1123 subdomain", () => {
    expect(messages(ap({}, { name: "Bad_Name" }))[0]).toContain(
      'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain',
    );
    expect(
      messages({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", spec: {} })[0],
    ).toContain("metadata.name: Required value: name or generateName is required");
    expect(validate(ap({}, { name: undefined, generateName: "p-" })).ok).toBe(true);
    expect(messages(ap({}, { labels: { app: 1 } })).join("\n")).toContain("metadata.labels.app");
  });

  it("applies structural defaults before CEL (HTTPRoute path type, parentRef kind)", () => {
    const route = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "r" },
      spec: {
        parentRefs: [{ name: "gw" }],
        rules: [{ matches: [{ path: { value: "/a" } }], backendRefs: [{ name: "s", port: 80 }] }],
      },
    };
    expect(validate(route).issues).toEqual([]);
    const bad = structuredClone(route);
    (bad.spec.rules[0]?.matches[0]?.path as { value: string }).value = "no-slash";
    expect(messages(bad).join("\n")).toContain(
      "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
    );
  });

  it("uses the Kubernetes CEL library (url().getScheme(), isURL)", () => {
    const ra = (jwksUri: string) => ({
      apiVersion: "security.istio.io/v1",
      kind: "RequestAuthentication",
      metadata: { name: "r" },
      spec: { jwtRules: [{ issuer: "i", jwksUri }] },
    });
    expect(validate(ra("https://example.com/jwks.json")).ok).toBe(true);
    expect(messages(ra("ftp://example.com/jwks.json")).join("\n")).toContain(
      "url must have scheme http:// or https://",
    );
    const wasm = (url: string) => ({
      apiVersion: "extensions.istio.io/v1alpha1",
      kind: "WasmPlugin",
      metadata: { name: "w" },
      spec: { url },
    });
    expect(validate(wasm("oci://ghcr.io/x/y:1")).ok).toBe(true);
    expect(validate(wasm("ghcr.io/x/y:1")).ok).toBe(true);
    expect(validate(wasm("#%blah$#@")).ok).toBe(false);
  });
});

describe("validate: Istio webhook checks", () => {
  it("warns on a DENY rule with only HTTP attributes, in Istio's words", () => {
    const r = validate(
      ap({ action: "DENY", rules: [{ to: [{ operation: { methods: ["GET"] } }] }] }),
    );
    expect(r.ok).toBe(true);
    expect(r.issues).toEqual([
      expect.objectContaining({
        code: "IST0133",
        severity: "warning",
        path: "spec.rules[0]",
        message:
          "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
      }),
    ]);
    expect(
      validate(
        ap({
          action: "DENY",
          rules: [{ to: [{ operation: { methods: ["GET"], ports: ["80"] } }] }],
        }),
      ).issues,
    ).toEqual([]);
  });

  it("reports AuthorizationPolicy errors as istioctl does", () => {
    const cases: Array<[unknown, string]> = [
      [{ action: "DENY" }, "DENY action without `rules` is meaningless"],
      [
        { action: "CUSTOM", provider: { name: "ext" } },
        "CUSTOM action without `rules` is meaningless",
      ],
      [
        {
          action: "CUSTOM",
          provider: { name: "ext" },
          rules: [{ from: [{ source: { namespaces: ["a"] } }] }],
        },
        "From.Namespaces is currently not supported with CUSTOM action",
      ],
      [
        {
          action: "CUSTOM",
          provider: { name: "ext" },
          rules: [{ when: [{ key: "request.auth.claims[iss]", values: ["a"] }] }],
        },
        "request.auth.claims[iss] is currently not supported with CUSTOM action",
      ],
      [
        { action: "ALLOW", provider: { name: "ext" }, rules: [{}] },
        "`provider` must not be with non CUSTOM action, found ALLOW",
      ],
      [{ rules: [{ from: [] }] }, "`from` must not be empty, found at rule 0"],
      [{ rules: [{ from: [{ source: {} }] }] }, "`from.source` must not be empty, found at rule 0"],
      [
        { rules: [{ to: [{ operation: {} }] }] },
        "`to.operation` must not be empty, found at rule 0",
      ],
      [
        { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }] },
        "bad CIDR range (10.0.0.0/33)",
      ],
      [{ rules: [{ from: [{ source: { ipBlocks: ["1.2.3"] } }] }] }, "bad IP address (1.2.3)"],
      [{ rules: [{ to: [{ operation: { ports: ["http"] } }] }] }, "bad port (http)"],
      [{ rules: [{ to: [{ operation: { ports: ["70000"] } }] }] }, "bad port (70000)"],
      [
        { rules: [{ to: [{ operation: { paths: ["/a/{**}/b/{*}"] } }] }] },
        "{**} is not the last operator",
      ],
      [
        { rules: [{ when: [{ key: "destination.namespace", values: ["a"] }] }] },
        "attribute destination.namespace is replaced by the metadata.namespace",
      ],
      [
        { rules: [{ when: [{ key: "request.headers", values: ["a"] }] }] },
        "bad key (request.headers): should have format a[b]",
      ],
      [{ rules: [{ when: [{ key: "foo.bar", values: ["a"] }] }] }, "unknown attribute: foo.bar"],
      [
        { rules: [{ when: [{ key: "source.ip" }] }] },
        "at least one of `values` or `notValues` must be set for key source.ip",
      ],
      [
        { rules: [{ when: [{ key: "source.ip", values: ["x"] }] }] },
        "invalid `value` for `key` source.ip: bad IP address (x)",
      ],
      [{ targetRefs: [{ kind: "Deployment", name: "x" }] }, "targetRef must be to one of"],
    ];
    for (const [spec, want] of cases) {
      const r = validate(ap(spec));
      expect(r.ok, JSON.stringify(spec)).toBe(false);
      const m = r.issues.filter((i) => i.code === "IST0106").map((i) => i.message);
      expect(
        m.some((x) => x.includes(want)),
        `${JSON.stringify(spec)} → ${m.join(" | ")}`,
      ).toBe(true);
      expect(m.every((x) => x.startsWith("invalid policy p.ns: "))).toBe(true);
    }
  });

  it("checks the dry-run annotation", () => {
    expect(
      validate(
        ap({ action: "ALLOW", rules: [{}] }, { annotations: { "istio.io/dry-run": "true" } }),
      ).ok,
    ).toBe(true);
    expect(
      messages(
        ap({ action: "AUDIT", rules: [{}] }, { annotations: { "istio.io/dry-run": "true" } }),
      ).join(),
    ).toContain(
      "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action AUDIT in ns/p",
    );
  });

  it("rejects on the first metadata problem, before the kind's own checks, as istiod's validateMetadata", () => {
    // an invalid spec (DENY without rules) is not reported once an annotation rejected the policy
    const r = validate(
      ap(
        { action: "DENY" },
        { annotations: { "internal.istio.io/parents": "x", "istio.io/dry-run": "maybe" } },
      ),
    );
    expect(r.issues.map((i) => `${i.code} ${i.path}: ${i.message}`)).toEqual([
      'IST0106 metadata.annotations["istio.io/dry-run"]: ns/p has annotation istio.io/dry-run with invalid value (maybe): strconv.ParseBool: parsing "maybe": invalid syntax',
    ]);
    // security kinds see the generated name the API server fills in, as the other kinds do
    const pa = {
      apiVersion: "security.istio.io/v1",
      kind: "PeerAuthentication",
      metadata: { generateName: "pa-", annotations: { "istio.io/dry-run": "true" } },
      spec: {},
    };
    expect(validate(pa).issues.map((i) => i.message)).toEqual([
      "default/pa-xxxxx has unsupported annotation istio.io/dry-run, please remove the annotation",
    ]);
  });

  it("checks PeerAuthentication and RequestAuthentication", () => {
    const pa = (spec: unknown) => ({
      apiVersion: "security.istio.io/v1",
      kind: "PeerAuthentication",
      metadata: { name: "a" },
      spec,
    });
    expect(
      validate(
        pa({
          selector: { matchLabels: { app: "x" } },
          portLevelMtls: { "8080": { mode: "DISABLE" } },
        }),
      ).ok,
    ).toBe(true);
    expect(validate(pa({ selector: {} })).issues.map((i) => i.message)).toEqual([
      "workload selector specified without labels",
    ]);
    const ra = (rule: unknown) => ({
      apiVersion: "security.istio.io/v1",
      kind: "RequestAuthentication",
      metadata: { name: "a" },
      spec: { jwtRules: [rule] },
    });
    expect(messages(ra({ issuer: "i", jwks: "{not json" })).join()).toContain("jwks parse error");
    expect(
      messages(
        ra({ issuer: "i", jwks: '{"keys":[{"kty":"RSA","n":"a","e":"AQAB","d":"x"}]}' }),
      ).join(),
    ).toContain(
      "warning IST0133 spec.jwtRules[0].jwks: jwks key at index 0 contains private key material",
    );
  });
});

describe("CEL rules on data beyond the schema's size limits", () => {
  const gateway = (n: number) => ({
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: { name: "g", namespace: "ns" },
    spec: {
      gatewayClassName: "c",
      listeners: Array.from({ length: n }, (_, i) => ({
        name: "l",
        port: i + 1,
        protocol: "HTTP",
      })),
    },
  });
  const messages = (n: number) => validate(gateway(n)).issues.map((i) => i.message);

  it("are evaluated within the limits (64 listeners)", () => {
    expect(messages(3)).toContain(
      'spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway',
    );
  });

  it("are not evaluated on a list longer than maxItems: the API server's cost budget would stop them", () => {
    const m = messages(500);
    expect(m[0]).toBe("spec.listeners: Too many: 500: must have at most 64 items");
    expect(m.filter((x) => x.includes("Listener name must be unique"))).toEqual([]);
    expect(validate(gateway(500)).ok).toBe(false);
  });
});

describe("validateYaml", () => {
  it("reports garbage YAML as one issue with its position", () => {
    const r = validateYaml("apiVersion: v1\nkind: [unclosed\n  metadata: {\n");
    expect(r.ok).toBe(false);
    expect(r.documents).toHaveLength(1);
    const issue = r.documents[0]?.issues[0];
    expect(issue?.code).toBe("yaml/syntax");
    expect(issue?.line).toBeGreaterThanOrEqual(2);
    expect(issue?.column).toBeGreaterThanOrEqual(1);
  });

  it("gives a syntax error the line and column the YAML parser reports (issue #13)", () => {
    const at = (text: string) => {
      const i = validateYaml(text).documents[0]?.issues[0];
      return [i?.code, i?.line, i?.column];
    };
    // A mapping nested in a one-line value: where the value starts.
    expect(at("apiVersion: v1\nkind: X\nmetadata:\n  name: a: b\n")).toEqual(["yaml/syntax", 4, 9]);
    // An unclosed quote: where the text runs out.
    expect(at('apiVersion: v1\nkind: "X\n')).toEqual(["yaml/syntax", 3, 1]);
    // The second document's error is at its own line, not the stream's first.
    expect(validateYaml("a: 1\n---\nb: [x\n").documents[1]?.issues[0]).toMatchObject({
      code: "yaml/syntax",
      line: 4,
      column: 1,
    });
  });

  it("validates multi-document YAML and JSON with lines and columns", () => {
    const text = [
      "apiVersion: apps/v1",
      "kind: Deployment",
      "metadata: {name: d}",
      "---",
      "apiVersion: security.istio.io/v1",
      "kind: AuthorizationPolicy",
      "metadata:",
      "  name: p",
      "spec:",
      "  action: ALLOW",
      "  rules:",
      "  - from:",
      "    - source:",
      "        principalz: [a]",
      "---",
      "",
    ].join("\n");
    const r = validateYaml(text);
    expect(r.documents.map((d) => [d.kind, d.line, d.ok, d.skipped])).toEqual([
      ["Deployment", 1, true, true],
      ["AuthorizationPolicy", 5, false, false],
    ]);
    expect(r.documents[1]?.issues[0]).toMatchObject({
      code: "unknown-field",
      path: "spec.rules[0].from[0].source.principalz",
      line: 14,
      column: 9,
    });
    const json = validateYaml(
      '{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",\n "metadata": {"name": "a"}, "spec": {"mtls": {"mode": "STRICTER"}}}',
    );
    expect(json.documents[0]?.issues[0]).toMatchObject({
      code: "schema/enum",
      path: "spec.mtls.mode",
      line: 2,
    });
  });
});

describe("generated zod schemas", () => {
  it("type Istio master's new fields in istioMaster only", () => {
    const ef = {
      apiVersion: "networking.istio.io/v1alpha3",
      kind: "EnvoyFilter",
      metadata: { name: "e" },
      spec: {
        configPatches: [
          { applyTo: "CLUSTER", patch: { operation: "MERGE_AND_REPLACE_LIST", value: {} } },
        ],
      },
    };
    expect(istioMaster.EnvoyFilterSchema.safeParse(ef).success).toBe(true);
    expect(istio.EnvoyFilterSchema.safeParse(ef).success).toBe(false);
    expect(validate(ef, { istio: "master" }).ok).toBe(true);
    expect(validate(ef).issues[0]?.code).toBe("schema/enum");
  });

  it("parse typed objects and reject unknown fields", () => {
    const doc = parse(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {ports: ['80']}}]}]\n",
    );
    const typed: istio.AuthorizationPolicy = istio.AuthorizationPolicySchema.parse(doc);
    expect(typed.spec?.rules?.[0]?.to?.[0]?.operation?.ports).toEqual(["80"]);
    expect(
      istio.AuthorizationPolicySchema.safeParse({ ...doc, spec: { actoin: "DENY" } }).success,
    ).toBe(false);
    const route = gatewayApi.HTTPRouteSchema.safeParse({
      apiVersion: "gateway.networking.k8s.io/v1beta1",
      kind: "HTTPRoute",
      metadata: { name: "r" },
      spec: { parentRefs: [{ name: "gw" }] },
    });
    expect(route.success).toBe(true);
    expect(
      gatewayApi.SCHEMAS_BY_API_VERSION_KIND["gateway.networking.k8s.io/v1alpha2/TLSRoute"],
    ).toBe(gatewayApi.TLSRouteV1alpha2Schema);
  });
});

describe("robustness", () => {
  it("never throws when any node of a real document is replaced by an odd value", async () => {
    const { loadCorpus } = await import("./testdata/corpus.js");
    const docs = loadCorpus().filter((d) => d.expect === "valid");
    const sample = docs.filter((_, i) => i % 40 === 0);
    const odd: unknown[] = [null, 1.5, -1, "", "x*y", [], [null], {}, { "": 1 }, true, 2 ** 60];
    let runs = 0;
    for (const d of sample) {
      const paths: Array<Array<string | number>> = [];
      const walk = (v: unknown, path: Array<string | number>): void => {
        if (paths.length > 60) return;
        paths.push(path);
        if (Array.isArray(v)) {
          for (const [i, x] of v.entries()) walk(x, [...path, i]);
        } else if (typeof v === "object" && v !== null)
          for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      };
      walk(d.doc, []);
      for (const path of paths.slice(1)) {
        for (const o of odd) {
          const copy = structuredClone(d.doc) as Record<string, unknown>;
          let node: Record<string | number, unknown> = copy;
          for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
          node[path.at(-1) as string | number] = o;
          const r = validate(copy, { istio: d.istio });
          expect(typeof r.ok).toBe("boolean");
          runs++;
        }
      }
    }
    expect(runs).toBeGreaterThan(1000);
  });

  it("reads `[1.2.3.4, 001:db8::]` as go-yaml (kubectl) does: two strings", async () => {
    const { loadYamlDocuments } = await import("./yaml.js");
    expect(loadYamlDocuments("a: [1.2.3.4, 001:db8::]\nb: [k: v]\n")).toEqual([
      { a: ["1.2.3.4", "001:db8::"], b: [{ k: "v" }] },
    ]);
  });

  it("validates the items of a kind: List and honours YAML merge keys", () => {
    const text = [
      "apiVersion: v1",
      "kind: List",
      "items:",
      "- apiVersion: security.istio.io/v1",
      "  kind: PeerAuthentication",
      "  metadata: {name: a}",
      "  spec: &spec",
      "    mtls: {mode: STRICT}",
      "- apiVersion: security.istio.io/v1",
      "  kind: PeerAuthentication",
      "  metadata: {name: b}",
      "  spec:",
      "    <<: *spec",
      "    mtls: {mode: NOPE}",
    ].join("\n");
    const r = validateYaml(text);
    expect(r.documents.map((d) => [d.name, d.line, d.ok])).toEqual([
      ["a", 4, true],
      ["b", 9, false],
    ]);
    expect(r.documents[1]?.issues[0]).toMatchObject({
      code: "schema/enum",
      path: "spec.mtls.mode",
      line: 14,
    });
  });
});
