// How validation scales with the size of one YAML stream (issue #14): validateYamlDocuments over
// 1,000 / 10,000 / 100,000 generated documents (time per document should stay flat), and the CLI
// on a ≈50 MB file (peak RSS should stay under 500 MB however many documents it holds).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { validateYamlDocuments } from "@ambientkit/crds";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const bin = join(repo, "packages", "cli", "dist", "bin.js");

/**
 * Document `i` of a generated stream: four kinds in turn (one skipped), every tenth of each kind invalid, so
 * issue positions are looked up as well.
 */
function doc(i: number): string {
  const bad = Math.floor(i / 4) % 10 === 9;
  switch (i % 4) {
    case 0:
      return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-${i}
  namespace: ns-${i % 50}
spec:
  action: ${bad ? "ALOW" : "ALLOW"}
  selector:
    matchLabels:
      app: app-${i}
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/ns-${i % 50}/sa/client-${i}"]
    to:
    - operation:
        methods: ["GET", "POST"]
        paths: ["/api/v1/items/${i}", "/healthz"]
`;
    case 1:
      return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-${i}
  namespace: ns-${i % 50}
spec:
  parentRefs:
  - name: gateway
  hostnames: ["svc-${i}.example.com"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v${i}}
    backendRefs:
    - name: svc-${i}
      port: ${bad ? 70000 : 8080}
      weight: 90
    - name: svc-${i}-canary
      port: 8080
      weight: 10
`;
    case 2:
      return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: mtls-${i}
  namespace: ns-${i % 50}
spec:
  ${bad ? "mtsl" : "mtls"}:
    mode: STRICT
`;
    default:
      return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-${i}
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: example/app:${i}
`;
  }
}

function stream(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(doc(i));
  return parts.join("---\n");
}

/** Validates every document of `text`, keeping nothing but a count; returns [documents, ms]. */
function validateAll(text: string): [number, number] {
  const t0 = performance.now();
  let n = 0;
  for (const _ of validateYamlDocuments(text)) n++;
  return [n, performance.now() - t0];
}

/** Microseconds per document over at least `minMs` of work (whole passes). */
function usPerDoc(text: string, minMs: number): { us: number; docs: number } {
  let docs = 0;
  let ms = 0;
  do {
    const [n, t] = validateAll(text);
    docs += n;
    ms += t;
  } while (ms < minMs);
  return { us: (ms * 1000) / docs, docs };
}

/** Runs the CLI on `file` and returns its exit code, wall time and peak RSS (from the child itself). */
function runCli(
  cwd: string,
  file: string,
): { status: number | null; seconds: number; rssMb: number } {
  // The CLI's own process reports its peak RSS on exit; argv is made to look as bin.js expects.
  const script = [
    'process.on("exit", () => process.stderr.write("@@maxrss " + process.resourceUsage().maxRSS + "\\n"));',
    `process.argv.splice(1, 0, ${JSON.stringify(bin)});`,
    `await import(${JSON.stringify(pathToFileURL(bin).href)});`,
  ].join("\n");
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", script, "validate", "--output", "text", file],
    { cwd, encoding: "utf8", maxBuffer: 1024 * 1024 * 1024 },
  );
  const seconds = (performance.now() - t0) / 1000;
  const kb = Number(/@@maxrss (\d+)/.exec(r.stderr)?.[1] ?? Number.NaN);
  if (r.status !== 0 && r.status !== 1)
    throw new Error(`ambientkit validate exited ${r.status}: ${r.stderr.slice(-500)}`);
  return { status: r.status, seconds, rssMb: kb / 1024 };
}

const suite: BenchSuite = {
  package: "crds",
  async groups(): Promise<BenchGroup[]> {
    return [
      {
        name: "crds/validate-scale",
        target:
          "validateYamlDocuments time per document flat (within 1.5×) from 1,000 to 100,000 documents in one stream",
        cases: [],
        measure: async () => {
          // Compiles every schema and CEL program the stream uses, outside the timings.
          validateAll(stream(1000));
          const rows: MeasureRow[] = [];
          const per: number[] = [];
          for (const n of [1000, 10_000, 100_000]) {
            const text = stream(n);
            const { us } = usPerDoc(text, 2000);
            per.push(us);
            rows.push({
              name: `validateYamlDocuments, ${n.toLocaleString("en-US")} documents (${(text.length / 1e6).toFixed(1)} MB), per document`,
              value: Number(us.toFixed(1)),
              unit: "µs",
            });
          }
          rows.push({
            name: "time per document, 100,000 ÷ 1,000 documents",
            value: Number(((per[2] as number) / (per[0] as number)).toFixed(2)),
            unit: "×",
          });
          return rows;
        },
      },
      {
        name: "crds/validate-cli-large-file",
        target:
          "ambientkit validate on one ≈50 MB file: peak RSS under 500 MB (documents are validated one at a time)",
        cases: [],
        measure: async () => {
          const dir = mkdtempSync(join(tmpdir(), "ambientkit-bench-validate-scale-"));
          try {
            const rows: MeasureRow[] = [];
            writeFileSync(join(dir, "10k.yaml"), stream(10_000));
            const small = runCli(dir, "10k.yaml");
            rows.push({
              name: "ambientkit validate, one file of 10,000 documents, wall time",
              value: Number(small.seconds.toFixed(2)),
              unit: "s",
            });
            // ≈ 50 MB: the documents average ≈ 330 bytes.
            const n = 182_000;
            const text = stream(n);
            writeFileSync(join(dir, "50mb.yaml"), text);
            const big = runCli(dir, "50mb.yaml");
            rows.push(
              {
                name: `ambientkit validate, one ${(text.length / 1e6).toFixed(1)} MB file (${n.toLocaleString("en-US")} documents), peak RSS`,
                value: Math.round(big.rssMb),
                unit: "MB",
              },
              {
                name: `ambientkit validate, one ${(text.length / 1e6).toFixed(1)} MB file, wall time`,
                value: Number(big.seconds.toFixed(1)),
                unit: "s",
              },
            );
            return rows;
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      },
    ];
  },
};

export default suite;
