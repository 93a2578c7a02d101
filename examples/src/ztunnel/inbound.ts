// HBONE inbound (podIP:15008), in ztunnel's order: HboneServer checks mTLS, CONNECT and the
// :authority (400) and, with `requireLocalAuthority`, that an IP authority is the pod IP the client
// dialled (validate_destination, 400); here: the local workload exists (503), the port is not a
// ztunnel port (503), the L4 policies allow it (401); then the server's `connect` decision dials the
// app from the original client IP and answers 200 only once connected (else 503). Tunnels are
// recorded by `tunnelRecorder` through the server's hooks.
import type { ZtunnelConnection } from "@ambientkit/authz";
import {
  type ConnectionAddresses,
  socketAddr,
  type TcpLabels,
  type TrafficContext,
  tunnelRecorder,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { workloadIdentity } from "@ambientkit/xds-types";
import {
  type HboneCredentials,
  type HboneDecision,
  HboneServer,
  type HboneServerRequest,
} from "../hbone.js";
import { serviceInfo, workloadInfo } from "../mesh/labels.js";
import { ILLEGAL_PORTS } from "../mesh/state.js";
import { describeError, type InboundConn, rbacReason, type ZtunnelContext } from "./context.js";

interface Recorded {
  labels: TcpLabels;
  addrs: ConnectionAddresses;
}

export class Inbound {
  readonly server: HboneServer;
  readonly #ctx: ZtunnelContext;
  readonly #open: Set<InboundConn>;
  /** Labels of an accepted CONNECT, keyed by its header object (TunnelInfo.headers is the same). */
  readonly #recorded = new WeakMap<object, Recorded>();

  constructor(ctx: ZtunnelContext, open: Set<InboundConn>) {
    this.#ctx = ctx;
    this.#open = open;
    this.server = new HboneServer({
      credentials: (local) => this.#credentialsFor(local),
      handler: (req) => this.#decide(req),
      requireLocalAuthority: true,
      hooks: {
        ...tunnelRecorder(ctx.metrics, {
          labels: (info) => this.#recorded.get(info.headers)?.labels,
          addresses: (info) => this.#recorded.get(info.headers)?.addrs,
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
  #decide(req: HboneServerRequest): HboneDecision {
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
    return {
      action: "connect",
      host: req.localAddress,
      port,
      // as the original source (ztunnel spoofs the client IP; on loopback any 127/8 address binds)
      localAddress: req.remoteAddress.startsWith("127.") ? req.remoteAddress : req.localAddress,
      onError: (e) => failed(describeError(e)),
      onTunnel: (tunnel, upstream) => {
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
      },
    };
  }
}
