// The reference ztunnel on a control plane: configuration from istiod over delta xDS and workload
// certificates from istiod's CA, with ztunnel's settings (`XDS_ADDRESS`, `CA_ADDRESS`,
// `XDS_ROOT_CA`, `CA_ROOT_CA`, `CLUSTER_ID`, `XDS_ON_DEMAND`, `SECRET_TTL`, the pod's
// `INSTANCE_IP`/`POD_NAME`/`POD_NAMESPACE`/`NODE_NAME`). Every accepted push becomes a new config
// of the running ztunnel (`Ztunnel.setConfig`): listeners follow the local workloads, and open
// connections that a new policy denies are closed.
import { readFileSync } from "node:fs";
import {
  DeltaXdsClient,
  IstioCaClient,
  MeshStateStore,
  type XdsLogger,
  XdsMetrics,
  ztunnelNode,
} from "@ambientkit/xds";
import type { LocalConfig } from "@ambientkit/xds-types";
import { Counter, type Registry } from "prom-client";
import type { CertificateSource } from "../mesh/certs.js";
import { ExampleError, envFlag } from "../mesh/errors.js";

/** ztunnel's default token path (audience istio-ca). */
export const DEFAULT_TOKEN_FILE = "./var/run/secrets/tokens/istio-token";

export interface ControlPlaneSettings {
  /** `XDS_ADDRESS`. */
  readonly xdsAddress: string;
  /** `XDS_ROOT_CA`: PEM text of the root that signed istiod's serving certificate. */
  readonly xdsRootCert?: string;
  /** `CA_ADDRESS`; absent = certificates from elsewhere (the in-process CA). */
  readonly caAddress?: string;
  /** `CA_ROOT_CA`: PEM text (default: the XDS root). */
  readonly caRootCert?: string;
  /** The name istiod's certificate must carry when dialling by IP (default: the address host). */
  readonly serverName?: string;
  /** Bearer token file, re-read on every connect and request. */
  readonly tokenFile?: string;
  /** `CLUSTER_ID` (default `Kubernetes`). */
  readonly clusterId?: string;
  /** `XDS_ON_DEMAND`. */
  readonly onDemand?: boolean;
  /** `SECRET_TTL` in seconds (default 24 h). */
  readonly secretTtlSeconds?: number;
  readonly instanceIp: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly nodeName?: string;
}

function durationSeconds(text: string): number {
  // ztunnel reads SECRET_TTL as a duration string: 24h, 90m, 3600s.
  const m = /^(\d+)(h|m|s)?$/.exec(text.trim());
  if (m === null)
    throw new ExampleError(
      "ERR_EXAMPLES_CONFIG",
      `SECRET_TTL=${text}: expected e.g. 24h, 90m or 3600s`,
    );
  const n = Number(m[1]);
  return m[2] === "h" ? n * 3600 : m[2] === "m" ? n * 60 : n;
}

function readPem(name: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (cause) {
    throw new ExampleError(
      "ERR_EXAMPLES_CONFIG",
      `${name}=${path}: cannot read it (${(cause as Error).message})`,
      { cause },
    );
  }
}

/**
 * ztunnel's settings from the environment; undefined when `XDS_ADDRESS` is not set (the ztunnel
 * then runs from LOCAL_XDS). Root certificate settings name files, as ztunnel's do.
 */
export function controlPlaneSettingsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): ControlPlaneSettings | undefined {
  const xdsAddress = env.XDS_ADDRESS;
  if (xdsAddress === undefined || xdsAddress === "") return undefined;
  const need = (name: string): string => {
    const v = env[name];
    if (v === undefined || v === "")
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        `XDS_ADDRESS is set, so ${name} must be set too`,
      );
    return v;
  };
  const xdsRoot = env.XDS_ROOT_CA;
  const caRoot = env.CA_ROOT_CA;
  return {
    xdsAddress,
    ...(xdsRoot ? { xdsRootCert: readPem("XDS_ROOT_CA", xdsRoot) } : {}),
    ...(env.CA_ADDRESS ? { caAddress: env.CA_ADDRESS } : {}),
    ...(caRoot ? { caRootCert: readPem("CA_ROOT_CA", caRoot) } : {}),
    ...(env.AUTH_TOKEN ? { tokenFile: env.AUTH_TOKEN } : {}),
    ...(env.CLUSTER_ID ? { clusterId: env.CLUSTER_ID } : {}),
    ...(env.XDS_ON_DEMAND ? { onDemand: envFlag(env, "XDS_ON_DEMAND", false) } : {}),
    ...(env.SECRET_TTL ? { secretTtlSeconds: durationSeconds(env.SECRET_TTL) } : {}),
    ...(env.NODE_NAME ? { nodeName: env.NODE_NAME } : {}),
    instanceIp: need("INSTANCE_IP"),
    podName: need("POD_NAME"),
    podNamespace: need("POD_NAMESPACE"),
  };
}

/** Anything that takes a whole new config (the `Ztunnel`). */
export interface Reconfigurable {
  setConfig(config: LocalConfig): Promise<void>;
  readonly closed: boolean;
}

/** The xDS client, its state store and (optionally) the CA client of one ztunnel. */
export class ZtunnelControlPlane {
  readonly state: MeshStateStore = new MeshStateStore();
  readonly xds: DeltaXdsClient;
  readonly ca: IstioCaClient | undefined;
  /** ztunnel's istio_xds_* counters. */
  readonly metrics: XdsMetrics = new XdsMetrics();
  readonly #log: XdsLogger;
  #target: Reconfigurable | undefined;
  #applying: Promise<void> = Promise.resolve();
  #pending = false;

  constructor(
    settings: ControlPlaneSettings,
    options: { log?: XdsLogger; metrics?: XdsMetrics } = {},
  ) {
    this.#log = options.log ?? (() => {});
    const node = ztunnelNode({
      instanceIp: settings.instanceIp,
      podName: settings.podName,
      podNamespace: settings.podNamespace,
      ...(settings.nodeName !== undefined ? { nodeName: settings.nodeName } : {}),
      ...(settings.clusterId !== undefined ? { clusterId: settings.clusterId } : {}),
    });
    const common = {
      ...(settings.serverName !== undefined ? { serverName: settings.serverName } : {}),
      ...(settings.tokenFile !== undefined ? { tokenFile: settings.tokenFile } : {}),
    };
    this.xds = new DeltaXdsClient({
      address: settings.xdsAddress,
      node,
      state: this.state,
      ...common,
      ...(settings.xdsRootCert !== undefined ? { rootCert: settings.xdsRootCert } : {}),
      ...(settings.onDemand !== undefined ? { onDemand: settings.onDemand } : {}),
      headers: { clusterid: settings.clusterId ?? "Kubernetes" },
      log: this.#log,
      metrics: this.metrics,
    });
    const caRoot = settings.caRootCert ?? settings.xdsRootCert;
    this.ca =
      settings.caAddress === undefined
        ? undefined
        : new IstioCaClient({
            address: settings.caAddress,
            ...common,
            ...(caRoot !== undefined ? { rootCert: caRoot } : {}),
            ...(settings.clusterId !== undefined ? { clusterId: settings.clusterId } : {}),
            ...(settings.secretTtlSeconds !== undefined
              ? { ttlSeconds: settings.secretTtlSeconds }
              : {}),
          });
  }

  /** Certificates from istiod's CA (undefined without `CA_ADDRESS`). */
  get certificateSource(): CertificateSource | undefined {
    const ca = this.ca;
    return ca === undefined ? undefined : (identity) => ca.fetchCertificate(identity);
  }

  /** Connects; resolves with the first complete config, or rejects after `timeoutMs`. */
  async start(timeoutMs = 30_000): Promise<LocalConfig> {
    this.xds.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const why = this.xds.lastError ? `: ${this.xds.lastError.message}` : "";
        reject(
          new ExampleError(
            "ERR_EXAMPLES_CONFIG",
            `no complete config from the control plane within ${timeoutMs} ms${why}`,
          ),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([this.xds.ready(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.state.snapshot();
  }

  /**
   * From now on every applied push reconfigures `target`. Pushes that arrive while one is being
   * applied are folded into one more `setConfig` with the newest state.
   */
  attach(target: Reconfigurable): void {
    this.#target = target;
    this.state.subscribe(() => this.#schedule());
  }

  /**
   * Adds the istio_xds_* counters to a prom-client registry (the ztunnel's 15020 scrape); they are
   * read from `metrics` at every scrape.
   */
  registerMetrics(registry: Registry): void {
    for (const family of this.metrics.collect()) {
      const name = family.name;
      const label = name === "istio_xds_connection_terminations_total" ? "reason" : "url";
      const metrics = this.metrics;
      new Counter({
        name,
        help: family.help,
        labelNames: [label],
        registers: [registry],
        collect() {
          this.reset();
          const now = metrics.collect().find((f) => f.name === name);
          if (now !== undefined && now.type !== "histogram")
            for (const s of now.samples) this.inc(s.labels, s.value);
        },
      });
    }
  }

  /** Resolves once every push received so far has been applied to the attached target. */
  settled(): Promise<void> {
    return this.#applying;
  }

  #schedule(): void {
    if (this.#pending) return;
    this.#pending = true;
    this.#applying = this.#applying.then(async () => {
      this.#pending = false;
      const t = this.#target;
      if (t === undefined || t.closed) return;
      try {
        await t.setConfig(this.state.snapshot());
      } catch (e) {
        this.#log("error", `ztunnel: applying the pushed config failed: ${(e as Error).message}`);
      }
    });
  }

  async close(): Promise<void> {
    await this.xds.close();
    this.ca?.close();
    await this.#applying;
  }
}
