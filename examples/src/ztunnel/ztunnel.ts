// A reference ztunnel in Node, built only from the @ambientkit packages. One instance is one
// "node": it serves the HBONE inbound (IP:15008) of every local workload with that workload's
// certificate, captures outbound traffic on service VIP listeners and SOCKS5 (15080), and follows
// ztunnel's outbound decision tree (waypoint → HBONE to the waypoint with :authority = VIP:port;
// in-mesh workload → HBONE to podIP:15008; out-of-mesh → plain TCP). Admin (15000 /config_dump),
// metrics (15020) and readiness (15021) listen on 127.0.0.1. Optionally it serves ztunnel's inbound
// plaintext passthrough (15006) on each local workload IP. Everything closes with close().
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { ZtunnelConnection, ZtunnelRbacResult } from "@ambientkit/authz";
import {
  type ConnectionHandle,
  IstioMetrics,
  logEarlyDeny,
  socketAddr,
  type TrafficContext,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { registerPrometheus } from "@ambientkit/telemetry/prometheus";
import {
  type LocalConfig,
  type Service,
  serializeLocalXds,
  type Workload,
  workloadIdentity,
} from "@ambientkit/xds-types";
import { Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import {
  decodeProxyV2,
  type HboneCredentials,
  type HboneDecision,
  HboneError,
  HbonePool,
  HboneServer,
  type HboneServerRequest,
  type HboneStream,
  type ProxyHeader,
} from "../hbone.js";
import { MemoryLog } from "../mesh/access-log.js";
import type { WorkloadCertificates } from "../mesh/certs.js";
import { ExampleError } from "../mesh/errors.js";
import { serviceInfo, workloadBaggage, workloadInfo } from "../mesh/labels.js";
import { connectTcp, type Listener, listen, pipeBoth } from "../mesh/net.js";
import { type GatewayTarget, ILLEGAL_PORTS, MeshState } from "../mesh/state.js";
import {
  SOCKS5_CONNECTION_REFUSED,
  SOCKS5_HOST_UNREACHABLE,
  SOCKS5_NOT_ALLOWED,
  serveSocks5,
} from "./socks5.js";

/** ztunnel's ports; `null` disables a listener. */
export interface ZtunnelPorts {
  /** HBONE inbound on each local workload IP, and the port dialled on peers (15008). */
  hbone: number;
  /** Admin, `/config_dump` (15000). */
  admin: number | null;
  /** Prometheus `/metrics` and `/stats/prometheus` (15020). */
  metrics: number | null;
  /** `/healthz/ready` (15021). */
  readiness: number | null;
  /** SOCKS5 outbound (15080). */
  socks5: number | null;
  /**
   * Inbound plaintext passthrough (15006) on each local workload IP. Node cannot read
   * SO_ORIGINAL_DST, so the capture point prefixes each connection with a PROXY v2 header whose
   * destination is the original destination (see {@link Ztunnel}).
   */
  passthrough: number | null;
}

/** The real ztunnel port numbers (what the demo uses). */
export const ZTUNNEL_PORTS: ZtunnelPorts = {
  hbone: 15008,
  admin: 15000,
  metrics: 15020,
  readiness: 15021,
  socks5: 15080,
  passthrough: 15006,
};

export interface ZtunnelOptions {
  /** Node name: this ztunnel serves the workloads whose `node` equals it. */
  node: string;
  config: LocalConfig;
  certificates: WorkloadCertificates;
  /** Default: HBONE 15008, everything else disabled. */
  ports?: Partial<ZtunnelPorts>;
  /** Where admin/metrics/readiness/SOCKS5 listen (default 127.0.0.1). */
  adminHost?: string;
  /** Bind a listener on every service VIP:port as the outbound capture point (default true). */
  captureServices?: boolean;
  /**
   * The source workload (`namespace/name`) for captured connections whose source IP is not a local
   * workload (e.g. curl over SOCKS5 from 127.0.0.1). Default: the first local HBONE workload.
   */
  defaultSource?: string;
  /** Load-balancing randomness (default Math.random). */
  random?: () => number;
  /** Each access-log line (JSON) is passed here. */
  log?: (line: string) => void;
  /** HBONE connection timeouts etc. (tests shorten them). */
  connectTimeoutMs?: number;
}

/** Where the outbound decision tree sends a connection. */
export type OutboundRoute =
  | {
      kind: "waypoint";
      via: GatewayTarget;
      authority: string;
      service: Service | undefined;
      workload: Workload | undefined;
    }
  | {
      kind: "hbone";
      host: string;
      port: number;
      authority: string;
      workload: Workload;
      service: Service | undefined;
      identities: readonly string[];
    }
  | {
      kind: "passthrough";
      host: string;
      port: number;
      workload: Workload | undefined;
      service: Service | undefined;
    }
  | { kind: "reject"; reason: string };

interface InboundConn {
  workload: Workload;
  conn: ZtunnelConnection;
  /** The HBONE stream, or the plaintext downstream socket of a passthrough connection. */
  tunnel: HboneStream | net.Socket;
  upstream: net.Socket;
}

/** A running reference ztunnel. Create with {@link Ztunnel.start}. */
export class Ztunnel {
  readonly node: string;
  readonly metrics: IstioMetrics;
  readonly log: MemoryLog;
  readonly registry: Registry;
  readonly ports: ZtunnelPorts;
  readonly #opts: ZtunnelOptions;
  readonly #certs: WorkloadCertificates;
  readonly #server: HboneServer;
  readonly #pool: HbonePool;
  readonly #random: () => number;
  readonly #inboundListeners = new Map<string, Listener>();
  readonly #passthroughListeners = new Map<string, Listener>();
  readonly #vipListeners = new Map<string, Listener>();
  readonly #adminListeners: Listener[] = [];
  readonly #inbound = new Set<InboundConn>();
  readonly #outboundSockets = new Set<Duplex>();
  #state: MeshState;
  #ready = false;
  #closed = false;
  /** Addresses the admin-style listeners got (port 0 resolved). */
  readonly addresses: { admin?: string; metrics?: string; readiness?: string; socks5?: string } =
    {};

  private constructor(opts: ZtunnelOptions) {
    this.#opts = opts;
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
    this.#certs = opts.certificates;
    this.#random = opts.random ?? Math.random;
    this.#state = new MeshState(opts.config);
    this.log = new MemoryLog(opts.log ? { write: opts.log } : {});
    this.metrics = new IstioMetrics({
      accessLog: this.log,
      build: { component: "ztunnel", tag: "ambientkit" },
    });
    this.registry = new Registry();
    registerPrometheus(this.metrics, { registry: this.registry, l7: false });
    this.#server = new HboneServer({
      credentials: (local) => this.#credentialsFor(local),
      handler: (req) => this.#inboundDecision(req),
      ...(opts.connectTimeoutMs !== undefined
        ? { upstreamConnectTimeoutMs: opts.connectTimeoutMs }
        : {}),
    });
    this.#server.on("clientError", (e: unknown) => {
      this.log.warn(
        { error: String((e as Error).message ?? e) },
        "inbound HBONE connection refused",
      );
    });
    this.#pool = new HbonePool(
      opts.connectTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.connectTimeoutMs } : {},
    );
  }

  /** Issues certificates, binds every listener; on any failure closes what was opened and throws. */
  static async start(opts: ZtunnelOptions): Promise<Ztunnel> {
    const z = new Ztunnel(opts);
    try {
      await z.#sync();
      await z.#startAdmin();
      z.#ready = true;
      return z;
    } catch (e) {
      await z.close();
      throw e;
    }
  }

  /** The current config state. */
  get state(): MeshState {
    return this.#state;
  }

  /** Workloads this node serves. */
  get localWorkloads(): Workload[] {
    return this.#state.config.workloads.filter((w) => w.node === this.node);
  }

  #credentialsFor(localAddress: string): HboneCredentials | undefined {
    const w = this.#state.workloadByIp(localAddress);
    if (!w || w.node !== this.node) return undefined;
    return this.#certs.current(workloadIdentity(w));
  }

  /**
   * Replaces the config at runtime (as a new LOCAL_XDS load): listeners follow the workloads and
   * services, and open inbound connections that the new policies deny are closed, as ztunnel's
   * late policy rejection does.
   */
  async setConfig(config: LocalConfig): Promise<void> {
    if (this.#closed) throw new ExampleError("ERR_EXAMPLES_CLOSED", "this ztunnel is closed");
    this.#state = new MeshState(config);
    await this.#sync();
    for (const c of [...this.#inbound]) {
      const w = this.#state.workloadByIp(c.conn.destinationIp);
      const r: ZtunnelRbacResult | undefined = w ? this.#state.authorize(w, c.conn) : undefined;
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

  async #sync(): Promise<void> {
    const locals = this.localWorkloads;
    await Promise.all(locals.map((w) => this.#certs.ensure(workloadIdentity(w))));
    // inbound HBONE listeners: one per local in-mesh workload IP
    const wantInbound = new Set<string>();
    for (const w of locals)
      if (w.protocol === "HBONE") for (const ip of w.workloadIps) wantInbound.add(ip);
    for (const [ip, l] of this.#inboundListeners) {
      if (!wantInbound.has(ip)) {
        this.#inboundListeners.delete(ip);
        await l.close();
      }
    }
    for (const ip of wantInbound) {
      if (this.#inboundListeners.has(ip)) continue;
      const srv = net.createServer({ noDelay: true }, (s) => this.#server.handle(s));
      this.#inboundListeners.set(
        ip,
        await listen(srv, ip, this.ports.hbone, `ztunnel ${this.node} HBONE inbound`),
      );
    }
    // inbound plaintext passthrough: podIP:15006 for the same local in-mesh workload IPs
    const wantPassthrough = this.ports.passthrough === null ? new Set<string>() : wantInbound;
    for (const [ip, l] of this.#passthroughListeners) {
      if (!wantPassthrough.has(ip)) {
        this.#passthroughListeners.delete(ip);
        await l.close();
      }
    }
    for (const ip of wantPassthrough) {
      if (this.#passthroughListeners.has(ip) || this.ports.passthrough === null) continue;
      const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
        s.on("error", () => {});
        this.#passthrough(s);
      });
      this.#passthroughListeners.set(
        ip,
        await listen(srv, ip, this.ports.passthrough, `ztunnel ${this.node} inbound passthrough`),
      );
    }
    // outbound capture: a listener per service VIP:port
    const wantVip = new Set<string>();
    if (this.#opts.captureServices !== false) {
      for (const s of this.#state.config.services)
        for (const v of s.vips)
          for (const p of Object.keys(s.ports)) wantVip.add(`${v.address}:${p}`);
    }
    for (const [k, l] of this.#vipListeners) {
      if (!wantVip.has(k)) {
        this.#vipListeners.delete(k);
        await l.close();
      }
    }
    for (const k of wantVip) {
      if (this.#vipListeners.has(k)) continue;
      const i = k.lastIndexOf(":");
      const ip = k.slice(0, i);
      const port = Number(k.slice(i + 1));
      const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
        s.on("error", () => {});
        void this.#captured(s, ip, port);
      });
      this.#vipListeners.set(
        k,
        await listen(srv, ip, port, `ztunnel ${this.node} outbound capture`),
      );
    }
  }

  async #startAdmin(): Promise<void> {
    const host = this.#opts.adminHost ?? "127.0.0.1";
    const p = this.ports;
    if (p.admin !== null) {
      const srv = http.createServer((req, res) => {
        const url = new URL(req.url ?? "/", "http://admin");
        if (url.pathname === "/config_dump") {
          const yaml = serializeLocalXds(this.#state.config);
          if (url.searchParams.get("format") === "json") {
            // the same document as JSON (ztunnel's dump is JSON); JSON is YAML, so it is LOCAL_XDS input too
            res.writeHead(200, { "content-type": "application/json" });
            res.end(`${JSON.stringify(parseYaml(yaml), null, 2)}\n`);
          } else {
            res.writeHead(200, { "content-type": "application/yaml" });
            res.end(yaml);
          }
        } else if (url.pathname === "/") {
          res.writeHead(200, { "content-type": "text/plain" });
          res.end(
            "ztunnel admin (ambientkit reference)\n/config_dump  LOCAL_XDS YAML of the current state\n/certs        issued workload identities\n",
          );
        } else if (url.pathname === "/certs") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ identities: this.#certs.identities() }, null, 2));
        } else {
          res.writeHead(404).end();
        }
      });
      const l = await listen(srv, host, p.admin, `ztunnel ${this.node} admin`);
      this.#adminListeners.push(l);
      this.addresses.admin = `${host}:${l.port}`;
    }
    if (p.metrics !== null) {
      const srv = http.createServer((req, res) => {
        const path = new URL(req.url ?? "/", "http://m").pathname;
        if (path !== "/metrics" && path !== "/stats/prometheus") {
          res.writeHead(404).end();
          return;
        }
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": this.registry.contentType });
            res.end(text);
          },
          (e: unknown) => {
            res.writeHead(500).end(String(e));
          },
        );
      });
      const l = await listen(srv, host, p.metrics, `ztunnel ${this.node} metrics`);
      this.#adminListeners.push(l);
      this.addresses.metrics = `${host}:${l.port}`;
    }
    if (p.readiness !== null) {
      const srv = http.createServer((req, res) => {
        if (req.url === "/healthz/ready") {
          res.writeHead(this.#ready ? 200 : 503, { "content-type": "text/plain" });
          res.end(this.#ready ? "ready\n" : "not ready\n");
        } else res.writeHead(404).end();
      });
      const l = await listen(srv, host, p.readiness, `ztunnel ${this.node} readiness`);
      this.#adminListeners.push(l);
      this.addresses.readiness = `${host}:${l.port}`;
    }
    if (p.socks5 !== null) {
      const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
        s.on("error", () => {});
        serveSocks5(s, async (target, head) => {
          let ip = target.host;
          if (target.kind === "domain") {
            const svc = this.#state.serviceByHostname(target.host);
            const vip = svc?.vips[0]?.address;
            if (vip !== undefined) ip = vip;
            else if (target.host === "localhost") ip = "127.0.0.1";
            else return SOCKS5_HOST_UNREACHABLE;
          }
          if (ILLEGAL_PORTS.has(target.port) && ip.startsWith("127.")) return SOCKS5_NOT_ALLOWED;
          const ok = await this.#outbound(s, ip, target.port, head);
          return ok ? true : SOCKS5_CONNECTION_REFUSED;
        });
      });
      const l = await listen(srv, host, p.socks5, `ztunnel ${this.node} SOCKS5`);
      this.#adminListeners.push(l);
      this.addresses.socks5 = `${host}:${l.port}`;
    }
  }

  #sourceFor(ip: string): Workload | undefined {
    const w = this.#state.workloadByIp(ip);
    if (w && w.node === this.node) return w;
    const def = this.#opts.defaultSource;
    if (def !== undefined) {
      const [ns, name] = def.split("/");
      return this.#state.workloadByName(ns ?? "", name ?? "");
    }
    return this.localWorkloads.find((x) => x.protocol === "HBONE");
  }

  /**
   * ztunnel's outbound decision tree (`OutboundConnection::build_request`) for a connection from
   * `source` to `ip:port`.
   */
  route(source: Workload, ip: string, port: number): OutboundRoute {
    const st = this.#state;
    const svc = st.serviceByVip(ip);
    const authority = socketAddr(ip, port);
    // 1. a service with a waypoint: HBONE to the waypoint, :authority = the original VIP:port
    const svcWaypoint = svc
      ? svc.weightedWaypoints.length > 0
        ? pickWaypoint(svc, this.#random)
        : svc.waypoint
      : undefined;
    if (svc && svcWaypoint && !this.#fromWaypoint(source, svcWaypoint)) {
      const via = st.resolveGateway(svcWaypoint, this.#random);
      if (!via) return { kind: "reject", reason: `waypoint of ${svc.hostname} is unknown` };
      return { kind: "waypoint", via, authority, service: svc, workload: undefined };
    }
    // 2. pick an upstream: a service VIP load-balances, else a workload IP
    let workload: Workload | undefined;
    let targetPort = port;
    if (svc) {
      const ep = st.pickEndpoint(svc, port, this.#random);
      if (!ep) {
        if (svc.loadBalancer?.mode === "Passthrough")
          return { kind: "passthrough", host: ip, port, workload: undefined, service: svc };
        return { kind: "reject", reason: `no healthy upstream for ${svc.hostname}:${port}` };
      }
      workload = ep.workload;
      targetPort = ep.port;
    } else {
      workload = st.workloadByIp(ip);
      if (!workload)
        return { kind: "passthrough", host: ip, port, workload: undefined, service: undefined };
    }
    const podIp = svc ? (workload.workloadIps[0] ?? ip) : ip;
    // 4. workload-addressed and the workload has a waypoint
    if (!svc && workload.waypoint && !this.#fromWaypoint(source, workload.waypoint)) {
      const via = st.resolveGateway(workload.waypoint, this.#random);
      if (!via) return { kind: "reject", reason: `waypoint of ${workload.name} is unknown` };
      return {
        kind: "waypoint",
        via,
        authority: socketAddr(podIp, targetPort),
        service: undefined,
        workload,
      };
    }
    // 5. direct
    if (workload.protocol === "HBONE") {
      return {
        kind: "hbone",
        host: podIp,
        port: this.ports.hbone,
        authority: socketAddr(podIp, targetPort),
        workload,
        service: svc,
        identities: st.expectedIdentities(workload, svc),
      };
    }
    return { kind: "passthrough", host: podIp, port: targetPort, workload, service: svc };
  }

  #fromWaypoint(source: Workload, gw: NonNullable<Workload["waypoint"]>): boolean {
    const t = this.#state.resolveGateway(gw, () => 0);
    return (
      t !== undefined &&
      workloadIdentity(t.workload) === workloadIdentity(source) &&
      source.workloadIps.includes(t.ip)
    );
  }

  async #captured(socket: net.Socket, ip: string, port: number): Promise<void> {
    socket.pause();
    const ok = await this.#outbound(socket, ip, port, Buffer.alloc(0));
    if (!ok) socket.destroy();
  }

  /** Connects a captured downstream socket to `ip:port`; resolves true once bytes can flow. */
  async #outbound(socket: net.Socket, ip: string, port: number, head: Buffer): Promise<boolean> {
    const srcIp = unmap(socket.remoteAddress);
    const src = this.#sourceFor(srcIp);
    const addrs = { src: socketAddr(srcIp, socket.remotePort ?? 0), dst: socketAddr(ip, port) };
    if (!src) {
      logEarlyDeny(this.log, addrs, "source", `unknown source ${srcIp}: no local workload`);
      return false;
    }
    const route = this.route(src, ip, port);
    if (route.kind === "reject") {
      logEarlyDeny(this.log, addrs, "source", route.reason);
      return false;
    }
    const ctx: TrafficContext = {
      reporter: "source",
      source: workloadInfo(src),
      ...(route.workload ? { destination: workloadInfo(route.workload) } : {}),
      ...(route.service ? { destinationService: serviceInfo(route.service) } : {}),
      securityPolicy: route.kind === "passthrough" ? "unknown" : "mutual_tls",
    };
    if (route.kind === "waypoint") {
      ctx.destinationPrincipal = workloadIdentity(route.via.workload);
    }
    const creds = this.#certs.current(workloadIdentity(src));
    let upstream: Duplex;
    let hboneAddr: string | undefined;
    try {
      if (route.kind === "passthrough") {
        upstream = await connectTcp(route.host, route.port, {
          timeoutMs: this.#opts.connectTimeoutMs ?? 10_000,
        });
      } else {
        if (!creds)
          throw new ExampleError(
            "ERR_EXAMPLES_ROUTE",
            `no certificate for ${workloadIdentity(src)}`,
          );
        const next =
          route.kind === "waypoint"
            ? { host: route.via.ip, port: route.via.port }
            : { host: route.host, port: route.port };
        const ids = route.kind === "waypoint" ? route.via.identities : route.identities;
        hboneAddr = route.authority;
        upstream = await this.#pool.open({
          address: next,
          credentials: creds,
          expectedIdentities: ids,
          sourceIp: src.workloadIps[0] ?? srcIp,
          authority: route.authority,
          baggage: workloadBaggage(src),
          forwarded: { for: addrs.src, ...(route.service ? { host: route.service.hostname } : {}) },
          ...(this.#opts.connectTimeoutMs !== undefined
            ? { timeoutMs: this.#opts.connectTimeoutMs }
            : {}),
        });
      }
    } catch (e) {
      const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), {
        ...addrs,
        ...(hboneAddr ? { hboneAddr } : {}),
      });
      h.close({ error: describeError(e) });
      return false;
    }
    if (this.#closed) {
      upstream.destroy();
      return false;
    }
    const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), {
      ...addrs,
      ...(hboneAddr ? { hboneAddr } : {}),
    });
    if (head.length > 0) {
      upstream.write(head);
      h.received(head.length);
    }
    this.#track(socket, upstream, h);
    return true;
  }

  #track(downstream: net.Socket, upstream: Duplex, h: ConnectionHandle): void {
    this.#outboundSockets.add(downstream);
    // bytes are counted from the sockets' own counters at close (no per-chunk listeners on the data path)
    const base = downstream.bytesRead;
    let err: unknown;
    upstream.once("error", (e) => {
      err = e;
    });
    pipeBoth(downstream, upstream, () => {
      this.#outboundSockets.delete(downstream);
      h.received(downstream.bytesRead - base);
      h.sent(bytesFrom(upstream));
      h.close(err === undefined ? undefined : { error: describeError(err) });
    });
    downstream.resume();
  }

  /** The inbound checks after CONNECT and :authority (both done by HboneServer → 400). */
  async #inboundDecision(req: HboneServerRequest): Promise<HboneDecision> {
    const st = this.#state;
    const local = st.workloadByIp(req.localAddress);
    // validate_destination: the authority must be this pod's IP
    if (req.authority.kind !== "ip" || req.authority.host !== req.localAddress) {
      if (!local?.applicationTunnel) {
        return {
          action: "reject",
          status: 400,
          reason: `IP mismatch: authority ${req.authorityText} is not ${req.localAddress}`,
        };
      }
    }
    if (!local || local.node !== this.node)
      return { action: "no-route", reason: "unknown local workload" };
    const port = req.authority.port;
    if (ILLEGAL_PORTS.has(port))
      return { action: "no-route", reason: `port ${port} is a ztunnel port` };
    const source = st.workloadByIp(req.remoteAddress);
    const svcHost = req.forwarded.host;
    const svc = svcHost ? st.serviceByHostname(svcHost) : undefined;
    const conn: ZtunnelConnection = {
      sourceIp: req.remoteAddress,
      destinationIp: req.localAddress,
      destinationPort: port,
      sourceIdentity: req.peerIdentity,
    };
    const ctx: TrafficContext = {
      reporter: "destination",
      ...(source ? { source: workloadInfo(source) } : {}),
      destination: workloadInfo(local),
      ...(svc ? { destinationService: serviceInfo(svc) } : {}),
      sourcePrincipal: req.peerIdentity,
      destinationPrincipal: req.localIdentity,
      securityPolicy: "mutual_tls",
    };
    const addrs = {
      src: socketAddr(req.remoteAddress, req.remotePort),
      dst: socketAddr(req.localAddress, this.ports.hbone),
      hboneAddr: req.authorityText,
    };
    const rbac = st.authorize(local, conn);
    if (!rbac.allowed) {
      const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
      h.close({ error: `connection closed due to policy rejection: ${rbacReason(rbac)}` });
      return { action: "deny", reason: rbacReason(rbac) };
    }
    let upstream: net.Socket;
    try {
      // connect to the app as the original source (ztunnel spoofs the client IP; on loopback any 127/8 address binds)
      upstream = await connectTcp(req.localAddress, port, {
        localAddress: req.remoteAddress.startsWith("127.") ? req.remoteAddress : req.localAddress,
        timeoutMs: this.#opts.connectTimeoutMs ?? 10_000,
      });
    } catch (e) {
      const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
      h.close({ error: describeError(e) });
      return { action: "no-route", reason: describeError(e) };
    }
    upstream.on("error", () => {});
    return {
      action: "accept",
      onTunnel: (tunnel) => {
        if (this.#closed) {
          tunnel.destroy();
          upstream.destroy();
          return;
        }
        const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
        const rec: InboundConn = { workload: local, conn, tunnel, upstream };
        this.#inbound.add(rec);
        pipeBoth(tunnel, upstream, () => {
          this.#inbound.delete(rec);
          h.received(upstream.bytesWritten);
          h.sent(upstream.bytesRead);
          h.close();
        });
      },
    };
  }

  /**
   * Inbound plaintext passthrough (ztunnel's `inbound_passthrough.rs`, port 15006). ztunnel reads the
   * original destination with SO_ORIGINAL_DST; Node cannot, so here the capture point (a redirector,
   * or a test) must send a PROXY protocol v2 header first whose destination is the original
   * `podIP:port` (its source is the original client). Anything else is closed. The destination must
   * be a local workload and its port not a ztunnel port; L4 authz runs with no source identity (so
   * STRICT mTLS or a principal-requiring ALLOW rejects it), then the app is dialled and bytes copied.
   */
  #passthrough(socket: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    const fail = (): void => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.destroy();
    };
    const timer = setTimeout(fail, this.#opts.connectTimeoutMs ?? 10_000);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let decoded: ReturnType<typeof decodeProxyV2>;
      try {
        decoded = decodeProxyV2(buf);
      } catch (e) {
        logEarlyDeny(
          this.log,
          { src: socketAddr(unmap(socket.remoteAddress), socket.remotePort ?? 0), dst: "unknown" },
          "destination",
          `inbound passthrough: ${describeError(e)}`,
        );
        fail();
        return;
      }
      if (!decoded) return;
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      socket.pause();
      void this.#passthroughConnect(socket, decoded.header, buf.subarray(decoded.length));
    };
    const onEnd = (): void => fail();
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", () => clearTimeout(timer));
  }

  async #passthroughConnect(socket: net.Socket, header: ProxyHeader, head: Buffer): Promise<void> {
    const st = this.#state;
    const src = header.source;
    const dst = header.destination;
    const srcIp = src?.address ?? unmap(socket.remoteAddress);
    const addrs = {
      src: socketAddr(srcIp, src?.port ?? socket.remotePort ?? 0),
      dst: dst ? socketAddr(dst.address, dst.port) : "unknown",
    };
    const reject = (reason: string): void => {
      logEarlyDeny(this.log, addrs, "destination", reason);
      socket.destroy();
    };
    if (header.command !== "PROXY" || !dst)
      return reject("inbound passthrough: the PROXY header names no original destination");
    const local = st.workloadByIp(dst.address);
    if (!local || local.node !== this.node)
      return reject(`inbound passthrough: ${dst.address} is not a local workload`);
    if (
      ILLEGAL_PORTS.has(dst.port) ||
      dst.port === this.ports.hbone ||
      dst.port === this.ports.passthrough
    )
      return reject(`inbound passthrough: port ${dst.port} is a ztunnel port`);
    const source = st.workloadByIp(srcIp);
    const conn: ZtunnelConnection = {
      sourceIp: srcIp,
      destinationIp: dst.address,
      destinationPort: dst.port,
      sourceIdentity: null,
    };
    const ctx: TrafficContext = {
      reporter: "destination",
      ...(source ? { source: workloadInfo(source) } : {}),
      destination: workloadInfo(local),
      destinationPrincipal: workloadIdentity(local),
      // plaintext: no source principal; ztunnel reports connection_security_policy "unknown"
      securityPolicy: "unknown",
    };
    const rbac = st.authorize(local, conn);
    if (!rbac.allowed) {
      const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
      h.close({ error: `connection closed due to policy rejection: ${rbacReason(rbac)}` });
      socket.destroy();
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await connectTcp(dst.address, dst.port, {
        localAddress: srcIp.startsWith("127.") ? srcIp : dst.address,
        timeoutMs: this.#opts.connectTimeoutMs ?? 10_000,
      });
    } catch (e) {
      const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
      h.close({ error: describeError(e) });
      socket.destroy();
      return;
    }
    upstream.on("error", () => {});
    if (this.#closed || socket.destroyed) {
      upstream.destroy();
      socket.destroy();
      return;
    }
    const h = this.metrics.openConnection(ztunnelTcpLabels(ctx), addrs);
    const rec: InboundConn = { workload: local, conn, tunnel: socket, upstream };
    this.#inbound.add(rec);
    if (head.length > 0) upstream.write(head);
    pipeBoth(socket, upstream, () => {
      this.#inbound.delete(rec);
      h.received(upstream.bytesWritten);
      h.sent(upstream.bytesRead);
      h.close();
    });
    socket.resume();
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
    for (const c of this.#inbound) {
      c.tunnel.destroy();
      c.upstream.destroy();
    }
    this.#inbound.clear();
    for (const s of this.#outboundSockets) s.destroy();
    this.#outboundSockets.clear();
    this.#pool.destroy();
    const all = [
      ...this.#inboundListeners.values(),
      ...this.#passthroughListeners.values(),
      ...this.#vipListeners.values(),
      ...this.#adminListeners,
    ];
    this.#inboundListeners.clear();
    this.#passthroughListeners.clear();
    this.#vipListeners.clear();
    this.#adminListeners.length = 0;
    await Promise.all([...all.map((l) => l.close()), this.#server.close(0)]);
  }
}

function pickWaypoint(svc: Service, random: () => number): Service["waypoint"] {
  const total = svc.weightedWaypoints.reduce((n, w) => n + w.weight, 0);
  let r = random() * total;
  for (const w of svc.weightedWaypoints) {
    r -= w.weight;
    if (r < 0) return w.destination;
  }
  return svc.weightedWaypoints[0]?.destination;
}

/** ztunnel's wording of an RBAC outcome. */
export function rbacReason(r: ZtunnelRbacResult): string {
  if (r.reason === "denied") return `explicitly denied by: ${r.policy ?? "?"}`;
  if (r.reason === "not-allowed") return "allow policies exist, but none allowed";
  return r.policy ? `allowed by ${r.policy}` : "allowed: no allow policies";
}

function describeError(e: unknown): string {
  if (e instanceof HboneError && e.status !== undefined) return `http status: ${e.status}`;
  return e instanceof Error ? e.message : String(e);
}

/** Bytes read from an upstream: a TCP socket's counter, or an HBONE tunnel's. */
function bytesFrom(d: Duplex): number {
  if (d instanceof net.Socket) return d.bytesRead;
  const n = (d as { bytesReceived?: unknown }).bytesReceived;
  return typeof n === "number" ? n : 0;
}

function unmap(a: string | undefined): string {
  if (!a) return "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}
