// `node examples/dist/ztunnel/main.js`: one reference ztunnel as a process, configured by the
// environment as ztunnel is. With `XDS_ADDRESS` it joins a control plane (istiod, or
// LocalControlPlane): config over delta xDS, certificates from `CA_ADDRESS` (default: the XDS
// address), token from `AUTH_TOKEN` (default ./var/run/secrets/tokens/istio-token when that file
// exists), roots from `XDS_ROOT_CA` / `CA_ROOT_CA`. Without it, `LOCAL_XDS_PATH` names a LOCAL_XDS
// file and certificates come from an in-process self-signed CA (ztunnel's `FAKE_CA`). Readiness
// (15021) answers only once the first complete config is applied. SIGTERM/SIGINT close everything.
// `AMBIENTKIT_EPHEMERAL_PORTS=true` binds admin/metrics/readiness on port 0 (tests), and the
// addresses are printed as one JSON line on stdout. `PROXY_MODE=shared` runs ztunnel's in-pod mode:
// pods from istio-cni over ZDS at `INPOD_UDS`, listeners inside each pod's netns, sockets marked
// `PACKET_MARK` (1337), the app dialled as the original client unless `ENABLE_ORIG_SRC=false`;
// readiness then also waits for the node agent's first snapshot.
import { existsSync, readFileSync } from "node:fs";
import { CertificateAuthority } from "@ambientkit/identity";
import type { LocalConfig } from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { WorkloadCertificates } from "../mesh/certs.js";
import { ExampleError, envFlag } from "../mesh/errors.js";
import { meteredHeapShrinker } from "../mesh/heap-shrinker.js";
import {
  controlPlaneSettingsFromEnv,
  DEFAULT_TOKEN_FILE,
  ZtunnelControlPlane,
} from "./control-plane.js";
import { inpodSettingsFromEnv } from "./inpod.js";
import { ZTUNNEL_PORTS, Ztunnel } from "./ztunnel.js";

function log(level: string, message: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, message, ...fields })}\n`);
}

async function main(env: NodeJS.ProcessEnv): Promise<number> {
  const node = env.NODE_NAME;
  if (node === undefined || node === "")
    throw new ExampleError("ERR_EXAMPLES_CONFIG", "NODE_NAME must name this ztunnel's node");
  const ephemeral = envFlag(env, "AMBIENTKIT_EPHEMERAL_PORTS", false);
  const shrinkHeap = envFlag(env, "SHRINK_HEAP", true);
  const ports = {
    admin: ephemeral ? 0 : ZTUNNEL_PORTS.admin,
    metrics: ephemeral ? 0 : ZTUNNEL_PORTS.metrics,
    readiness: ephemeral ? 0 : ZTUNNEL_PORTS.readiness,
    socks5: ephemeral ? 0 : ZTUNNEL_PORTS.socks5,
  };
  const inpod = inpodSettingsFromEnv(env);
  const settings = controlPlaneSettingsFromEnv({
    ...env,
    ...(env.XDS_ADDRESS && !env.CA_ADDRESS && env.FAKE_CA !== "true"
      ? { CA_ADDRESS: env.XDS_ADDRESS }
      : {}),
    ...(env.XDS_ADDRESS && !env.AUTH_TOKEN && existsSync(DEFAULT_TOKEN_FILE)
      ? { AUTH_TOKEN: DEFAULT_TOKEN_FILE }
      : {}),
  });
  let plane: ZtunnelControlPlane | undefined;
  let certificates: WorkloadCertificates;
  let config: LocalConfig;
  if (settings !== undefined) {
    plane = new ZtunnelControlPlane(settings, { log: (level, message) => log(level, message) });
    log("info", "waiting for the first config from the control plane", {
      address: settings.xdsAddress,
    });
    try {
      config = await plane.start(60_000);
    } catch (e) {
      await plane.close(); // no config in time: stop retrying, or the process would never exit
      throw e;
    }
    const source = plane.certificateSource;
    certificates = new WorkloadCertificates(
      source ??
        (await CertificateAuthority.createRoot({
          trustDomain: "cluster.local",
          keyAlgorithm: "ec-p256",
        })),
    );
  } else {
    const path = env.LOCAL_XDS_PATH;
    if (path === undefined || path === "")
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        "set XDS_ADDRESS (a control plane) or LOCAL_XDS_PATH (a LOCAL_XDS file)",
      );
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (cause) {
      throw new ExampleError("ERR_EXAMPLES_CONFIG", `LOCAL_XDS_PATH=${path}: cannot read it`, {
        cause,
      });
    }
    const parsed = parseLocalXds(text);
    if (!parsed.ok) {
      const first = parsed.issues[0];
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        `${path}:${first?.line ?? "?"}: ${first?.message ?? "invalid"}`,
        {
          file: path,
          ...(first?.line !== undefined ? { line: first.line } : {}),
        },
      );
    }
    config = parsed.value;
    certificates = new WorkloadCertificates(
      await CertificateAuthority.createRoot({
        trustDomain: "cluster.local",
        keyAlgorithm: "ec-p256",
      }),
    );
  }
  // From here on things are open (the control plane's streams, certificates, listeners): a start
  // that fails must close them, or the process would hang on after reporting that it cannot start.
  let z: Ztunnel | undefined;
  let shrinker: ReturnType<ReturnType<typeof meteredHeapShrinker>["start"]> | undefined;
  try {
    z = await Ztunnel.start({
      node,
      config,
      certificates,
      ports,
      log: (line) => process.stderr.write(`${line}\n`),
      ...(inpod ? { inpod } : {}),
    });
    if (plane !== undefined) {
      plane.attach(z);
      plane.registerMetrics(z.registry);
    }
    // Bulk transfers leave glibc holding freed Buffers and TLS records: give them back when idle,
    // as the waypoint does (mesh/heap-shrinker.ts). SHRINK_HEAP=false turns it off.
    shrinker = !shrinkHeap
      ? undefined
      : meteredHeapShrinker(undefined, z.registry, (fields, message) =>
          process.stderr.write(`${JSON.stringify({ level: "info", msg: message, ...fields })}\n`),
        ).start();
  } catch (e) {
    shrinker?.stop();
    await Promise.allSettled([plane?.close(), z?.close()]);
    certificates.close();
    throw e;
  }
  process.stdout.write(`${JSON.stringify({ ready: true, node, ...z.addresses })}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  shrinker?.stop();
  await plane?.close();
  await z.close();
  certificates.close();
  return 0;
}

main(process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    log("error", `ztunnel: cannot start: ${(e as Error).message}`);
    process.exitCode = e instanceof ExampleError && e.code === "ERR_EXAMPLES_CONFIG" ? 2 : 1;
  },
);
