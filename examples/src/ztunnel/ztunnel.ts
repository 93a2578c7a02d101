// A reference ztunnel in Node, built only from the @ambientkit packages. One instance is one
// "node": it serves the HBONE inbound (IP:15008) of every local workload with that workload's
// certificate, captures outbound traffic on service VIP listeners and SOCKS5 (15080), and follows
// ztunnel's outbound decision tree (waypoint → HBONE to the waypoint with :authority = VIP:port;
// in-mesh workload → HBONE to podIP:15008; out-of-mesh → plain TCP). Admin (15000 /config_dump),
// metrics (15020) and readiness (15021) listen on 127.0.0.1. Optionally it serves ztunnel's inbound
// plaintext passthrough (15006) on each local workload IP. Everything closes with close().
// With `inpod` it runs in ztunnel's in-pod mode instead: pods arrive over ZDS from istio-cni and get
// their listeners inside their own network namespaces (inpod.ts); no listener binds a pod IP here.
// This class only wires the parts: listeners.ts, inbound.ts, outbound.ts, passthrough.ts, admin.ts,
// inpod.ts.
import { IstioMetrics } from "@ambientkit/telemetry";
import { registerPrometheus } from "@ambientkit/telemetry/prometheus";
import type { LocalConfig, Workload } from "@ambientkit/xds-types";
import { Registry } from "prom-client";
import type { ConnectionEnd } from "../hbone.js";
import { MemoryLog } from "../mesh/access-log.js";
import type { WorkloadCertificates } from "../mesh/certs.js";
import { connectionEndRecorder } from "../mesh/connection-events.js";
import { ExampleError } from "../mesh/errors.js";
import { acceptingAll, type Listener } from "../mesh/net.js";
import { MeshState } from "../mesh/state.js";
import { startAdmin } from "./admin.js";
import {
  type InboundConn,
  rbacReason,
  type ZtunnelContext,
  type ZtunnelOptions,
  type ZtunnelPorts,
} from "./context.js";
import { Inbound } from "./inbound.js";
import { InpodManager, type InpodSettings } from "./inpod.js";
import { ZtunnelListeners } from "./listeners.js";
import { Outbound, type OutboundRoute } from "./outbound.js";
import { Passthrough } from "./passthrough.js";

export type { ZtunnelOptions, ZtunnelPorts } from "./context.js";
export { rbacReason } from "./context.js";
export type { InpodSettings } from "./inpod.js";
export type { OutboundRoute } from "./outbound.js";

/** The real ztunnel port numbers (what the demo uses). */
export const ZTUNNEL_PORTS: ZtunnelPorts = {
  hbone: 15008,
  admin: 15000,
  metrics: 15020,
  readiness: 15021,
  socks5: 15080,
  passthrough: 15006,
};

/** A running reference ztunnel. Create with {@link Ztunnel.start}. */
export class Ztunnel implements ZtunnelContext {
  readonly node: string;
  readonly metrics: IstioMetrics;
  readonly log: MemoryLog;
  readonly registry: Registry;
  readonly ports: ZtunnelPorts;
  readonly opts: ZtunnelOptions;
  readonly certs: WorkloadCertificates;
  readonly random: () => number;
  readonly connectionEnd: (end: ConnectionEnd) => void;
  /** Open inbound connections (HBONE and plaintext passthrough), for policy re-checks. */
  readonly #inbound = new Set<InboundConn>();
  readonly #in: Inbound;
  readonly #out: Outbound;
  readonly #passthrough: Passthrough;
  readonly #listeners: ZtunnelListeners;
  readonly #inpod: InpodManager | undefined;
  readonly #adminListeners: Listener[] = [];
  #state: MeshState;
  #ready = false;
  #closed = false;
  /** Addresses the admin-style listeners got (port 0 resolved). */
  readonly addresses: { admin?: string; metrics?: string; readiness?: string; socks5?: string } =
    {};

  private constructor(opts: ZtunnelOptions & { inpod?: InpodSettings }) {
    this.opts = opts;
    this.node = opts.node;
    this.ports = {
      hbone: 15008,
      admin: null,
      metrics: null,
      readiness: null,
      socks5: null,
      passthrough: null,
      ...opts.ports,
    };
    this.certs = opts.certificates;
    this.random = opts.random ?? Math.random;
    this.#state = new MeshState(opts.config);
    this.log = new MemoryLog(opts.log ? { write: opts.log } : {});
    this.metrics = new IstioMetrics({
      accessLog: this.log,
      build: { component: "ztunnel", tag: "ambientkit" },
    });
    this.registry = new Registry();
    registerPrometheus(this.metrics, { registry: this.registry, l7: false });
    this.connectionEnd = connectionEndRecorder(this.log, this.registry);
    this.#inpod = opts.inpod
      ? new InpodManager(this, opts.inpod, {
          outbound: (s, ip, port, via) => void this.#out.captured(s, ip, port, via),
          hbone: (s) => this.#in.server.handle(s),
          plaintext: (s, dst, dial) => this.#passthrough.serveRedirected(s, dst, dial),
        })
      : undefined;
    this.#inpod?.registerMetrics(this.registry);
    this.#in = new Inbound(this, this.#inbound, this.#inpod?.dialApp);
    this.#out = new Outbound(this);
    this.#passthrough = new Passthrough(this, this.#inbound);
    this.#listeners = new ZtunnelListeners(this, {
      hbone: (s) => this.#in.server.handle(s),
      passthrough: (s) => this.#passthrough.serve(s),
      captured: (s, ip, port) => void this.#out.captured(s, ip, port),
    });
  }

  /** Issues certificates, binds every listener; on any failure closes what was opened and throws. */
  static async start(opts: ZtunnelOptions & { inpod?: InpodSettings }): Promise<Ztunnel> {
    const z = new Ztunnel(opts);
    try {
      if (z.#inpod) z.#inpod.start();
      else await z.#listeners.sync();
      const admin = await startAdmin(z, z.registry, () => z.ready);
      z.#adminListeners.push(...admin.listeners);
      Object.assign(z.addresses, admin.addresses);
      if (z.ports.socks5 !== null) {
        const host = opts.adminHost ?? "127.0.0.1";
        const l = await z.#out.listenSocks5(host, z.ports.socks5);
        z.#adminListeners.push(l);
        z.addresses.socks5 = `${host}:${l.port}`;
      }
      z.#ready = true;
      return z;
    } catch (e) {
      await z.close();
      throw e;
    }
  }

  /**
   * Whether this node can serve: started, not closing, below its downstream connection cap, and
   * no listener failed to accept (out of file descriptors) in the last few seconds.
   */
  get ready(): boolean {
    return (
      this.#ready &&
      !this.#closed &&
      (this.#inpod?.ready ?? true) &&
      this.#out.hasCapacity &&
      acceptingAll([...this.#adminListeners, ...this.#listeners.all()])
    );
  }

  /** Downstream (SOCKS5 and captured) connections open now. */
  get downstreamConnections(): number {
    return this.#out.downstreamConnections;
  }

  /** The in-pod workload manager (ZDS), when started with `inpod`. */
  get inpod(): InpodManager | undefined {
    return this.#inpod;
  }

  /** The current config state. */
  get state(): MeshState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Workloads this node serves. */
  get localWorkloads(): Workload[] {
    return this.#state.config.workloads.filter((w) => w.node === this.node);
  }

  /**
   * Replaces the config at runtime (as a new LOCAL_XDS load): listeners follow the workloads and
   * services, and open inbound connections that the new policies deny are closed, as ztunnel's
   * late policy rejection does.
   */
  async setConfig(config: LocalConfig): Promise<void> {
    if (this.#closed) throw new ExampleError("ERR_EXAMPLES_CLOSED", "this ztunnel is closed");
    this.#state = new MeshState(config);
    if (!this.#inpod) await this.#listeners.sync();
    for (const c of [...this.#inbound]) {
      const w = this.#state.workloadByIp(c.conn.destinationIp);
      const r = w ? this.#state.authorize(w, c.conn) : undefined;
      if (!r?.allowed) {
        this.log.warn(
          {
            "src.addr": c.conn.sourceIp,
            "dst.addr": `${c.conn.destinationIp}:${c.conn.destinationPort}`,
            "src.identity": c.conn.sourceIdentity,
            reason: r ? rbacReason(r) : "destination workload removed",
          },
          "connection closed due to policy change",
        );
        c.tunnel.destroy();
        c.upstream.destroy();
        this.#inbound.delete(c);
      }
    }
  }

  /** ztunnel's outbound decision tree for a connection from `source` to `ip:port`. */
  route(source: Workload, ip: string, port: number): OutboundRoute {
    return this.#out.route(source, ip, port);
  }

  /**
   * Sends GOAWAY on every inbound HBONE connection (ztunnel's drain before it exits); their open
   * tunnels finish, clients open new connections.
   */
  drainInbound(): void {
    this.#in.server.drain();
  }

  /** Number of open inbound tunnels (HBONE and plaintext passthrough). */
  get inboundConnections(): number {
    return this.#inbound.size;
  }

  /** Stops every listener, closes pooled connections and open tunnels. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ready = false;
    await this.#inpod?.close();
    for (const c of this.#inbound) {
      c.tunnel.destroy();
      c.upstream.destroy();
    }
    this.#inbound.clear();
    this.#out.destroy();
    const admin = this.#adminListeners.splice(0);
    await Promise.all([
      this.#listeners.close(),
      ...admin.map((l) => l.close()),
      this.#in.server.close(0),
    ]);
  }
}
