import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

test("README example runs and is the code shown in the README", async () => {
  // README-BEGIN
  const { IstioMetrics, parseBaggage, tcpLabels, workloadFromBaggage, workloadFromKubernetes } =
    await import("@ambientkit/telemetry");
  const { registerPrometheus } = await import("@ambientkit/telemetry/prometheus");
  const { default: pino } = await import("pino");
  const { default: client } = await import("prom-client");

  const metrics = new IstioMetrics({
    build: { component: "ztunnel", tag: "1.28.0" },
    accessLog: pino(),
  });
  const registry = new client.Registry();
  registerPrometheus(metrics, { registry });

  // Once per peer pair: who we are, who the peer says it is (baggage + its mTLS identity).
  const local = workloadFromKubernetes({
    name: "echo-7f9c",
    workloadName: "echo",
    namespace: "prod",
    labels: { app: "echo", version: "v1" },
    serviceAccount: "echo",
  });
  const baggage = parseBaggage(
    "k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep",
  );
  const peer = workloadFromBaggage(baggage, "spiffe://cluster.local/ns/default/sa/sleep");
  const labels = tcpLabels({
    reporter: "destination",
    derivedSource: peer,
    destination: local,
    securityPolicy: "mutual_tls",
  });

  // Per connection: cheap.
  const conn = metrics.openConnection(labels, { src: "10.0.0.1:40000", dst: "10.0.0.2:15008" });
  conn.received(67); // request direction (client → server)
  conn.sent(490); // response direction (server → client)
  conn.close(); // logs "connection complete"

  const text = await registry.metrics(); // istio_tcp_* with Istio's labels, istio_build
  // README-END

  expect(text).toContain('istio_build{component="ztunnel",tag="1.28.0"} 1');
  expect(text).toMatch(
    /istio_tcp_received_bytes_total\{reporter="destination",source_workload="sleep",source_canonical_service="sleep",source_canonical_revision="unknown",source_workload_namespace="default",source_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/sleep",source_app="sleep",.*destination_workload="echo",destination_canonical_service="echo",destination_canonical_revision="v1",.*connection_security_policy="mutual_tls".*\} 67/,
  );

  // The README shows the same statements (as static imports).
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const self = readFileSync(fileURLToPath(import.meta.url), "utf8");
  const body = (self.split("// README-BEGIN\n")[1] ?? "").split("  // README-END")[0] ?? "";
  const normalize = (s: string) =>
    s
      .split("\n")
      .map((l) => l.trim())
      .filter(
        (l) =>
          l !== "" &&
          !l.startsWith("import") &&
          !l.startsWith("const {") &&
          !l.startsWith("await import") &&
          !/^[A-Za-z, ]+\}?$/.test(l) &&
          !l.startsWith("}") &&
          !l.startsWith("} from"),
      )
      .join("\n");
  expect(normalize(block)).toBe(
    normalize(body)
      .replace(/^.*await import.*$/gm, "")
      .replace(/\n+/g, "\n")
      .trim(),
  );
});
