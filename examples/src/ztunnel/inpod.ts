// The reference ztunnel's in-pod mode (ztunnel's `PROXY_MODE=shared`, src/inpod/*): istio-cni's node
// agent hands over each pod's network namespace over ZDS (`INPOD_UDS`), and for every pod this opens
// ztunnel's three listeners inside that namespace: 15001 (outbound, where the pod's iptables
// REDIRECT sends its TCP; the destination is read with SO_ORIGINAL_DST), 15006 (inbound plaintext)
// and 15008 (HBONE), all carrying ztunnel's packet mark (`PACKET_MARK`, 1337) so the pod's rules
// let ztunnel's own sockets pass; a pod with an IPv6 address gets each on `::` as well. Upstream sockets start inside the pod too: outbound HBONE and
// passthrough from the source pod (its own HbonePool), the app dial from the destination pod, as
// the original client (`ENABLE_ORIG_SRC`, IP_TRANSPARENT). DelWorkload (or a reconcile, or the
// ZdsClient's netns check finding the pod's network gone) stops the listeners and closes the pod's
// connections. As in ztunnel, adding a pod does not wait for its certificate (the CA may be slow
// or down, and ZDS requests queue behind one another): its first connections wait for it, at most
// the connect timeout. The request handling itself is the ztunnel's
// (outbound.ts, inbound.ts, passthrough.ts); this file owns sockets and their lifetime only.
import type dgram from "node:dgram";
import { readFileSync } from "node:fs";
import net from "node:net";
import type { Duplex } from "node:stream";
import {
  bindUdpInNetns,
  connectInNetns,
  DEFAULT_INPOD_MARK,
  DEFAULT_INPOD_UDS,
  type InpodWorkload,
  listenInNetns,
  type Netns,
  originalDestination,
  runInNetns,
  type SocketAddress,
  ZdsClient,
  type ZdsWorkloadHandler,
} from "@ambientkit/inpod";
import { type Workload, workloadIdentity } from "@ambientkit/xds-types";
import { Counter, Gauge, type Registry } from "prom-client";
import { HbonePool } from "../hbone.js";
import { ExampleError, envFlag } from "../mesh/errors.js";
import type { ZtunnelContext } from "./context.js";
import {
  type DnsClient,
  type DnsObserver,
  DnsProxy,
  dnsMetrics,
  resolvConfNameservers,
  serveDnsTcp,
  serveDnsUdp,
  udpForwarder,
} from "./dns.js";
import type { InboundAppDialer } from "./inbound.js";
import type { OutboundVia } from "./outbound.js";
import type { PassthroughAppDialer } from "./passthrough.js";

/** ztunnel's in-pod ports. */
export const INPOD_PORTS = { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } as const;

/** ztunnel's DNS proxy port (`DEFAULT_DNS_PORT`). */
const DNS_PORT = 15053;

function readResolvConf(): string {
  try {
    return readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return ""; // no upstream: names the mesh does not know get SERVFAIL
  }
}

/** The in-pod settings, as ztunnel names them in its environment. */
export interface InpodSettings {
  /** `INPOD_UDS`: the node agent's ZDS socket (default /var/run/ztunnel/ztunnel.sock). */
  readonly uds?: string;
  /** `PACKET_MARK`: SO_MARK of every socket ztunnel opens in a pod (default 1337 = 0x539). */
  readonly mark?: number;
  /**
   * `ENABLE_ORIG_SRC`: connect to the app as the original client IP (IP_TRANSPARENT), so the
   * app sees who called it (default true, as ztunnel in-pod).
   */
  readonly originalSource?: boolean;
  /** Ports inside each pod (default 15001 / 15006 / 15008); tests and benches keep the defaults. */
  readonly ports?: Partial<{ outbound: number; inboundPlaintext: number; hbone: number }>;
  /** ZDS reconnect backoff (default 10 ms doubling to 15 s, as ztunnel). */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /**
   * How often each pod's network namespace is checked for a torn-down network (ZdsClient's
   * `netnsCheckIntervalMs`: default 15 s, 0 disables); such a pod is removed as on DelWorkload.
   */
  readonly netnsCheckIntervalMs?: number;
  /**
   * `ISTIO_META_DNS_CAPTURE=true`: ztunnel's DNS proxy on 127.0.0.1:15053 (and [::1]:15053 in a
   * pod with IPv6), UDP and TCP, inside each pod, where istio-cni's DNS capture sends the pod's
   * port 53. Mesh service names are answered from the config; everything else goes to `upstreams`
   * (`ip` or `ip:port`; default: the nameservers of this process's /etc/resolv.conf).
   */
  readonly dns?: { readonly upstreams?: readonly string[]; readonly port?: number };
}

/** One in-pod workload as ztunnel's admin `/config_dump` shows it under `workloadState`. */
export interface InpodWorkloadState {
  /** ztunnel's ProxyState.state: Pending while its proxy starts, Up once it serves. */
  readonly state: "Pending" | "Up";
  /** ztunnel's WorkloadInfo (camelCase as its serde). */
  readonly info: {
    readonly name: string;
    readonly namespace: string;
    readonly serviceAccount: string;
  };
  // the rest is ours: ztunnel logs its NetnsID and dumps each connection instead
  readonly netnsId: { readonly inode: number; readonly dev: number };
  readonly identity?: string;
  /** The ports listened on inside the pod, each address listed. */
  readonly listeners: string[];
  /** Open connections of the pod (accepted, dialled, pooled HBONE). */
  readonly connectionCount: number;
}

/** ztunnel's in-pod settings from the environment; undefined unless `PROXY_MODE=shared`. */
export function inpodSettingsFromEnv(env: NodeJS.ProcessEnv): InpodSettings | undefined {
  const mode = env.PROXY_MODE;
  if (mode === undefined || mode === "" || mode === "dedicated") return undefined;
  if (mode !== "shared")
    throw new ExampleError(
      "ERR_EXAMPLES_CONFIG",
      `PROXY_MODE=${mode}: expected shared (in-pod, pods from istio-cni) or dedicated`,
    );
  const markText = env.PACKET_MARK;
  let mark: number | undefined;
  if (markText !== undefined && markText !== "") {
    mark = /^(0x[0-9a-f]+|\d+)$/i.test(markText.trim()) ? Number(markText.trim()) : Number.NaN;
    if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff)
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        `PACKET_MARK=${markText}: expected a 32-bit mark such as 1337 or 0x539`,
      );
  }
  const originalSource = envFlag(env, "ENABLE_ORIG_SRC", true);
  // as ztunnel: the DNS proxy runs only when DNS capture is on
  const dns = envFlag(env, "ISTIO_META_DNS_CAPTURE", false);
  return {
    ...(env.INPOD_UDS ? { uds: env.INPOD_UDS } : {}),
    ...(mark !== undefined ? { mark } : {}),
    ...(originalSource ? {} : { originalSource: false }),
    ...(dns ? { dns: {} } : {}),
  };
}

/** Where the in-pod listeners hand their sockets: the ztunnel's request handling. */
export interface InpodHandlers {
  /** A connection captured on 15001, to `ip:port` (its original destination). */
  outbound(socket: net.Socket, ip: string, port: number, via: OutboundVia): void;
  /** A connection accepted on 15008. */
  hbone(socket: net.Socket): void;
  /** A connection captured on 15006, to `destination` (its original destination). */
  plaintext(socket: net.Socket, destination: SocketAddress, dial: PassthroughAppDialer): void;
}

/**
 * Whether the namespace has an IPv6 address other than loopback and link-local
 * (/proc/thread-self/net/if_inet6 read inside it: address, ifindex, prefix, scope, flags, name).
 */
function hasIpv6(netns: Netns): boolean {
  let text: string;
  try {
    text = runInNetns(netns.fd, () => readFileSync("/proc/thread-self/net/if_inet6", "latin1"));
  } catch {
    return false; // IPv6 disabled in the kernel: the file does not exist
  }
  // scope 00 is global (ULA included); 10 host, 20 link
  return text.split("\n").some((line) => line.trim().split(/\s+/)[3] === "00");
}

/** One pod this ztunnel proxies: its listeners, its pool and every socket it has open. */
class PodProxy {
  readonly workload: InpodWorkload;
  readonly identity: string;
  readonly listeners: net.Server[] = [];
  /** The DNS proxy's UDP sockets (15053), when DNS capture is on. */
  readonly udp: dgram.Socket[] = [];
  /** `host:port` of each listener (IPv6 in brackets). */
  readonly bound: string[] = [];
  readonly sockets = new Set<Duplex>();
  readonly pool: HbonePool;
  closed = false;

  constructor(workload: InpodWorkload, identity: string, pool: HbonePool) {
    this.workload = workload;
    this.identity = identity;
    this.pool = pool;
  }

  get netns(): Netns {
    return this.workload.netns;
  }

  track<T extends Duplex>(s: T): T {
    if (this.closed) {
      s.destroy();
      return s;
    }
    this.sockets.add(s);
    s.once("close", () => this.sockets.delete(s));
    return s;
  }

  /** Stops accepting, then closes every connection of the pod (the pod is gone or replaced). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = this.listeners.map(
      (l) => new Promise<void>((resolve) => l.close(() => resolve())),
    );
    for (const u of this.udp) u.close();
    this.pool.destroy();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await Promise.all(stopped);
  }
}

/**
 * The in-pod workload manager: a ZdsClient whose handler runs one {@link PodProxy} per pod.
 * `ready` is true once the node agent's first snapshot has been applied.
 */
export class InpodManager implements ZdsWorkloadHandler {
  readonly zds: ZdsClient;
  readonly #ctx: ZtunnelContext;
  readonly #on: InpodHandlers;
  readonly #mark: number;
  readonly #origSrc: boolean;
  readonly #ports: { outbound: number; inboundPlaintext: number; hbone: number };
  readonly #dns: { proxy: DnsProxy; port: number } | undefined;
  /** ztunnel's istio_dns_* metrics, once registered on the ztunnel's scrape. */
  #dnsObserver: DnsObserver | undefined;
  readonly #pods = new Map<InpodWorkload, PodProxy>();
  /** Pods whose proxy is starting (addWorkload in progress). */
  readonly #starting = new Set<InpodWorkload>();
  #snapshot = false;
  #closed = false;
  #started = 0;
  #stopped = 0;

  constructor(ctx: ZtunnelContext, settings: InpodSettings, handlers: InpodHandlers) {
    this.#ctx = ctx;
    this.#on = handlers;
    this.#mark = settings.mark ?? DEFAULT_INPOD_MARK;
    this.#origSrc = settings.originalSource ?? true;
    this.#ports = { ...INPOD_PORTS, hbone: ctx.ports.hbone, ...settings.ports };
    if (settings.dns) {
      const upstreams = settings.dns.upstreams ?? resolvConfNameservers(readResolvConf());
      this.#dns = {
        proxy: new DnsProxy({
          state: () => ctx.state,
          forward: udpForwarder([...upstreams]),
          observer: {
            request: (l) => this.#dnsObserver?.request(l),
            forwarded: (l, seconds, ok) => this.#dnsObserver?.forwarded(l, seconds, ok),
          },
        }),
        port: settings.dns.port ?? DNS_PORT,
      };
    }
    this.zds = new ZdsClient({
      path: settings.uds ?? DEFAULT_INPOD_UDS,
      handler: this,
      ...(settings.backoff ? { backoff: settings.backoff } : {}),
      ...(settings.netnsCheckIntervalMs !== undefined
        ? { netnsCheckIntervalMs: settings.netnsCheckIntervalMs }
        : {}),
      on: {
        retried: (w, error) =>
          error === ""
            ? ctx.log.info(
                { uid: w.uid, workload: `${w.info.namespace}/${w.info.name}` },
                "in-pod: pending pod started on retry",
              )
            : ctx.log.warn(
                { uid: w.uid, workload: `${w.info.namespace}/${w.info.name}`, error },
                "in-pod: pending pod still not started",
              ),
        netnsGone: (w, reason) =>
          ctx.log.warn(
            { uid: w.uid, workload: `${w.info.namespace}/${w.info.name}`, reason },
            "in-pod: pod removed, its network is gone",
          ),
        connected: () =>
          ctx.log.info({ uds: this.zds.path }, "in-pod: connected to the node agent"),
        disconnected: (e) =>
          ctx.log.warn({ uds: this.zds.path, error: e.message }, "in-pod: node agent connection"),
        ack: (kind, uid, error) => {
          if (error !== "")
            ctx.log.warn({ kind, uid, error }, "in-pod: refused a request of the node agent");
        },
      },
    });
  }

  /** Connects to the node agent (and keeps reconnecting). */
  start(): void {
    this.zds.start();
    void this.zds.ready().then(
      () => {
        this.#snapshot = true;
      },
      () => {},
    );
  }

  /**
   * True once the node agent's first snapshot is applied, while not closed and, as ztunnel's
   * readiness, while no pod is pending (its proxy failed to start and is being retried).
   */
  get ready(): boolean {
    return this.#snapshot && !this.#closed && this.zds.pending.size === 0;
  }

  /** Pods served now, by uid. */
  get pods(): ReadonlyMap<
    string,
    { identity: string; listeners: number; addresses: string[]; connections: number }
  > {
    const out = new Map<
      string,
      { identity: string; listeners: number; addresses: string[]; connections: number }
    >();
    for (const p of this.#pods.values())
      out.set(p.workload.uid, {
        identity: p.identity,
        listeners: p.listeners.length,
        addresses: [...p.bound],
        connections: p.sockets.size,
      });
    return out;
  }

  /**
   * ztunnel's in-pod metrics (its `workload_manager` registry; prom-client adds no `_total`, so the
   * counters are named with it): pods proxied now, pods whose proxy is starting, and proxies
   * started and stopped since this ztunnel began. Read at every scrape.
   */
  registerMetrics(registry: Registry): void {
    if (this.#dns) this.#dnsObserver = dnsMetrics(registry);
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    };
    gauge(
      "workload_manager_inpod_active_proxy_count",
      "The total number current workloads with active inpod proxies",
      () => this.#pods.size,
    );
    gauge(
      "workload_manager_inpod_pending_proxy_count",
      "The total number current workloads with pending inpod proxies",
      () => this.zds.pending.size,
    );
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    counter(
      "workload_manager_inpod_proxies_started_total",
      "In-pod proxies started (pods added over ZDS whose listeners came up)",
      () => this.#started,
    );
    counter(
      "workload_manager_inpod_proxies_stopped_total",
      "In-pod proxies stopped (pods deleted, reconciled away, or whose network is gone)",
      () => this.#stopped,
    );
  }

  /** ztunnel's `workloadState` of `/config_dump`: every pod by uid, starting ones as Pending. */
  workloadState(): Record<string, InpodWorkloadState> {
    const out: Record<string, InpodWorkloadState> = {};
    const entry = (
      w: InpodWorkload,
      state: "Pending" | "Up",
      p?: PodProxy,
    ): InpodWorkloadState => ({
      state,
      info: { ...w.info },
      netnsId: { inode: w.netns.id.ino, dev: w.netns.id.dev },
      ...(p ? { identity: p.identity } : {}),
      listeners: p ? [...p.bound] : [],
      connectionCount: p?.sockets.size ?? 0,
    });
    for (const w of this.zds.pending.values()) out[w.uid] = entry(w, "Pending");
    for (const w of this.#starting) out[w.uid] = entry(w, "Pending");
    for (const p of this.#pods.values()) out[p.workload.uid] = entry(p.workload, "Up", p);
    return out;
  }

  /** The ZDS side for `/config_dump`: where, whether connected, whether the snapshot came. */
  zdsState(): { uds: string; connected: boolean; snapshotReceived: boolean; ready: boolean } {
    return {
      uds: this.zds.path,
      connected: this.zds.connected,
      snapshotReceived: this.zds.snapshotReceived,
      ready: this.ready,
    };
  }

  /** The config's workload for a pod the node agent named (none while xDS has not sent it). */
  #workloadOf(w: InpodWorkload): Workload | undefined {
    const found = this.#ctx.state.workloadByName(w.info.namespace, w.info.name);
    return found?.node === this.#ctx.node ? found : undefined;
  }

  /** ZdsWorkloadHandler: start proxying a pod. A throw refuses it (the node agent sees why). */
  async addWorkload(w: InpodWorkload): Promise<void> {
    if (this.#closed) throw new ExampleError("ERR_EXAMPLES_CLOSED", "this ztunnel is closing");
    this.#starting.add(w);
    try {
      await this.#start(w);
    } finally {
      this.#starting.delete(w);
    }
  }

  async #start(w: InpodWorkload): Promise<void> {
    const ctx = this.#ctx;
    const known = this.#workloadOf(w);
    const identity = workloadIdentity({
      trustDomain: known?.trustDomain ?? "cluster.local",
      namespace: w.info.namespace,
      serviceAccount: w.info.serviceAccount,
    });
    // Fetched, not awaited (ztunnel's in-pod add does not wait on its CA either): ZDS requests are
    // handled one at a time, so a CA that never answers would stall every later Add/DelWorkload.
    // The pod's connections wait for it instead (#withCertificate, bounded).
    ctx.certs.ensure(identity).catch((e: unknown) => {
      ctx.log.warn({ identity, error: (e as Error).message }, "in-pod: certificate not issued");
    });
    const mark = this.#mark;
    const netns = w.netns;
    const timeoutMs = ctx.opts.connectTimeoutMs ?? 10_000;
    let pod: PodProxy | undefined;
    const pool = new HbonePool({
      ...(ctx.opts.connectTimeoutMs !== undefined
        ? { handshakeTimeoutMs: ctx.opts.connectTimeoutMs }
        : {}),
      // outbound HBONE leaves from inside the source pod, marked so its rules let it pass
      connect: async (t) =>
        (pod as PodProxy).track(
          await connectInNetns(netns, {
            host: t.host,
            port: t.port,
            mark,
            timeoutMs,
            noDelay: true,
          }),
        ),
    });
    pod = new PodProxy(w, identity, pool);
    const p = pod;
    // IPv4 on 0.0.0.0; a pod with an IPv6 address also gets an IPv6-only listener on `::` per
    // port (not one dual-stack socket: IPv4 peers would then show as ::ffff: addresses)
    const hosts = hasIpv6(netns) ? ["0.0.0.0", "::"] : ["0.0.0.0"];
    try {
      const listen = async (port: number, onSocket: (s: net.Socket) => void): Promise<void> => {
        for (const host of hosts) await listenOne(host, port, onSocket);
      };
      const listenOne = (
        host: string,
        port: number,
        onSocket: (s: net.Socket) => void,
      ): Promise<net.Server> =>
        listenInNetns(netns, {
          host,
          port,
          v6Only: true,
          mark,
          // half-close is forwarded, as on every other ztunnel listener
          server: net.createServer({ noDelay: true, allowHalfOpen: true }),
        }).then((server) => {
          server.on("connection", (s: net.Socket) => {
            s.on("error", () => {});
            p.track(s);
            if (!p.closed) onSocket(s);
          });
          // a failed accept (out of fds) must not kill the process
          server.on("error", (e) =>
            ctx.log.warn({ uid: w.uid, error: e.message }, "in-pod: accept failed"),
          );
          p.listeners.push(server);
          p.bound.push(host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
          return server;
        });
      await listen(this.#ports.outbound, (s) => this.#outbound(p, s));
      await listen(this.#ports.inboundPlaintext, (s) => this.#plaintext(p, s));
      await listen(this.#ports.hbone, (s) => this.#hbone(p, s));
      if (this.#dns) await this.#listenDns(p, hosts.length > 1);
    } catch (e) {
      await p.close();
      throw new ExampleError(
        "ERR_EXAMPLES_LISTEN",
        `in-pod listeners for ${w.info.namespace}/${w.info.name}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    this.#pods.set(w, p);
    this.#started++;
    ctx.log.info(
      { uid: w.uid, workload: `${w.info.namespace}/${w.info.name}`, identity },
      "in-pod: proxying pod",
    );
  }

  /** ZdsWorkloadHandler: stop proxying; its listeners and connections close. */
  async removeWorkload(w: InpodWorkload): Promise<void> {
    const p = this.#pods.get(w);
    if (!p) return;
    this.#pods.delete(w);
    this.#stopped++;
    await p.close();
    this.#ctx.log.info(
      { uid: w.uid, workload: `${w.info.namespace}/${w.info.name}` },
      "in-pod: pod removed",
    );
  }

  /**
   * ztunnel's DNS proxy inside the pod: UDP and TCP on 127.0.0.1 (and ::1), where istio-cni's
   * REDIRECT sends the pod's port 53 (locally generated traffic is redirected to loopback). All
   * that arrives there comes from this pod, so the client is the pod itself.
   */
  async #listenDns(p: PodProxy, ipv6: boolean): Promise<void> {
    const dns = this.#dns;
    if (!dns) return;
    // Looked up per query, as ztunnel does: the pod usually reaches us (ZDS, during CNI ADD)
    // before xDS knows its workload, and its network decides which VIPs it may be given.
    const clientOf = (): DnsClient => {
      const known = this.#workloadOf(p.workload);
      return {
        namespace: p.workload.info.namespace,
        ...(known?.network ? { network: known.network } : {}),
        ...(known?.canonicalName ? { canonicalService: known.canonicalName } : {}),
        ...(known?.canonicalRevision ? { canonicalRevision: known.canonicalRevision } : {}),
      };
    };
    for (const host of ipv6 ? ["127.0.0.1", "::1"] : ["127.0.0.1"]) {
      const udp = await bindUdpInNetns(p.netns, {
        host,
        port: dns.port,
        mark: this.#mark,
        v6Only: true,
      });
      p.udp.push(udp);
      // a receive error (ENOBUFS…) must not take the ztunnel down with an unhandled 'error'
      udp.on("error", (e) =>
        this.#ctx.log.warn({ uid: p.workload.uid, error: e.message }, "in-pod: DNS socket error"),
      );
      serveDnsUdp(udp, dns.proxy, clientOf);
      const tcp = await listenInNetns(p.netns, {
        host,
        port: dns.port,
        v6Only: true,
        mark: this.#mark,
        // a resolver may send its query and FIN at once: the answer must still go out
        server: net.createServer({ allowHalfOpen: true }),
      });
      tcp.on("connection", (s: net.Socket) => {
        s.on("error", () => {});
        p.track(s);
      });
      tcp.on("error", () => {});
      serveDnsTcp(tcp, dns.proxy, clientOf);
      p.listeners.push(tcp);
      const at = host.includes(":") ? `[${host}]:${dns.port}` : `${host}:${dns.port}`;
      p.bound.push(at, `${at}/udp`);
    }
  }

  /** A TCP connection from inside the pod's netns, marked; as `sourceIp` when given (orig src). */
  #dialIn(p: PodProxy, host: string, port: number, timeoutMs: number, sourceIp?: string) {
    const spoof = sourceIp !== undefined && this.#origSrc && sourceIp !== host;
    return connectInNetns(p.netns, {
      host,
      port,
      mark: this.#mark,
      timeoutMs,
      allowHalfOpen: true,
      noDelay: true,
      ...(spoof ? { localAddress: sourceIp, transparent: true } : {}),
    }).then((s) => p.track(s));
  }

  #outbound(p: PodProxy, s: net.Socket): void {
    let dst: SocketAddress;
    try {
      dst = originalDestination(s);
    } catch (e) {
      this.#ctx.log.warn({ uid: p.workload.uid, error: (e as Error).message }, "in-pod outbound");
      s.destroy();
      return;
    }
    const source = this.#workloadOf(p.workload);
    if (!source) {
      this.#ctx.log.warn(
        { workload: `${p.workload.info.namespace}/${p.workload.info.name}` },
        "in-pod outbound: the pod is not in the config yet; connection closed",
      );
      s.destroy();
      return;
    }
    const via: OutboundVia = {
      source,
      pool: p.pool,
      tcp: (host, port, o) => this.#dialIn(p, host, port, o.timeoutMs),
    };
    // without the certificate, outbound refuses HBONE routes ("no certificate for …") and still
    // serves passthrough ones: handed over either way
    this.#withCertificate(p, s, workloadIdentity(source), () =>
      this.#on.outbound(s, dst.address, dst.port, via),
    );
  }

  /** 15008: the TLS server needs the pod's certificate; without one the connection is closed. */
  #hbone(p: PodProxy, s: net.Socket): void {
    const known = this.#workloadOf(p.workload);
    const identity = known ? workloadIdentity(known) : p.identity;
    this.#withCertificate(
      p,
      s,
      identity,
      () => this.#on.hbone(s),
      () => s.destroy(),
    );
  }

  /**
   * Runs `go` once `identity` has a certificate: at once when it has one (every connection but
   * the first few of a pod), else after waiting for the CA at most the connect timeout (10 s);
   * then `go`, or `none` when given, with a warning naming the identity. Nothing runs for a
   * connection closed meanwhile.
   */
  #withCertificate(
    p: PodProxy,
    s: net.Socket,
    identity: string,
    go: () => void,
    none: () => void = go,
  ): void {
    const ctx = this.#ctx;
    if (ctx.certs.current(identity)) {
      go();
      return;
    }
    const ms = ctx.opts.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    void Promise.race([
      ctx.certs.ensure(identity).then(
        () => true,
        () => false,
      ),
      late,
    ]).then((issued) => {
      clearTimeout(timer);
      if (p.closed || s.destroyed) return;
      if (issued) {
        go();
        return;
      }
      ctx.log.warn(
        { uid: p.workload.uid, identity, timeoutMs: ms },
        `in-pod: no certificate for ${identity} within ${ms} ms`,
      );
      none();
    });
  }

  #plaintext(p: PodProxy, s: net.Socket): void {
    let dst: SocketAddress;
    try {
      dst = originalDestination(s);
    } catch (e) {
      this.#ctx.log.warn({ uid: p.workload.uid, error: (e as Error).message }, "in-pod inbound");
      s.destroy();
      return;
    }
    this.#on.plaintext(s, dst, (t) => this.#dialIn(p, t.host, t.port, t.timeoutMs, t.sourceIp));
  }

  /** Inbound's app dial: inside the namespace of the pod that is `local`. */
  readonly dialApp: InboundAppDialer = async (local, t) => {
    // per stream: a walk over the pods, no array copied
    for (const p of this.#pods.values()) {
      const { namespace, name } = p.workload.info;
      if (!p.closed && namespace === local.namespace && name === local.name)
        return await this.#dialIn(
          p,
          t.host,
          t.port,
          this.#ctx.opts.connectTimeoutMs ?? 10_000,
          t.sourceIp,
        );
    }
    throw new ExampleError(
      "ERR_EXAMPLES_ROUTE",
      `${local.namespace}/${local.name} is not a pod this ztunnel proxies in-pod`,
    );
  };

  /** Stops the ZDS client and closes every pod's listeners and connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.zds.close(); // calls removeWorkload for each pod
    await Promise.all([...this.#pods.values()].map((p) => p.close()));
    this.#pods.clear();
  }
}
