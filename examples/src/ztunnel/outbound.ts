// Outbound: ztunnel's decision tree (`OutboundConnection::build_request`) for a connection captured
// on a service VIP:port or asked for over SOCKS5 (15080), then HBONE through the pool (to a waypoint
// or podIP:15008) or plain TCP passthrough, and the bytes copied both ways. An in-pod ztunnel
// passes an `OutboundVia` per source pod: its sockets then start inside that pod's netns (inpod.ts).
import net from "node:net";
import type { Duplex } from "node:stream";
import {
  type ConnectionHandle,
  logEarlyDeny,
  socketAddr,
  type TrafficContext,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { type Service, type Workload, workloadIdentity } from "@ambientkit/xds-types";
import { canonicalIpText } from "@ambientkit/xds-types/ip";
import { HbonePool } from "../hbone.js";
import { ExampleError } from "../mesh/errors.js";
import { serviceInfo, workloadBaggage, workloadInfo } from "../mesh/labels.js";
import { connectTcp, type Listener, listen, onceClosed, pipeBoth } from "../mesh/net.js";
import { type GatewayTarget, ILLEGAL_PORTS } from "../mesh/state.js";
import {
  describeError,
  IDLE_TIMEOUT_MS,
  MAX_DOWNSTREAM_CONNECTIONS,
  type ZtunnelContext,
} from "./context.js";
import {
  SOCKS5_CONNECTION_REFUSED,
  SOCKS5_HOST_UNREACHABLE,
  SOCKS5_NOT_ALLOWED,
  serveSocks5,
} from "./socks5.js";

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

/** Where a source's upstream sockets start (in-pod: inside the source pod's netns, marked). */
export interface OutboundVia {
  /** The source workload (in-pod: the pod the connection was captured in), not looked up by IP. */
  readonly source: Workload;
  /** HBONE pool for this source (its socket factory dials from the source's namespace). */
  readonly pool: HbonePool;
  /** Plain TCP for passthrough routes, from the source's namespace. */
  tcp(
    host: string,
    port: number,
    opts: { timeoutMs: number; signal: AbortSignal },
  ): Promise<Duplex>;
}

export class Outbound {
  readonly #ctx: ZtunnelContext;
  readonly #pool: HbonePool;
  readonly #sockets = new Set<Duplex>();
  readonly #max: number;
  #downstream = 0;

  constructor(ctx: ZtunnelContext) {
    this.#ctx = ctx;
    this.#max = ctx.opts.maxDownstreamConnections ?? MAX_DOWNSTREAM_CONNECTIONS;
    this.#pool = new HbonePool(
      ctx.opts.connectTimeoutMs !== undefined
        ? { handshakeTimeoutMs: ctx.opts.connectTimeoutMs }
        : {},
    );
  }

  /** Downstream connections open now (SOCKS5 and captured, handshaking or proxying). */
  get downstreamConnections(): number {
    return this.#downstream;
  }

  /** True while another downstream connection can be taken. */
  get hasCapacity(): boolean {
    return this.#downstream < this.#max;
  }

  /** Counts an accepted downstream socket; false (and closed) when over the cap. */
  admit(socket: net.Socket): boolean {
    if (this.#downstream >= this.#max) {
      socket.destroy();
      return false;
    }
    this.#downstream++;
    onceClosed(socket, () => this.#downstream--);
    return true;
  }

  /** The SOCKS5 listener (15080): no auth, CONNECT; service hostnames resolve to their VIP. */
  listenSocks5(host: string, port: number): Promise<Listener> {
    const ctx = this.#ctx;
    const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      if (!this.admit(s)) return;
      const handshakeTimeoutMs = ctx.opts.socks5HandshakeTimeoutMs;
      serveSocks5(
        s,
        async (target, head) => {
          let ip = target.host;
          if (target.kind === "domain") {
            const svc = ctx.state.serviceByHostname(target.host);
            const vip = svc?.vips[0]?.address;
            if (vip !== undefined) ip = vip;
            else if (target.host === "localhost") ip = "127.0.0.1";
            else return SOCKS5_HOST_UNREACHABLE;
          }
          if (ILLEGAL_PORTS.has(target.port) && ip.startsWith("127.")) return SOCKS5_NOT_ALLOWED;
          const ok = await this.connect(s, ip, target.port, head);
          return ok ? true : SOCKS5_CONNECTION_REFUSED;
        },
        handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs } : {},
      );
    });
    return listen(srv, host, port, `ztunnel ${ctx.node} SOCKS5`);
  }

  /** A connection captured on a service VIP:port. */
  async captured(socket: net.Socket, ip: string, port: number, via?: OutboundVia): Promise<void> {
    if (!this.admit(socket)) return;
    socket.pause();
    const ok = await this.connect(socket, ip, port, Buffer.alloc(0), via);
    if (!ok) socket.destroy();
  }

  #sourceFor(ip: string): Workload | undefined {
    const ctx = this.#ctx;
    const w = ctx.state.workloadByIp(ip);
    if (w && w.node === ctx.node) return w;
    const def = ctx.opts.defaultSource;
    if (def !== undefined) {
      const [ns, name] = def.split("/");
      return ctx.state.workloadByName(ns ?? "", name ?? "");
    }
    return ctx.localWorkloads.find((x) => x.protocol === "HBONE");
  }

  /**
   * ztunnel's outbound decision tree (`OutboundConnection::build_request`) for a connection from
   * `source` to `ip:port`.
   */
  route(source: Workload, ip: string, port: number): OutboundRoute {
    const st = this.#ctx.state;
    const random = this.#ctx.random;
    const svc = st.serviceByVip(ip);
    const authority = socketAddr(ip, port);
    // 1. a service with a waypoint: HBONE to the waypoint, :authority = the original VIP:port
    const svcWaypoint = svc
      ? svc.weightedWaypoints.length > 0
        ? pickWaypoint(svc, random)
        : svc.waypoint
      : undefined;
    if (svc && svcWaypoint && !this.#fromWaypoint(source, svcWaypoint)) {
      const via = st.resolveGateway(svcWaypoint, random);
      if (!via) return { kind: "reject", reason: `waypoint of ${svc.hostname} is unknown` };
      return { kind: "waypoint", via, authority, service: svc, workload: undefined };
    }
    // 2. pick an upstream: a service VIP load-balances, else a workload IP
    let workload: Workload | undefined;
    let targetPort = port;
    if (svc) {
      const ep = st.pickEndpoint(svc, port, random);
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
      const via = st.resolveGateway(workload.waypoint, random);
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
        port: this.#ctx.ports.hbone,
        authority: socketAddr(podIp, targetPort),
        workload,
        service: svc,
        identities: st.expectedIdentities(workload, svc),
      };
    }
    return { kind: "passthrough", host: podIp, port: targetPort, workload, service: svc };
  }

  #fromWaypoint(source: Workload, gw: NonNullable<Workload["waypoint"]>): boolean {
    const t = this.#ctx.state.resolveGateway(gw, () => 0);
    return (
      t !== undefined &&
      workloadIdentity(t.workload) === workloadIdentity(source) &&
      source.workloadIps.includes(t.ip)
    );
  }

  /** Connects a captured downstream socket to `ip:port`; resolves true once bytes can flow. */
  async connect(
    socket: net.Socket,
    ip: string,
    port: number,
    head: Buffer,
    via?: OutboundVia,
  ): Promise<boolean> {
    const ctx = this.#ctx;
    const srcIp = canonicalIpText(socket.remoteAddress);
    const src = via ? via.source : this.#sourceFor(srcIp);
    const addrs = { src: socketAddr(srcIp, socket.remotePort ?? 0), dst: socketAddr(ip, port) };
    if (!src) {
      logEarlyDeny(ctx.log, addrs, "source", `unknown source ${srcIp}: no local workload`);
      return false;
    }
    const route = this.route(src, ip, port);
    if (route.kind === "reject") {
      logEarlyDeny(ctx.log, addrs, "source", route.reason);
      return false;
    }
    const traffic: TrafficContext = {
      reporter: "source",
      source: workloadInfo(src),
      ...(route.workload ? { destination: workloadInfo(route.workload) } : {}),
      ...(route.service ? { destinationService: serviceInfo(route.service) } : {}),
      securityPolicy: route.kind === "passthrough" ? "unknown" : "mutual_tls",
      ...(route.kind === "waypoint"
        ? { destinationPrincipal: workloadIdentity(route.via.workload) }
        : {}),
    };
    const hboneAddr = route.kind === "passthrough" ? undefined : route.authority;
    const open = (): ConnectionHandle =>
      ctx.metrics.openConnection(ztunnelTcpLabels(traffic), {
        ...addrs,
        ...(hboneAddr ? { hboneAddr } : {}),
      });
    const creds = ctx.certs.current(workloadIdentity(src));
    // the client may leave while we connect: abandon the dial, and never pipe to a closed socket
    const gone = new AbortController();
    const onGone = (): void => gone.abort();
    onceClosed(socket, onGone);
    let upstream: Duplex;
    try {
      if (route.kind === "passthrough") {
        const o = { timeoutMs: ctx.opts.connectTimeoutMs ?? 10_000, signal: gone.signal };
        upstream = via
          ? await via.tcp(route.host, route.port, o)
          : await connectTcp(route.host, route.port, o);
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
        upstream = await (via?.pool ?? this.#pool).open({
          address: next,
          credentials: creds,
          expectedIdentities: route.kind === "waypoint" ? route.via.identities : route.identities,
          sourceIp: src.workloadIps[0] ?? srcIp,
          authority: route.authority,
          baggage: workloadBaggage(src),
          forwarded: { for: addrs.src, ...(route.service ? { host: route.service.hostname } : {}) },
          signal: gone.signal,
          ...(ctx.opts.connectTimeoutMs !== undefined
            ? { timeoutMs: ctx.opts.connectTimeoutMs }
            : {}),
        });
      }
    } catch (e) {
      socket.removeListener("close", onGone);
      open().close({
        error: gone.signal.aborted ? "client closed before connect" : describeError(e),
      });
      return false;
    }
    socket.removeListener("close", onGone);
    if (ctx.closed || socket.destroyed) {
      upstream.destroy();
      if (!ctx.closed) open().close({ error: "client closed before connect" });
      return false;
    }
    const h = open();
    if (head.length > 0) {
      upstream.write(head);
      h.received(head.length);
    }
    this.#track(socket, upstream, h);
    return true;
  }

  #track(downstream: net.Socket, upstream: Duplex, h: ConnectionHandle): void {
    this.#sockets.add(downstream);
    // bytes are counted from the sockets' own counters at close (no per-chunk listeners on the data path)
    const base = downstream.bytesRead;
    let err: unknown;
    upstream.once("error", (e) => {
      err = e;
    });
    pipeBoth(
      downstream,
      upstream,
      () => {
        this.#sockets.delete(downstream);
        h.received(downstream.bytesRead - base);
        h.sent(bytesFrom(upstream));
        h.close(err === undefined ? undefined : { error: describeError(err) });
      },
      { idleTimeoutMs: this.#ctx.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS },
    );
    downstream.resume();
  }

  /** Closes open connections and the pool. */
  destroy(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    this.#pool.destroy();
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

/** Bytes read from an upstream: a TCP socket's counter, or an HBONE tunnel's. */
function bytesFrom(d: Duplex): number {
  if (d instanceof net.Socket) return d.bytesRead;
  const n = (d as { bytesReceived?: unknown }).bytesReceived;
  return typeof n === "number" ? n : 0;
}
