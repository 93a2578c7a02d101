// Issue #14's proof: garbage in an input field or a policy value never turns a deny into an allow,
// at every entry point that decides. AUTHZ_FAIL_CLOSED_RUNS raises the run count (scripts/
// fail-closed-soak.mjs runs this file with 100,000); `npm test` runs 2,000 per property.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MESH } from "./helpers.testutil.js";
import {
  AuthzError,
  compilePolicies,
  convertAuthorizationPolicy,
  type Decision,
  type DecisionInput,
  evaluate,
  evaluateZtunnelAuthorizations,
  type PolicyResource,
  parsePolicyResource,
  type ZtunnelAuthorization,
  type ZtunnelConnection,
  type ZtunnelRbacResult,
} from "./index.js";

const RUNS = Number(globalThis.process?.env.AUTHZ_FAIL_CLOSED_RUNS ?? 2000);
const SOAK = RUNS > 2000;
// Generous: a timeout is not a timing assertion, it only stops a hung run.
const TIMEOUT = Math.max(60_000, RUNS * 10);

function report(name: string): void {
  if (SOAK) console.log(`fail-closed soak: ${name}: ${RUNS} runs, no counterexample`);
}

// ---------------------------------------------------------------------------------------------
// Policies (raw Kubernetes objects, parsed by the real parser)

const cidr = fc.constantFrom(
  "10.0.0.0/8",
  "10.0.2.0/24",
  "10.0.2.20",
  "192.168.0.0/16",
  "0.0.0.0/0",
  "fd00::/8",
  "::ffff:10.0.0.0/104",
);
const port = fc.constantFrom("80", "8000", "8080", "9090");
const list = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: 1, maxLength: 2 });
const source = fc.record(
  {
    ipBlocks: list(cidr),
    notIpBlocks: list(cidr),
    remoteIpBlocks: list(cidr),
    namespaces: list(fc.constantFrom("bar", "foo", "ba*")),
    principals: list(fc.constantFrom("cluster.local/ns/bar/sa/sleep", "*")),
  },
  { requiredKeys: [] },
);
const operation = fc.record(
  {
    ports: list(port),
    notPorts: list(port),
    paths: list(fc.constantFrom("/admin*", "/get", "/foo/{*}")),
    methods: list(fc.constantFrom("GET", "POST")),
    hosts: list(fc.constantFrom("httpbin.foo*", "*")),
  },
  { requiredKeys: [] },
);
const condition = fc.oneof(
  fc.record({
    key: fc.constantFrom("source.ip", "destination.ip", "remote.ip"),
    values: list(cidr),
  }),
  fc.record({ key: fc.constantFrom("source.ip", "destination.ip"), notValues: list(cidr) }),
  fc.record({ key: fc.constant("destination.port"), values: list(port) }),
  fc.record({ key: fc.constant("destination.port"), notValues: list(port) }),
  fc.record({ key: fc.constant("request.headers[x-a]"), values: fc.constant(["1"]) }),
);
const rule = fc.record(
  {
    from: fc.array(
      source.map((s) => ({ source: Object.keys(s).length ? s : { namespaces: ["bar"] } })),
      { minLength: 1, maxLength: 2 },
    ),
    to: fc.array(
      operation.map((o) => ({ operation: Object.keys(o).length ? o : { ports: ["8080"] } })),
      { minLength: 1, maxLength: 2 },
    ),
    when: fc.array(condition, { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const attach = fc.constantFrom<Record<string, unknown>>(
  {},
  { selector: { matchLabels: { app: "httpbin" } } },
  { targetRefs: [{ kind: "Service", group: "", name: "httpbin" }] },
  { targetRefs: [{ kind: "Gateway", group: "gateway.networking.k8s.io", name: "waypoint" }] },
);
type Raw = Record<string, unknown>;
const rawPolicy = fc
  .tuple(
    fc.nat(50),
    fc.constantFrom("foo", "istio-system"),
    attach,
    fc.constantFrom("ALLOW", "DENY", "DENY", "AUDIT", "CUSTOM"),
    fc.array(rule, { minLength: 1, maxLength: 3 }),
  )
  .map(
    ([n, namespace, a, action, rules]): Raw => ({
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: `p${n}`, namespace },
      spec: { ...a, action, ...(action === "CUSTOM" ? { provider: { name: "ext" } } : {}), rules },
    }),
  );
const rawPolicies = fc.uniqueArray(rawPolicy, {
  maxLength: 6,
  selector: (p) => JSON.stringify((p as { metadata: unknown }).metadata),
});

function parseAll(raws: readonly Raw[]): PolicyResource[] {
  return raws.map((r) => {
    const p = parsePolicyResource(r);
    if (!p.ok) throw new Error(p.issues.map((i) => i.message).join("; "));
    return p.value;
  });
}

// ---------------------------------------------------------------------------------------------
// Requests and garbage

const ip = fc.constantFrom(
  "10.0.2.20",
  "10.1.2.3",
  "192.168.1.1",
  "fd00::1",
  "2001:db8::1",
  "::ffff:10.0.2.20",
);
const validInput = fc
  .record({
    enforcement: fc.constantFrom<"ztunnel" | "waypoint">("ztunnel", "waypoint"),
    principal: fc.constantFrom("spiffe://cluster.local/ns/bar/sa/sleep", null),
    sourceIp: ip,
    destinationIp: ip,
    destinationPort: fc.constantFrom(80, 8000, 8080, 9090),
    method: fc.constantFrom("GET", "POST"),
    path: fc.constantFrom("/admin/x", "/get", "/foo/bar", "/admin"),
    protocol: fc.constantFrom("HTTP", "TCP"),
    xff: fc.option(ip, { nil: undefined }),
    header: fc.boolean(),
    ext: fc.constantFrom<"allow" | "deny">("allow", "deny"),
  })
  .map((r): DecisionInput => {
    const headers: Record<string, string> = r.header ? { "x-a": "1" } : {};
    if (r.xff !== undefined) headers["x-forwarded-for"] = `203.0.113.9, ${r.xff}`;
    return {
      enforcement: r.enforcement,
      workload: { namespace: "foo", labels: { app: "httpbin" } },
      waypoint: { name: "waypoint", namespace: "foo" },
      service: { kind: "Service", name: "httpbin", namespace: "foo", protocol: r.protocol },
      connection: {
        sourcePrincipal: r.principal,
        sourceIp: r.sourceIp,
        destinationIp: r.destinationIp,
        destinationPort: r.destinationPort,
      },
      request: { host: "httpbin.foo:8000", method: r.method, path: r.path, headers, jwt: null },
      customProviders: { ext: r.ext },
    };
  });

const notString = fc.anything().filter((v) => typeof v !== "string");
// A character outside hex digits, ':' and '.' can never be part of an address (zones are refused).
const nonAddressString = fc.string().filter((s) => !/^[0-9a-fA-F:.]*$/.test(s));
const garbageIp = fc.oneof(
  fc.constantFrom(
    "not-an-ip",
    "010.0.0.1",
    " 10.0.0.1",
    "10.0.0.1 ",
    "10.0.0.1%eth0",
    "10.0.0.1/8",
    "",
    "[::1]",
    "10.0.2.256",
    "1.2.3",
    "::ffff:10.0.2.20%0",
    "1::2::3",
    "10.0.2.20\n",
  ),
  nonAddressString,
  notString,
);
const garbagePort = fc.oneof(
  fc.constantFrom(-1, 65536, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "8080", null),
  fc.integer({ min: 65536 }),
  fc.integer({ max: -1 }),
  fc.double().filter((d) => !Number.isInteger(d)),
  fc.anything().filter((v) => typeof v !== "number"),
);
const garbagePath = fc.oneof(
  fc.constantFrom("admin", "", "%2Fadmin", "?x=/admin", "*", "admin/../x", "/admin%00", "/ad min"),
  fc.string().filter((s) => !s.startsWith("/")),
  notString,
);
const garbageMethod = fc.oneof(
  fc.constantFrom("get", "", "GE T", "Post", "GET\r\n"),
  fc.string().filter((s) => !/^[!#$%&'*+\-.^_`|~0-9A-Z]+$/.test(s)),
  notString,
);
const garbageHost = fc.oneof(fc.constantFrom("", " ", "a b", "httpbin\r\n"), notString);
const garbageHeader = fc.oneof(
  fc.constantFrom("1\r\nx-b: 2", "\0"),
  fc.anything().filter((v) => typeof v !== "string" && !Array.isArray(v)),
  fc.array(notString, { minLength: 1, maxLength: 2 }),
);
const garbageXff = fc.oneof(
  fc.constantFrom("junk", "10.0.0.1,", "unknown", "[::1]:80"),
  nonAddressString,
);
const garbageJwt = fc
  .anything()
  .filter((v) => v !== null && (typeof v !== "object" || Array.isArray(v)));
const garbagePrincipal = fc.anything().filter((v) => v !== null && typeof v !== "string");

type Field =
  | "sourceIp"
  | "destinationIp"
  | "destinationPort"
  | "sourcePrincipal"
  | "path"
  | "method"
  | "host"
  | "header"
  | "xff"
  | "jwt"
  | "label";

const garbage: fc.Arbitrary<[Field, unknown]> = fc.oneof(
  fc.tuple(fc.constant<Field>("sourceIp"), garbageIp),
  fc.tuple(fc.constant<Field>("destinationIp"), garbageIp),
  fc.tuple(fc.constant<Field>("destinationPort"), garbagePort),
  fc.tuple(fc.constant<Field>("sourcePrincipal"), garbagePrincipal),
  fc.tuple(fc.constant<Field>("path"), garbagePath),
  fc.tuple(fc.constant<Field>("method"), garbageMethod),
  fc.tuple(fc.constant<Field>("host"), garbageHost),
  fc.tuple(fc.constant<Field>("header"), garbageHeader),
  fc.tuple(fc.constant<Field>("xff"), garbageXff),
  fc.tuple(fc.constant<Field>("jwt"), garbageJwt),
  fc.tuple(fc.constant<Field>("label"), notString),
);

/** The same input with one field replaced (inputs hold only plain data, so a JSON-ish copy works). */
function withGarbage(input: DecisionInput, field: Field, value: unknown): DecisionInput {
  const c = input.connection;
  const r = input.request ?? { host: "", method: "GET", path: "/", headers: {}, jwt: null };
  const out = {
    ...input,
    workload: { ...input.workload, labels: { ...input.workload.labels } },
    connection: { ...c },
    request: { ...r, headers: { ...r.headers } },
  } as Record<string, unknown> & {
    workload: { labels: Record<string, unknown> };
    connection: Record<string, unknown>;
    request: Record<string, unknown> & { headers: Record<string, unknown> };
  };
  if (field === "sourceIp" || field === "destinationIp" || field === "destinationPort")
    out.connection[field] = value;
  else if (field === "sourcePrincipal") out.connection.sourcePrincipal = value;
  else if (field === "path" || field === "method" || field === "host" || field === "jwt")
    out.request[field] = value;
  else if (field === "header") out.request.headers["x-a"] = value;
  else if (field === "xff") out.request.headers["x-forwarded-for"] = value;
  else out.workload.labels.app = value;
  return out as unknown as DecisionInput;
}

/** The decision, or "error" for a typed AuthzError; any other throw fails the property. */
function attempt<T>(f: () => T): T | "error" {
  try {
    return f();
  } catch (e) {
    if (e instanceof AuthzError) return "error";
    throw e;
  }
}

function neverAllowsWhatWasDenied(
  valid: Decision,
  bad: Decision | "error",
  field: Field,
  value: unknown,
): void {
  if (valid.decision !== "deny") return;
  const got = bad === "error" ? "error" : bad.decision;
  if (got === "allow")
    expect.fail(
      `garbage ${field}=${String(JSON.stringify(value))} allowed what the valid request's ${valid.decidedBy} denied`,
    );
}

// ---------------------------------------------------------------------------------------------

describe("fail closed: garbage in a request field never allows what a valid value denied", () => {
  for (const enforcement of ["ztunnel", "waypoint"] as const) {
    it(
      `${enforcement} decide (evaluate): ${RUNS} runs`,
      () => {
        fc.assert(
          fc.property(rawPolicies, validInput, garbage, (raws, input, [field, value]) => {
            const ps = parseAll(raws);
            const i = { ...input, enforcement };
            const valid = evaluate(ps, MESH, i);
            const bad = attempt(() => evaluate(ps, MESH, withGarbage(i, field, value)));
            neverAllowsWhatWasDenied(valid, bad, field, value);
          }),
          { numRuns: RUNS },
        );
        report(`${enforcement} decide`);
      },
      TIMEOUT,
    );
  }

  it(
    `the compiled index, reused for valid and garbage inputs at both points: ${RUNS} runs`,
    () => {
      fc.assert(
        fc.property(
          rawPolicies,
          fc.array(fc.tuple(validInput, garbage), { minLength: 1, maxLength: 4 }),
          (raws, cases) => {
            const index = compilePolicies(parseAll(raws), MESH);
            for (const [input, [field, value]] of cases) {
              const bad = attempt(() => index.decide(withGarbage(input, field, value)));
              const valid = index.decide(input);
              neverAllowsWhatWasDenied(valid, bad, field, value);
            }
          },
        ),
        { numRuns: RUNS },
      );
      report("compiled index");
    },
    TIMEOUT,
  );

  it(
    `the Authorization form (evaluateZtunnelAuthorizations): ${RUNS} runs`,
    () => {
      const connField = fc.oneof(
        fc.tuple(fc.constant("sourceIp" as const), garbageIp),
        fc.tuple(fc.constant("destinationIp" as const), garbageIp),
        fc.tuple(fc.constant("destinationPort" as const), garbagePort),
        fc.tuple(fc.constant("sourceIdentity" as const), garbagePrincipal),
      );
      fc.assert(
        fc.property(rawPolicies, validInput, connField, (raws, input, [field, value]) => {
          const auths = authorizations(parseAll(raws));
          const conn: ZtunnelConnection = {
            sourceIp: input.connection.sourceIp,
            destinationIp: input.connection.destinationIp,
            destinationPort: input.connection.destinationPort,
            sourceIdentity: input.connection.sourcePrincipal,
          };
          const valid = evaluateZtunnelAuthorizations(auths, conn);
          const bad = attempt(() =>
            evaluateZtunnelAuthorizations(auths, { ...conn, [field]: value } as ZtunnelConnection),
          );
          formNeverAllowsWhatWasDenied(valid, bad, `${field}=${String(JSON.stringify(value))}`);
        }),
        { numRuns: RUNS },
      );
      report("Authorization form");
    },
    TIMEOUT,
  );
});

function authorizations(ps: readonly PolicyResource[]): ZtunnelAuthorization[] {
  const out: ZtunnelAuthorization[] = [];
  for (const p of ps) {
    if (p.kind !== "AuthorizationPolicy") continue;
    const a = convertAuthorizationPolicy(p, MESH.rootNamespace).authorization;
    if (a) out.push(a);
  }
  return out;
}

function formNeverAllowsWhatWasDenied(
  valid: ZtunnelRbacResult,
  bad: ZtunnelRbacResult | "error",
  what: string,
): void {
  if (!valid.allowed && bad !== "error" && bad.allowed)
    expect.fail(`garbage ${what} allowed what the valid connection was denied (${valid.reason})`);
}

// ---------------------------------------------------------------------------------------------
// Garbage in a policy value

const garbageValue = fc.oneof(
  fc.constantFrom("10.0.0.0/33", "65536", "-1", "http", "", "010.0.0.1", "10.0.0.0/08", "bogus"),
  nonAddressString,
);

/** Every L4 value slot (CIDR or port) in raw policies: [policy, path to the list, index]. */
function slots(raws: readonly Raw[]): (readonly (string | number)[])[] {
  const out: (readonly (string | number)[])[] = [];
  const l4 = new Set(["ipBlocks", "notIpBlocks", "remoteIpBlocks", "ports", "notPorts"]);
  const whenKeys = new Set(["source.ip", "destination.ip", "remote.ip", "destination.port"]);
  raws.forEach((raw, p) => {
    const rules = (raw.spec as { rules: Raw[] }).rules;
    rules.forEach((r, ri) => {
      for (const [part, inner] of [
        ["from", "source"],
        ["to", "operation"],
      ] as const)
        ((r[part] as Raw[] | undefined) ?? []).forEach((e, ei) => {
          for (const [k, v] of Object.entries(e[inner] as Raw))
            if (l4.has(k))
              (v as string[]).forEach((_, vi) => {
                out.push([p, "spec", "rules", ri, part, ei, inner, k, vi]);
              });
        });
      ((r.when as Raw[] | undefined) ?? []).forEach((w, wi) => {
        if (!whenKeys.has(w.key as string)) return;
        for (const k of ["values", "notValues"])
          ((w[k] as string[] | undefined) ?? []).forEach((_, vi) => {
            out.push([p, "spec", "rules", ri, "when", wi, k, vi]);
          });
      });
    });
  });
  return out;
}

function replaced(raws: readonly Raw[], slot: readonly (string | number)[], value: string): Raw[] {
  const copy = JSON.parse(JSON.stringify(raws)) as Raw[];
  let cur: unknown = copy;
  for (const k of slot.slice(0, -1)) cur = (cur as Record<string | number, unknown>)[k];
  (cur as unknown[])[slot.at(-1) as number] = value;
  return copy;
}

describe("fail closed: an unparsable CIDR or port in any policy never allows what it denied", () => {
  for (const enforcement of ["ztunnel", "waypoint"] as const) {
    it(
      `${enforcement} decide: ${RUNS} runs`,
      () => {
        fc.assert(
          fc.property(
            rawPolicies,
            validInput,
            fc.nat(),
            garbageValue,
            (raws, input, pick, value) => {
              const all = slots(raws);
              fc.pre(all.length > 0);
              const slot = all[pick % all.length] as (string | number)[];
              const i = { ...input, enforcement };
              const valid = evaluate(parseAll(raws), MESH, i);
              if (valid.decision !== "deny") return;
              const bad = evaluate(parseAll(replaced(raws, slot, value)), MESH, i);
              if (bad.decision === "allow")
                expect.fail(
                  `${JSON.stringify(value)} at ${slot.join(".")} allowed what ${valid.decidedBy} denied`,
                );
            },
          ),
          { numRuns: RUNS },
        );
        report(`${enforcement} policy values`);
      },
      TIMEOUT,
    );
  }

  it(
    `the Authorization form with unusable values: ${RUNS} runs`,
    () => {
      const unusable = fc.oneof(
        fc.tuple(fc.constantFrom("sourceIps", "notSourceIps", "destinationIps"), garbageValue),
        fc.tuple(
          fc.constantFrom("destinationPorts", "notDestinationPorts"),
          fc.oneof(garbagePort, fc.constant(65536)),
        ),
        fc.tuple(
          fc.constantFrom("principals", "notPrincipals", "namespaces"),
          fc.oneof(fc.constant({}), fc.record({ exact: notString }), notString),
        ),
      );
      fc.assert(
        fc.property(
          rawPolicies,
          validInput,
          fc.nat(),
          unusable,
          (raws, input, pick, [key, value]) => {
            const auths = authorizations(parseAll(raws));
            const matches: { a: number; r: number; c: number; m: number }[] = [];
            auths.forEach((a, ai) => {
              a.rules.forEach((rule, r) => {
                rule.forEach((clause, c) => {
                  clause.forEach((_, m) => {
                    matches.push({ a: ai, r, c, m });
                  });
                });
              });
            });
            fc.pre(matches.length > 0);
            const at = matches[pick % matches.length] as (typeof matches)[number];
            const conn: ZtunnelConnection = {
              sourceIp: input.connection.sourceIp,
              destinationIp: input.connection.destinationIp,
              destinationPort: input.connection.destinationPort,
              sourceIdentity: input.connection.sourcePrincipal,
            };
            const valid = evaluateZtunnelAuthorizations(auths, conn);
            const copy = JSON.parse(JSON.stringify(auths)) as {
              rules: Record<string, unknown[]>[][][];
            }[];
            const match = copy[at.a]?.rules[at.r]?.[at.c]?.[at.m] as Record<string, unknown[]>;
            match[key] = [...(match[key] ?? []), value];
            const bad = evaluateZtunnelAuthorizations(copy as never, conn);
            formNeverAllowsWhatWasDenied(valid, bad, `${key}: ${String(JSON.stringify(value))}`);
          },
        ),
        { numRuns: RUNS },
      );
      report("Authorization form policy values");
    },
    TIMEOUT,
  );
});
