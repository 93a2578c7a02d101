// `ambientkit xds watch`: connect to a control plane as a ztunnel would and print what it sends —
// the initial state, then every change — without running a ztunnel. The tool for debugging what
// istiod tells a ztunnel.
import { readFile } from "node:fs/promises";
import type { StateEvent } from "@ambientkit/xds";
import type { Command } from "commander";
import { Option } from "commander";
import { stringify } from "yaml";
import { type CommandContext, EXIT_FAILURE_FOUND, EXIT_OK } from "../command.js";
import { CliError } from "../errors.js";
import { type CliIo, describe, resolvePath } from "../io.js";

interface WatchFlags {
  address: string;
  type: string[];
  output: "yaml" | "json";
  rootCert?: string;
  serverName?: string;
  tokenFile?: string;
  instanceIp: string;
  podName: string;
  podNamespace: string;
  nodeName?: string;
  clusterId: string;
  onDemand: string[];
  once: boolean;
  timeout: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** One printed record per state event: what changed, and its new value (none for a removal). */
function record(e: StateEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { op: e.op, kind: e.kind, key: e.key };
  if (e.op !== "remove") out.value = e.value;
  return out;
}

function print(io: CliIo, format: "yaml" | "json", r: Record<string, unknown>): void {
  if (format === "json") io.stdout(`${JSON.stringify(r)}\n`);
  else io.stdout(`---\n${stringify(r)}`);
}

export function registerXds(program: Command, ctx: CommandContext): void {
  const xds = program
    .command("xds")
    .description("talk to an xDS control plane (istiod) as a ztunnel");
  xds
    .command("watch")
    .description(
      "print the workloads, services and policies a control plane sends a ztunnel, then every change",
    )
    .requiredOption(
      "--address <url>",
      "XDS_ADDRESS: https://istiod.istio-system.svc:15012, or http://… for local use",
    )
    .option("--type <type>", "address or authorization (repeatable; default both)", collect, [])
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["yaml", "json"])
        .default("yaml"),
    )
    .option("--root-cert <file>", "XDS_ROOT_CA: PEM of the root that signed istiod's certificate")
    .option(
      "--server-name <name>",
      "name to check istiod's certificate against (default: the address host)",
    )
    .option("--token-file <file>", "bearer token file (re-read on every connect)")
    .option("--instance-ip <ip>", "INSTANCE_IP of the ztunnel we pose as", "127.0.0.1")
    .option("--pod-name <name>", "POD_NAME of the ztunnel we pose as", "ambientkit-xds-watch")
    .option("--pod-namespace <ns>", "POD_NAMESPACE of the ztunnel we pose as", "istio-system")
    .option("--node-name <name>", "NODE_NAME of the ztunnel we pose as")
    .option("--cluster-id <id>", "CLUSTER_ID", "Kubernetes")
    .option(
      "--on-demand <name>",
      "XDS_ON_DEMAND: fetch only these addresses (network/ip or uid; repeatable)",
      collect,
      [],
    )
    .option(
      "--once",
      "print the initial state and exit once every subscribed type has arrived",
      false,
    )
    .option("--timeout <seconds>", "with --once: give up after this long (exit 1)", "30")
    .action(async (flags: WatchFlags) => {
      ctx.setExit(await watch(ctx.io, flags));
    });
}

async function watch(io: CliIo, flags: WatchFlags): Promise<number> {
  const { DeltaXdsClient, MeshStateStore, ztunnelNode } = await import("@ambientkit/xds");
  const timeoutS = Number(flags.timeout);
  if (!(timeoutS > 0))
    throw new CliError("ERR_CLI_USAGE", `--timeout ${flags.timeout}: expected seconds > 0`);
  let rootCert: string | undefined;
  if (flags.rootCert !== undefined) {
    try {
      rootCert = await readFile(resolvePath(io, flags.rootCert), "utf8");
    } catch (cause) {
      throw new CliError(
        "ERR_CLI_INPUT_UNREADABLE",
        `cannot read ${flags.rootCert}: ${describe(cause)}`,
        { cause },
      );
    }
  }
  const kinds: Array<"address" | "authorization"> = [];
  for (const t of flags.type.length > 0 ? flags.type : ["address", "authorization"]) {
    if (t !== "address" && t !== "authorization")
      throw new CliError("ERR_CLI_USAGE", `--type ${t}: expected address or authorization`);
    if (!kinds.includes(t)) kinds.push(t);
  }
  const state = new MeshStateStore();
  const node = ztunnelNode({
    instanceIp: flags.instanceIp,
    podName: flags.podName,
    podNamespace: flags.podNamespace,
    clusterId: flags.clusterId,
    ...(flags.nodeName !== undefined ? { nodeName: flags.nodeName } : {}),
  });
  let client: InstanceType<typeof DeltaXdsClient>;
  try {
    client = new DeltaXdsClient(
      {
        address: flags.address,
        node,
        state,
        kinds,
        onDemand: flags.onDemand.length > 0,
        headers: { clusterid: flags.clusterId },
        ...(rootCert !== undefined ? { rootCert } : {}),
        ...(flags.serverName !== undefined ? { serverName: flags.serverName } : {}),
        ...(flags.tokenFile !== undefined ? { tokenFile: resolvePath(io, flags.tokenFile) } : {}),
        log: (level, message) => {
          if (level !== "debug") io.stderr(`${message}\n`);
        },
      },
      {
        rejected: (r) =>
          io.stderr(`rejected (NACK) ${r.typeUrl} nonce ${r.nonce}: ${r.error.message}\n`),
      },
    );
  } catch (cause) {
    throw new CliError("ERR_CLI_USAGE", describe(cause), { cause });
  }
  if (flags.onDemand.length > 0) client.subscribe(flags.onDemand);

  if (flags.once) {
    client.start();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutS * 1000);
    });
    const outcome = await Promise.race([client.ready().then(() => "ready" as const), timedOut]);
    clearTimeout(timer);
    await client.close();
    if (outcome === "timeout") {
      const why =
        client.lastError !== undefined
          ? `: ${client.lastError.message} (${client.lastError.code})`
          : "";
      io.stderr(`ambientkit: no complete state from ${flags.address} within ${timeoutS} s${why}\n`);
      return EXIT_FAILURE_FOUND;
    }
    const snap = state.snapshot();
    const all: Record<string, unknown>[] = [];
    if (kinds.includes("address")) {
      for (const w of snap.workloads) all.push({ kind: "workload", key: w.uid, value: w });
      for (const s of snap.services)
        all.push({ kind: "service", key: `${s.namespace}/${s.hostname}`, value: s });
    }
    if (kinds.includes("authorization"))
      for (const p of snap.policies)
        all.push({ kind: "policy", key: `${p.namespace}/${p.name}`, value: p });
    for (const r of all) print(io, flags.output, r);
    return EXIT_OK;
  }

  // Follow mode: every applied change as it happens, until SIGINT/SIGTERM.
  state.subscribe((events) => {
    for (const e of events) print(io, flags.output, record(e));
  });
  client.start();
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await client.close();
  return EXIT_OK;
}
