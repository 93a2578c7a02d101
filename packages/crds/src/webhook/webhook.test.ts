// The webhook checks through the whole pipeline: validateYaml positions, error vs warning, the
// dispatch by kind, and the cases the issue names.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validate } from "../validate.js";
import { validateYaml } from "../yaml.js";

function issues(yaml: string, options = {}): string[] {
  const r = validateYaml(yaml, options);
  return r.documents.flatMap((d) =>
    d.issues.map((i) => `${i.line}:${i.column} ${i.severity} ${i.code} ${i.path}: ${i.message}`),
  );
}

const vs = (spec: string, meta = "") => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
  namespace: demo${meta}
spec:
${spec}`;

describe("VirtualService", () => {
  it("accepts empty hosts (a delegate) with one route of weight 150, as istiod does", () => {
    const y = vs(`  hosts: []
  http:
  - route:
    - destination:
        host: reviews
      weight: 150`);
    expect(issues(y)).toEqual([]);
  });

  it("reports hosts, weights and subsets at their lines", () => {
    const y = vs(`  hosts: ["*"]
  http:
  - route:
    - destination:
        host: reviews
        subset: V_1
      weight: 0
    - destination:
        host: ratings
      weight: 0`);
    expect(issues(y)).toEqual([
      "7:11 error IST0106 spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh gateway",
      "12:9 error IST0106 spec.http[0].route[0].destination.subset: subset name is invalid: V_1",
      "9:5 error IST0106 spec.http[0].route: total destination weight = 0",
    ]);
  });

  it("warns of unreachable rules and stays valid", () => {
    const y = vs(`  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: ratings`);
    // A warning never makes a document invalid.
    const errors = validateYaml(y).documents.flatMap((d) =>
      d.issues.filter((i) => i.severity === "error"),
    );
    expect(errors).toEqual([]);
    expect(issues(y)).toEqual([
      "12:5 warning IST0133 spec.http[1]: virtualService rule #1 not used (only the last rule can have no matches)",
    ]);
  });

  it("checks retries, fault, CORS, redirect and header operations", () => {
    const y = vs(`  hosts: [reviews]
  http:
  - retries:
      attempts: 0
      retryOn: 5xx,bogus
    fault:
      abort:
        httpStatus: 700
    corsPolicy:
      allowMethods: [GETT]
    headers:
      request:
        set:
          ":path": /x
    redirect:
      uri: /a
      redirectCode: 200`);
    expect(issues(y).map((l) => l.replace(/^\S+ /, ""))).toEqual([
      "error IST0106 spec.http[0]: HTTP route cannot contain both fault and redirect",
      'error IST0106 spec.http[0].headers.request.set.:path: invalid header ":path": header cannot have ":" prefix',
      'error IST0106 spec.http[0].corsPolicy.allowMethods[0]: "GETT" is not a supported HTTP method',
      "error IST0106 spec.http[0].fault.abort.httpStatus: HTTP status 700 is not in range 200-599",
      "error IST0106 spec.http[0].redirect: 200 is not a valid redirect code, must be 3xx",
      "error IST0106 spec.http[0].retries: http retry policy configured when attempts are set to 0 (disabled)",
      'error IST0106 spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy',
    ]);
  });

  it("rejects istio.io/dry-run on kinds other than AuthorizationPolicy", () => {
    const y = vs(
      `  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews`,
      `
  annotations:
    istio.io/dry-run: "true"`,
    );
    expect(issues(y)).toEqual([
      '7:5 error IST0106 metadata.annotations["istio.io/dry-run"]: demo/r has unsupported annotation istio.io/dry-run, please remove the annotation',
    ]);
  });

  it("is skipped with semantic: false and when the schema step already failed", () => {
    const y = vs(`  hosts: ["*"]
  http:
  - route:
    - destination:
        host: reviews`);
    expect(issues(y, { semantic: false })).toEqual([]);
    const bad = vs(`  hosts: ["*"]
  tcp: 3`);
    expect(issues(bad).some((l) => l.includes("IST0106"))).toBe(false);
  });
});

describe("the other kinds", () => {
  const doc = (kind: string, group: string, spec: unknown) => ({
    apiVersion: `${group}/${kind === "WasmPlugin" ? "v1alpha1" : kind === "ProxyConfig" ? "v1beta1" : kind === "Telemetry" ? "v1" : kind === "EnvoyFilter" ? "v1alpha3" : "v1"}`,
    kind,
    metadata: { name: "x", namespace: "demo" },
    spec,
  });
  const net = (kind: string, spec: unknown) => doc(kind, "networking.istio.io", spec);
  const said = (d: unknown) =>
    validate(d).issues.map((i) => `${i.severity} ${i.path}: ${i.message}`);

  it("DestinationRule: duplicate subsets, TLS and outlier detection", () => {
    expect(
      said(
        net("DestinationRule", {
          host: "reviews",
          trafficPolicy: {
            tls: { mode: "MUTUAL" },
            outlierDetection: { consecutiveLocalOriginFailures: 3 },
          },
          subsets: [
            { name: "v1", labels: { version: "v1" } },
            { name: "v1", labels: { version: "v2" } },
          ],
        }),
      ),
    ).toEqual([
      "error spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
      "error spec.trafficPolicy.tls: client certificate required for mutual tls",
      "error spec.trafficPolicy.tls: private key required for mutual tls",
      "error spec.subsets[1].name: duplicate subset names: v1",
    ]);
  });

  it("Gateway: TLS required for HTTPS, unique port names, the httpsRedirect warning", () => {
    expect(
      said(
        net("Gateway", {
          servers: [
            { hosts: ["*"], port: { number: 443, name: "p", protocol: "HTTPS" } },
            {
              hosts: ["ns/foo.example.com"],
              port: { number: 9000, name: "p", protocol: "TCP" },
              tls: { httpsRedirect: true },
            },
          ],
        }),
      ),
    ).toEqual([
      "error spec.servers[0].tls: server must have TLS settings for HTTPS/TLS protocols",
      "error spec.servers[1].tls: server cannot have TLS settings for non HTTPS/TLS ports",
      "error spec.servers[1].port.name: port names in servers must be unique: duplicate name p",
      "warning spec.servers[1].tls.httpsRedirect: tls.httpsRedirect should only be used with http servers",
    ]);
  });

  it("ServiceEntry: several hosts with a TCP port, endpoint ports", () => {
    expect(
      said(
        net("ServiceEntry", {
          hosts: ["a.example.com", "b.example.com"],
          ports: [{ number: 5432, name: "pg", protocol: "TCP" }],
          resolution: "DNS",
          endpoints: [{ address: "db.example.com", ports: { mysql: 3306 } }],
        }),
      ),
    ).toEqual([
      "error spec.endpoints[0].ports.mysql: endpoint port 3306 is not defined by the service entry",
      "error spec.ports[0]: multiple hosts provided with non-HTTP, non-TLS ports",
    ]);
  });

  it("Sidecar: egress hosts need a namespace; duplicates warn", () => {
    expect(
      said(
        net("Sidecar", { egress: [{ hosts: ["foo.example.com", "./*", "./bar.example.com"] }] }),
      ),
    ).toEqual([
      "error spec.egress[0].hosts[0]: host must be of form namespace/dnsName",
      "warning spec.egress[0].hosts[2]: duplicated egress host: ./bar.example.com",
    ]);
  });

  it("WorkloadEntry and WorkloadGroup", () => {
    expect(said(net("WorkloadEntry", { network: "n1" }))).toEqual([
      'warning spec.network: address is unset with network "n1"',
    ]);
    expect(said(net("WorkloadEntry", { address: "bad..host" }))).toEqual([
      'error spec.address: endpoint address "bad..host" is not a valid FQDN or an IP address',
    ]);
    // Where the CRD's own rule catches it first, the webhook is not asked (as in a cluster).
    expect(said(net("WorkloadEntry", { address: "unix:///sock", ports: { http: 80 } }))).toEqual([
      'error spec: spec: Invalid value: "object": UDS may not include ports',
    ]);
    expect(said(net("WorkloadGroup", { template: {}, probe: { periodSeconds: 5 } }))).toEqual([
      "error spec.probe: unknown health check method <nil>",
    ]);
  });

  it("EnvoyFilter: the standing warning, missing patches, proxy version regexes, sub-filters", () => {
    const patch = { operation: "MERGE", value: { name: "x" } };
    expect(
      said(
        net("EnvoyFilter", {
          configPatches: [
            { applyTo: "CLUSTER" },
            { applyTo: "CLUSTER", match: { proxy: { proxyVersion: "1\\.2(" } }, patch },
            {
              applyTo: "NETWORK_FILTER",
              match: {
                listener: {
                  filterChain: {
                    filter: {
                      name: "envoy.filters.network.http_connection_manager",
                      subFilter: { name: "a" },
                    },
                  },
                },
              },
              patch,
            },
            {
              applyTo: "HTTP_FILTER",
              match: {
                listener: { filterChain: { filter: { name: "envoy.http_connection_manager" } } },
              },
              patch,
            },
          ],
        }),
      ),
    ).toEqual([
      "warning : EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
      "error spec.configPatches[0]: Envoy filter: missing patch",
      "error spec.configPatches[1].match.proxy.proxyVersion: Envoy filter: invalid regex for proxy version, [error parsing regexp: missing closing ): `1\\.2(`]",
      "error spec.configPatches[2].match.listener.filterChain.filter: Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
      'warning spec.configPatches[3].match.listener.filterChain.filter.name: using deprecated filter name "envoy.http_connection_manager"; use "envoy.filters.network.http_connection_manager" instead',
    ]);
  });

  it("Telemetry, ProxyConfig and WasmPlugin", () => {
    expect(
      said(
        doc("Telemetry", "telemetry.istio.io", {
          tracing: [{}, {}],
          accessLogging: [{ filter: { expression: "response.code >=" } }],
        }),
      ),
    ).toEqual([
      "warning spec.tracing: multiple tracing is not currently supported",
      "error spec.accessLogging[0].filter.expression: must be a valid CEL expression, <input>:1:15: found > but expecting end of input",
    ]);
    expect(said(doc("ProxyConfig", "networking.istio.io", { selector: {} }))).toEqual([
      "warning spec.selector: workload selector specified without labels",
    ]);
    expect(said(doc("WasmPlugin", "extensions.istio.io", { url: "ftp://host/x.wasm" }))).toEqual([
      'error spec.url: spec.url: Invalid value: "string": url must have schema one of [http, https, file, oci]',
    ]);
  });
});

describe("istioctl analyze's expectations (corpus analyzer/expected-messages.json)", () => {
  it("finds exactly the unreachable rules and ineffective matches of Istio's dupmatches case", () => {
    const corpus = new URL("../../testdata/corpus/analyzer/", import.meta.url);
    const expected = (
      JSON.parse(readFileSync(new URL("expected-messages.json", corpus), "utf8")) as Array<{
        name: string;
        inputFiles: string[];
        expected: Array<{ message: string; resource: string }>;
      }>
    ).find((e) => e.name === "dupmatches");
    expect(expected).toBeDefined();
    const got = new Set<string>();
    for (const f of expected?.inputFiles ?? []) {
      const text = readFileSync(
        new URL(`istio-istio/pkg/config/analysis/analyzers/${f}`, corpus),
        "utf8",
      );
      for (const d of validateYaml(text).documents) {
        for (const i of d.issues) {
          // istioctl analyze reports these webhook warnings as IST0130/IST0131.
          const type = i.message.includes("not used (duplicate/overlapping match")
            ? "VirtualServiceIneffectiveMatch"
            : i.message.includes(" not used (")
              ? "VirtualServiceUnreachableRule"
              : `${i.code} ${i.message}`;
          const ns =
            d.namespace !== undefined && d.namespace !== "default" ? `${d.namespace}/` : "";
          got.add(`${type} VirtualService ${ns}${d.name ?? ""}`);
        }
      }
    }
    expect([...got].sort()).toEqual(
      (expected?.expected ?? []).map((x) => `${x.message} ${x.resource}`).sort(),
    );
  });
});
