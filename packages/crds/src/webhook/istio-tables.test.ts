// Istio's own validation test tables (istio/istio pkg/config/validation validation_test.go,
// virtualservice_test.go and agent/validation_test.go, converted to JSON in
// testdata/istio-validation-tables.json: each case's name, input and expected verdict, warning or
// message fragment) run against the ported checks, each through the function its Go test calls.
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { InternalIssue } from "../model.js";
import {
  exportToProblems,
  fqdnProblem,
  gatewayWildcardDomainProblem,
  headerValueProblem,
  ipProblem,
  ipSubnetProblem,
  matchHeaderNameProblem,
  type Obj,
  obj,
  portNameProblem,
  str,
  strictHeaderNameProblem,
  wildcardDomainProblem,
} from "./common.js";
import {
  checkClientTLS,
  checkConnectionPool,
  checkLoadBalancer,
  checkLocalityLb,
  checkOutlierDetection,
  checkTrafficPolicy,
  checkZoneAwareLb,
  localitiesProblem,
} from "./destination-rule.js";
import { checkServer, checkServerTLS } from "./gateway.js";
import { checkWebhook } from "./index.js";
import { Report } from "./report.js";
import {
  checkCORS,
  checkDestination,
  checkDirectResponse,
  checkFault,
  checkHTTPRoute,
  checkRedirect,
  checkRetry,
  checkRewrite,
  checkRouteDestinations,
  httpStatusProblem,
} from "./virtual-service.js";

type Case = Record<string, unknown>;
/** The fixture's compact forms: `{$repeat: [c, n]}` and `{$base64: s}` (a bytes field). */
function expand(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(expand);
  const o = obj(v);
  if (o === undefined) return v;
  if (Array.isArray(o.$repeat)) return String(o.$repeat[0]).repeat(Number(o.$repeat[1]));
  if ("$base64" in o) return Buffer.from(String(expand(o.$base64)), "utf8").toString("base64");
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, expand(x)]));
}
const tables = expand(
  JSON.parse(
    readFileSync(new URL("./testdata/istio-validation-tables.json", import.meta.url), "utf8"),
  ),
) as { tests: Record<string, Case[]> };

interface Outcome {
  errors: string[];
  warnings: string[];
}

function collect(fn: (r: Report) => void): Outcome {
  const out: InternalIssue[] = [];
  fn(new Report(out));
  return {
    errors: out.filter((i) => i.severity === "error").map((i) => i.message),
    warnings: out.filter((i) => i.severity === "warning").map((i) => i.message),
  };
}
function problem(p: string | undefined): Outcome {
  return { errors: p === undefined ? [] : [p], warnings: [] };
}
function problems(ps: string[]): Outcome {
  return { errors: ps, warnings: [] };
}
function kind(k: string, spec: unknown, meta: Obj = { name: "foo", namespace: "bar" }): Outcome {
  return collect((r) => {
    checkWebhook(
      k,
      { apiVersion: "networking.istio.io/v1", kind: k, metadata: meta, spec: spec ?? {} },
      r.out,
    );
  });
}

/** How a Go test states its expectation, read from the case's fields. */
type Expect =
  | { valid: string; warn?: string; warnDefault?: boolean } // booleans: error-free, has-warning
  | { out: string; warning?: string }; // message fragments ("" = none)

interface Table {
  run: (c: Case) => Outcome;
  expect: Expect;
}

const V = (valid = "valid", warn?: string, warnDefault?: boolean): Expect =>
  warn === undefined
    ? { valid }
    : warnDefault === undefined
      ? { valid, warn }
      : { valid, warn, warnDefault };
const M = (out = "out", warning?: string): Expect =>
  warning === undefined ? { out } : { out, warning };

const TABLES: Record<string, Table> = {
  TestValidateGateway: { run: (c) => kind("Gateway", c.in), expect: M("out", "warning") },
  TestValidateK8sGateway: {
    run: (c) =>
      kind("Gateway", c.in, {
        name: "foo",
        namespace: "bar",
        annotations: { "internal.istio.io/gateway-semantics": "gateway" },
      }),
    expect: M("out", "warning"),
  },
  TestValidateServer: {
    run: (c) => collect((r) => checkServer(r, [], obj(c.in) ?? {}, false)),
    expect: M(),
  },
  TestValidateServerPort: {
    run: (c) =>
      collect((r) =>
        checkServer(
          r.errorsOnly(),
          [],
          { hosts: ["foo.bar.com"], port: c.in, bind: c.bind },
          false,
        ),
      ),
    expect: M(),
  },
  TestValidateTlsOptions: {
    run: (c) => collect((r) => checkServerTLS(r, [], c.in)),
    expect: M("out", "warning"),
  },
  TestStrictValidateHTTPHeaderName: {
    run: (c) => problem(strictHeaderNameProblem(str(c.name))),
    expect: V(),
  },
  TestValidateHTTPHeaderName: {
    run: (c) => problem(matchHeaderNameProblem(str(c.name))),
    expect: V(),
  },
  TestValidateCORSPolicy: { run: (c) => collect((r) => checkCORS(r, [], c.in)), expect: V() },
  TestValidateHTTPStatus: { run: (c) => problem(httpStatusProblem(Number(c.in))), expect: V() },
  TestValidateHTTPFaultInjectionAbort: {
    run: (c) =>
      collect((r) => (c.in === null ? undefined : checkFault(r.errorsOnly(), [], { abort: c.in }))),
    expect: V(),
  },
  TestValidateHTTPFaultInjectionDelay: {
    run: (c) =>
      collect((r) => (c.in === null ? undefined : checkFault(r.errorsOnly(), [], { delay: c.in }))),
    expect: V(),
  },
  TestValidateHTTPRetry: { run: (c) => collect((r) => checkRetry(r, [], c.in)), expect: V() },
  TestValidateHTTPRewrite: { run: (c) => collect((r) => checkRewrite(r, [], c.in)), expect: V() },
  TestValidateUriRegexRewrite: {
    run: (c) =>
      collect((r) => (c.in === null ? undefined : checkRewrite(r, [], { uriRegexRewrite: c.in }))),
    expect: V(),
  },
  TestValidatePortName: { run: (c) => problem(portNameProblem(str(c.name))), expect: V() },
  TestValidateHTTPRedirect: {
    run: (c) => collect((r) => checkRedirect(r, [], c.redirect, [])),
    expect: V(),
  },
  TestValidateHTTPDirectResponse: {
    run: (c) => collect((r) => checkDirectResponse(r, [], c.directResponse)),
    expect: V("valid", "warning", false),
  },
  TestValidateDestination: {
    run: (c) => collect((r) => checkDestination(r, [], c.destination)),
    expect: V(),
  },
  TestValidateHTTPRoute: {
    run: (c) => collect((r) => checkHTTPRoute(r, [], obj(c.route) ?? {}, false, false)),
    expect: V(),
  },
  TestValidateRootHTTPRoute: {
    run: (c) => collect((r) => checkHTTPRoute(r, [], obj(c.route) ?? {}, false, false)),
    expect: V(),
  },
  TestValidateDelegateHTTPRoute: {
    run: (c) => collect((r) => checkHTTPRoute(r, [], obj(c.route) ?? {}, true, false)),
    expect: V(),
  },
  TestValidateRouteDestination: {
    run: (c) =>
      collect((r) => checkRouteDestinations(r, [], Array.isArray(c.routes) ? c.routes : [], false)),
    expect: V(),
  },
  TestValidateVirtualService: {
    run: (c) => kind("VirtualService", c.in, {}),
    expect: V("valid", "warning", false),
  },
  TestValidateChainingVirtualService: { run: (c) => kind("VirtualService", c.in, {}), expect: V() },
  TestValidateWorkloadEntry: {
    run: (c) => kind("WorkloadEntry", c.in, {}),
    expect: V("valid", "warning", false),
  },
  TestValidateWorkloadGroup: {
    run: (c) => kind("WorkloadGroup", c.in, {}),
    expect: V("valid", "warning", false),
  },
  TestValidateDestinationRule: {
    run: (c) => kind("DestinationRule", c.in),
    expect: V("valid", "warning", false),
  },
  TestValidateTrafficPolicy: {
    run: (c) => collect((r) => checkTrafficPolicy(r.errorsOnly(), [], c.in, "")),
    expect: V(),
  },
  TestValidateConnectionPool: {
    run: (c) => collect((r) => checkConnectionPool(r, [], c.in)),
    expect: V(),
  },
  TestValidateLoadBalancer: {
    run: (c) => collect((r) => checkLoadBalancer(r.errorsOnly(), [], c.in, undefined)),
    expect: V(),
  },
  TestValidateOutlierDetection: {
    run: (c) => collect((r) => checkOutlierDetection(r, [], c.in)),
    expect: V("valid", "warn", false),
  },
  TestValidateServiceEntries: {
    run: (c) =>
      kind("ServiceEntry", c.in, { name: "foo", namespace: "bar", labels: c.labels ?? {} }),
    expect: V("valid", "warning", false),
  },
  TestValidateSidecar: { run: (c) => kind("Sidecar", c.in), expect: V("valid", "warn", false) },
  Test_validateExportTo: {
    run: (c) =>
      problems(
        exportToProblems(
          str(c.namespace),
          c.exportTo,
          c.isServiceEntry === true,
          c.isDestinationRuleWithSelector === true,
        ),
      ),
    expect: { valid: "!wantErr" },
  },
  TestValidateEnvoyFilter: {
    // The Go test calls validateEnvoyFilter, without ValidateEnvoyFilter's standing warning.
    run: (c) => {
      const o = kind("EnvoyFilter", c.in);
      return {
        errors: o.errors,
        warnings: o.warnings.filter((w) => !w.startsWith("EnvoyFilter exposes")),
      };
    },
    expect: M("error", "warning"),
  },
  TestValidateTelemetry: { run: (c) => kind("Telemetry", c.in), expect: M("err", "warning") },
  TestValidateProxyConfig: { run: (c) => kind("ProxyConfig", c.in), expect: M("out", "warning") },
  TestValidateTelemetryFilter: {
    run: (c) => kind("Telemetry", { accessLogging: [{ filter: c.filter }] }),
    expect: V(),
  },
  TestValidateWasmPlugin: { run: (c) => kind("WasmPlugin", c.in), expect: M("out", "warning") },
  TestValidateTrafficExtension: {
    run: (c) => kind("TrafficExtension", c.in),
    expect: M("out", "warning"),
  },
  TestValidateHTTPHeaderValue: {
    run: (c) => problem(headerValueProblem(str(c.input))),
    expect: { valid: "!expected" },
  },
  TestValidateFQDN: { run: (c) => problem(fqdnProblem(str(c.fqdn))), expect: V() },
  TestValidateTLS: { run: (c) => collect((r) => checkClientTLS(r, [], c.tls, "")), expect: V() },
  TestValidateWildcardDomain: {
    run: (c) => problem(wildcardDomainProblem(str(c.in))),
    expect: M(),
  },
  TestValidateWildcardDomainForVirtualServiceBoundToGateway: {
    run: (c) => problem(gatewayWildcardDomainProblem(c.sni === true, str(c.in))),
    expect: M(),
  },
  TestValidateLocalityLbSetting: {
    run: (c) => collect((r) => checkLocalityLb(r, [], c.in, c.outlier)),
    expect: { valid: "!err", warn: "warn", warnDefault: false },
  },
  TestValidateZoneAwareLbSetting: {
    run: (c) => collect((r) => checkZoneAwareLb(r, [], c.in, c.outlier)),
    expect: { valid: "!err", warn: "warn", warnDefault: false },
  },
  TestValidateLocalities: {
    run: (c) =>
      problem(localitiesProblem((Array.isArray(c.localities) ? c.localities : []).map(str))),
    expect: V(),
  },
  TestValidationIPAddress: { run: (c) => problem(ipProblem(str(c.addr))), expect: V("ok") },
  TestValidationIPSubnet: { run: (c) => problem(ipSubnetProblem(str(c.subnet))), expect: V("ok") },
};

/**
 * Where our result differs from the Go test's on purpose or by a known limit, with the reason
 * (also listed in docs/crds.md).
 */
const DIVERGENCES: Record<string, string> = {
  "TestValidateEnvoyFilter#16 invalid patch value":
    "the patch value is not decoded into Envoy's Cluster proto, so `name: false` is not found",
};

function verdict(t: Table, c: Case, got: Outcome): string | undefined {
  const e = t.expect;
  const all = got.errors.join("\n");
  const warns = got.warnings.join("\n");
  if ("out" in e) {
    const want = str(c[e.out]);
    if ((want === "") !== (got.errors.length === 0) || !all.includes(want))
      return `errors ${JSON.stringify(all)}, want ${JSON.stringify(want)}`;
    if (e.warning !== undefined) {
      const w = str(c[e.warning]);
      if ((w === "") !== (got.warnings.length === 0) || !warns.includes(w))
        return `warnings ${JSON.stringify(warns)}, want ${JSON.stringify(w)}`;
    }
    return undefined;
  }
  const negate = e.valid.startsWith("!");
  const field = negate ? e.valid.slice(1) : e.valid;
  const raw = c[field];
  const truthy = raw !== undefined && raw !== null && raw !== false;
  const valid = negate ? !truthy : raw === true;
  if (valid !== (got.errors.length === 0))
    return `valid=${got.errors.length === 0} (${all}), want ${valid}`;
  if (e.warn !== undefined) {
    const w = c[e.warn];
    const want = w === undefined ? e.warnDefault : w === true;
    if (want !== undefined && want !== got.warnings.length > 0)
      return `warning=${got.warnings.length > 0} (${warns}), want ${want}`;
  }
  return undefined;
}

describe("Istio's validation test tables", () => {
  for (const [test, cases] of Object.entries(tables.tests)) {
    const t = TABLES[test];
    if (t === undefined) continue;
    it(`${test} (${cases.length} cases)`, () => {
      const failures: string[] = [];
      cases.forEach((c, i) => {
        const key = `${test}#${i} ${str(c.name)}`;
        const why = verdict(t, c, t.run(c));
        if (why !== undefined && DIVERGENCES[key] === undefined) failures.push(`${key}: ${why}`);
        if (why === undefined && DIVERGENCES[key] !== undefined)
          failures.push(`${key}: now agrees; remove it from DIVERGENCES`);
      });
      expect(failures).toEqual([]);
    });
  }

  it("covers every table in the fixture", () => {
    expect(Object.keys(tables.tests).filter((k) => TABLES[k] === undefined)).toEqual([]);
    const total = Object.values(tables.tests).reduce((n, c) => n + c.length, 0);
    expect(total).toBeGreaterThan(700);
  });
});
