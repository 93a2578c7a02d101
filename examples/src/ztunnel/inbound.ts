// HBONE inbound (podIP:15008), in ztunnel's order: HboneServer checks mTLS, CONNECT and the
// :authority (400) and, with `requireLocalAuthority`, that an IP authority is the pod IP the client
// dialled (validate_destination, 400); here: the local workload exists (503), the port is not a
// ztunnel port (503), the L4 policies allow it (401); then the server's `connect` decision dials the
// app from the original client IP and answers 200 only once connected (else 503). Tunnels are
// recorded by `tunnelRecorder` through the server's hooks (opened at the 200, bytes and result at
// close). An in-pod ztunnel passes `dialApp`: the app is then dialled inside the pod's network
// namespace before the 200 (inpod.ts).
import type { Duplex } from "node:stream";
import type { ZtunnelConnection } from "@ambientkit/authz";
import {
  type ConnectionAddresses,
  socketAddr,
  type TcpLabels,
  type TrafficContext,
  tunnelRecorder,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { type Workload, workloadIdentity } from "@ambientkit/xds-types";
import {
  type HboneCredentials,
  type HboneDecision,
  HboneServer,
  type HboneServerRequest,
} from "../hbone.js";
import { serviceInfo, workloadInfo } from "../mesh/labels.js";
import { pipeBoth } from "../mesh/net.js";
import { ILLEGAL_PORTS } from "../mesh/state.js";
import { describeError, type InboundConn, rbacReason, type ZtunnelContext } from "./context.js";

interface Recorded {
  labels: TcpLabels;
  addrs: ConnectionAddresses;
}

/** Dials the app of `local` at `host:port` as `sourceIp` (in-pod: inside the pod's netns). */
export type InboundAppDialer = (
  local: Workload,
  target: { host: string; port: number; sourceIp: string; signal: AbortSignal },
) => Promise<Duplex>;

export class Inbound {
  readonly server: HboneServer;
  readonly #ctx: ZtunnelContext;
  readonly #open: Set<InboundConn>;
  /** Labels of an accepted CONNECT, keyed by its header object (TunnelInfo.headers is the same). */
  readonly #recorded = new WeakMap<object, Recorded>();
  readonly #dialApp: InboundAppDialer | undefined;

  constructor(ctx: ZtunnelContext, open: Set<InboundConn>, dialApp?: InboundAppDialer) {
    this.#ctx = ctx;
    this.#open = open;
    this.#dialApp = dialApp;
    this.server = new HboneServer({
      credentials: (local) => this.#credentialsFor(local),
      handler: (req) => this.#decide(req),
      requireLocalAuthority: true,
      hooks: {
        // bytes counted once at close from the tunnel's own counters (no hook per DATA frame)
        ...tunnelRecorder(ctx.metrics, {
          labels: (info) => this.#recorded.get(info.headers)?.labels,
          addresses: (info) => this.#recorded.get(info.headers)?.addrs,
          bytes: "close",
        }),
        onConnectionEnd: ctx.connectionEnd,
      },
      ...(ctx.opts.connectTimeoutMs !== undefined
        ? { upstreamConnectTimeoutMs: ctx.opts.connectTimeoutMs }
        : {}),
    });
    this.server.on("clientError", (e: unknown) => {
      ctx.log.warn(
        { error: String((e as Error).message ?? e) },
        "inbound HBONE connection refused",
      );
    });
  }

  #credentialsFor(localAddress: string): HboneCredentials | undefined {
    const w = this.#ctx.state.workloadByIp(localAddress);
    if (!w || w.node !== this.#ctx.node) return undefined;
    return this.#ctx.certs.current(workloadIdentity(w));
  }

  /** The checks after CONNECT and :authority (HboneServer answers those with 400). */
  #decide(req: HboneServerRequest): HboneDecision | Promise<HboneDecision> {
    const ctx = this.#ctx;
    const st = ctx.state;
    // validate_destination for hostname authorities (IP ones: requireLocalAuthority)
    if (req.authority.kind !== "ip") {
      return {
        action: "reject",
        status: 400,
        reason: `IP mismatch: authority ${req.authorityText} is not ${req.localAddress}`,
      };
    }
    const local = st.workloadByIp(req.localAddress);
    if (!local || local.node !== ctx.node)
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
    const traffic: TrafficContext = {
      reporter: "destination",
      ...(source ? { source: workloadInfo(source) } : {}),
      destination: workloadInfo(local),
      ...(svc ? { destinationService: serviceInfo(svc) } : {}),
      sourcePrincipal: req.peerIdentity,
      destinationPrincipal: req.localIdentity,
      securityPolicy: "mutual_tls",
    };
    const rec: Recorded = {
      labels: ztunnelTcpLabels(traffic),
      addrs: {
        src: socketAddr(req.remoteAddress, req.remotePort),
        dst: socketAddr(req.localAddress, ctx.ports.hbone),
        hboneAddr: req.authorityText,
      },
    };
    const failed = (error: string): void => {
      ctx.metrics.openConnection(rec.labels, rec.addrs).close({ error });
    };
    const rbac = st.authorize(local, conn);
    if (!rbac.allowed) {
      failed(`connection closed due to policy rejection: ${rbacReason(rbac)}`);
      return { action: "deny", reason: rbacReason(rbac) };
    }
    this.#recorded.set(req.headers, rec);
    const onTunnel = (tunnel: Duplex, upstream: Duplex): void => {
      if (ctx.closed) {
        tunnel.destroy();
        upstream.destroy();
        return;
      }
      const open: InboundConn = { workload: local, conn, tunnel, upstream };
      this.#open.add(open);
      let n = 0;
      const gone = (): void => {
        if (++n === 2) this.#open.delete(open);
      };
      tunnel.once("close", gone);
      upstream.once("close", gone);
    };
    const dialApp = this.#dialApp;
    if (dialApp) return this.#viaDialer(dialApp, req, local, port, failed, onTunnel);
    return {
      action: "connect",
      host: req.localAddress,
      port,
      // as the original source (ztunnel spoofs the client IP; on loopback any 127/8 address binds)
      localAddress: req.remoteAddress.startsWith("127.") ? req.remoteAddress : req.localAddress,
      onError: (e) => failed(describeError(e)),
      onTunnel,
    };
  }

  /** The app dialled by `dialApp` first, then 200 and the bytes piped (else 503). */
  async #viaDialer(
    dialApp: InboundAppDialer,
    req: HboneServerRequest,
    local: Workload,
    port: number,
    failed: (error: string) => void,
    onTunnel: (tunnel: Duplex, upstream: Duplex) => void,
  ): Promise<HboneDecision> {
    let upstream: Duplex;
    try {
      upstream = await dialApp(local, {
        host: req.localAddress,
        port,
        sourceIp: req.remoteAddress,
        signal: req.signal,
      });
    } catch (e) {
      failed(describeError(e));
      return { action: "no-route", reason: describeError(e) };
    }
    if (req.signal.aborted || this.#ctx.closed) {
      // the client left while we dialled: the server will not call onTunnel
      upstream.destroy();
      return { action: "no-route", reason: "client closed before connect" };
    }
    return {
      action: "accept",
      onTunnel: (tunnel) => {
        onTunnel(tunnel, upstream);
        pipeBoth(tunnel, upstream, undefined, {
          idleTimeoutMs: this.#ctx.opts.idleTimeoutMs ?? 0,
        });
      },
    };
  }
}
