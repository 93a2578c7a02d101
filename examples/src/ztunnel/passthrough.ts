// Inbound plaintext passthrough (ztunnel's `inbound_passthrough.rs`, port 15006). ztunnel reads the
// original destination with SO_ORIGINAL_DST; Node cannot, so here the capture point (a redirector,
// or a test) must send a PROXY protocol v2 header first whose destination is the original
// `podIP:port` (its source is the original client). Anything else is closed. The destination must
// be a local workload and its port not a ztunnel port; L4 authz runs with no source identity (so
// STRICT mTLS or a principal-requiring ALLOW rejects it), then the app is dialled and bytes copied.
// In-pod, the destination comes from SO_ORIGINAL_DST instead (`serveRedirected`, inpod.ts).
import type net from "node:net";
import type { Duplex } from "node:stream";
import type { ZtunnelConnection } from "@ambientkit/authz";
import {
  logEarlyDeny,
  socketAddr,
  type TrafficContext,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { workloadIdentity } from "@ambientkit/xds-types";
import { canonicalIpText } from "@ambientkit/xds-types/ip";
import { decodeProxyV2, type ProxyHeader } from "../hbone.js";
import { workloadInfo } from "../mesh/labels.js";
import { connectTcp, pipeBoth } from "../mesh/net.js";
import { ILLEGAL_PORTS } from "../mesh/state.js";
import { describeError, type InboundConn, rbacReason, type ZtunnelContext } from "./context.js";

/** Dials the app at `host:port` as `sourceIp` (in-pod: inside the pod's netns). */
export type PassthroughAppDialer = (target: {
  host: string;
  port: number;
  sourceIp: string;
  timeoutMs: number;
}) => Promise<Duplex>;

export class Passthrough {
  readonly #ctx: ZtunnelContext;
  readonly #open: Set<InboundConn>;

  constructor(ctx: ZtunnelContext, open: Set<InboundConn>) {
    this.#ctx = ctx;
    this.#open = open;
  }

  /** Serves one accepted podIP:15006 socket: the PROXY v2 header first, then the app. */
  serve(socket: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    const fail = (): void => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.destroy();
    };
    const timer = setTimeout(fail, this.#ctx.opts.connectTimeoutMs ?? 10_000);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let decoded: ReturnType<typeof decodeProxyV2>;
      try {
        decoded = decodeProxyV2(buf);
      } catch (e) {
        logEarlyDeny(
          this.#ctx.log,
          {
            src: socketAddr(canonicalIpText(socket.remoteAddress), socket.remotePort ?? 0),
            dst: "unknown",
          },
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
      void this.#connect(socket, decoded.header, buf.subarray(decoded.length));
    };
    const onEnd = (): void => fail();
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", () => clearTimeout(timer));
  }

  /**
   * Serves one socket whose original destination the caller already knows (in-pod: read with
   * SO_ORIGINAL_DST); `dial` reaches the app.
   */
  serveRedirected(
    socket: net.Socket,
    destination: { address: string; port: number },
    dial: PassthroughAppDialer,
  ): void {
    socket.pause();
    const header: ProxyHeader = {
      command: "PROXY",
      source: { address: canonicalIpText(socket.remoteAddress), port: socket.remotePort ?? 0 },
      destination,
      tlvs: [],
    };
    void this.#connect(socket, header, Buffer.alloc(0), dial);
  }

  async #connect(
    socket: net.Socket,
    header: ProxyHeader,
    head: Buffer,
    dial?: PassthroughAppDialer,
  ): Promise<void> {
    const ctx = this.#ctx;
    const st = ctx.state;
    const src = header.source;
    const dst = header.destination;
    const srcIp = src?.address ?? canonicalIpText(socket.remoteAddress);
    const addrs = {
      src: socketAddr(srcIp, src?.port ?? socket.remotePort ?? 0),
      dst: dst ? socketAddr(dst.address, dst.port) : "unknown",
    };
    const reject = (reason: string): void => {
      logEarlyDeny(ctx.log, addrs, "destination", reason);
      socket.destroy();
    };
    if (header.command !== "PROXY" || !dst)
      return reject("inbound passthrough: the PROXY header names no original destination");
    const local = st.workloadByIp(dst.address);
    if (!local || local.node !== ctx.node)
      return reject(`inbound passthrough: ${dst.address} is not a local workload`);
    if (
      ILLEGAL_PORTS.has(dst.port) ||
      dst.port === ctx.ports.hbone ||
      dst.port === ctx.ports.passthrough
    )
      return reject(`inbound passthrough: port ${dst.port} is a ztunnel port`);
    const source = st.workloadByIp(srcIp);
    const conn: ZtunnelConnection = {
      sourceIp: srcIp,
      destinationIp: dst.address,
      destinationPort: dst.port,
      sourceIdentity: null,
    };
    const labels = ztunnelTcpLabels({
      reporter: "destination",
      ...(source ? { source: workloadInfo(source) } : {}),
      destination: workloadInfo(local),
      destinationPrincipal: workloadIdentity(local),
      // plaintext: no source principal; ztunnel reports connection_security_policy "unknown"
      securityPolicy: "unknown",
    } satisfies TrafficContext);
    const rbac = st.authorize(local, conn);
    if (!rbac.allowed) {
      ctx.metrics
        .openConnection(labels, addrs)
        .close({ error: `connection closed due to policy rejection: ${rbacReason(rbac)}` });
      socket.destroy();
      return;
    }
    let upstream: Duplex;
    const timeoutMs = ctx.opts.connectTimeoutMs ?? 10_000;
    try {
      upstream = dial
        ? await dial({ host: dst.address, port: dst.port, sourceIp: srcIp, timeoutMs })
        : await connectTcp(dst.address, dst.port, {
            localAddress: srcIp.startsWith("127.") ? srcIp : dst.address,
            timeoutMs,
          });
    } catch (e) {
      ctx.metrics.openConnection(labels, addrs).close({ error: describeError(e) });
      socket.destroy();
      return;
    }
    upstream.on("error", () => {});
    if (ctx.closed || socket.destroyed) {
      upstream.destroy();
      socket.destroy();
      return;
    }
    const h = ctx.metrics.openConnection(labels, addrs);
    const rec: InboundConn = { workload: local, conn, tunnel: socket, upstream };
    this.#open.add(rec);
    if (head.length > 0) upstream.write(head);
    const up = upstream as Partial<net.Socket>;
    pipeBoth(socket, upstream, () => {
      this.#open.delete(rec);
      h.received(up.bytesWritten ?? 0);
      h.sent(up.bytesRead ?? 0);
      h.close();
    });
    socket.resume();
  }
}
