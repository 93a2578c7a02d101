// A reference waypoint in Node: terminates HBONE on its IP:15008, maps the CONNECT :authority to a
// service VIP:port (or a workload that uses it), applies L7 AuthorizationPolicies attached with
// targetRefs (enforcement point "waypoint"), routes HTTP/1.1 with Gateway API HTTPRoutes (matches,
// weighted backendRefs, header modifiers, timeouts), records L7 metrics with reporter="waypoint",
// and re-originates HBONE to the chosen pod with :authority = podIP:targetPort. Denials are 403
// with the deciding policy in the log.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import {
  type CompiledPolicies,
  compilePolicies,
  type Decision,
  type DecisionInput,
} from "@ambientkit/authz";
import {
  envoyTcpLabels,
  httpLabels,
  IstioMetrics,
  type TrafficContext,
} from "@ambientkit/telemetry";
import { registerPrometheus } from "@ambientkit/telemetry/prometheus";
import { type Service, type Workload, workloadIdentity } from "@ambientkit/xds-types";
import { Registry } from "prom-client";
import {
  type HboneDecision,
  HboneError,
  HbonePool,
  HboneServer,
  type HboneServerRequest,
  type HboneStream,
} from "../hbone.js";
import { MemoryLog } from "../mesh/access-log.js";
import type { WorkloadCertificates } from "../mesh/certs.js";
import type { MeshConfig } from "../mesh/config.js";
import { connectionEndRecorder } from "../mesh/connection-events.js";
import { ExampleError } from "../mesh/errors.js";
import {
  type HeapShrinker,
  meteredHeapShrinker,
  type ShrinkHeapOptions,
} from "../mesh/heap-shrinker.js";
import type { HttpRoute } from "../mesh/httproute-types.js";
import { serviceInfo, workloadInfo } from "../mesh/labels.js";
import { type Listener, listen, onceClosed, pipeBoth } from "../mesh/net.js";
import { MeshState } from "../mesh/state.js";
import {
  type AnyRequest,
  type AnyResponse,
  forward,
  type HeaderModifier,
  HOP_BY_HOP,
  reply,
} from "./forward.js";
import { applyHeaderModifier, parseGatewayDuration, pickBackend, selectRule } from "./httproute.js";
import { extractToken, type JwtRule, verifyJwt } from "./jwt.js";

export interface WaypointOptions {
  /** The waypoint's own workload in the config (`namespace`, `name`). */
  namespace: string;
  name: string;
  config: MeshConfig;
  certificates: WorkloadCertificates;
  /** HBONE port (default 15008), also dialled on destination pods. */
  hbonePort?: number;
  /** Prometheus port on the waypoint IP (default: none). */
  metricsPort?: number | null;
  /** Route split and load-balancing randomness (default Math.random). */
  random?: () => number;
  /** Each log line (JSON) goes here. */
  log?: (line: string) => void;
  /** Idle timeout of a tunnel (no first bytes, or no bytes either way on L4); default 1 h. */
  idleTimeoutMs?: number;
  /** Per-tunnel, per-direction buffer bound (HTTP/2 stream window); default 1 MiB. */
  bufferLimitBytes?: number;
  /**
   * Release free heap to the OS as Envoy's `envoy.overload_actions.shrink_heap` (every 10 s once
   * glibc holds ≥ 100 MiB free; first a full GC in the first idle interval after activity if V8's
   * off-heap memory is ≥ 32 MiB; see mesh/heap-shrinker.ts); `false` turns it off. Process-wide.
   */
  shrinkHeap?: ShrinkHeapOptions | false;
}

/** What the waypoint resolved the CONNECT authority to. */
interface TunnelTarget {
  service: Service | undefined;
  workload: Workload | undefined;
  ip: string;
  port: number;
  req: HboneServerRequest;
  /** The downstream tunnel, once accepted. */
  tunnel?: HboneStream;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Envoy's HCM `idle_timeout` and tcp_proxy `idle_timeout` default: 1 h. */
export const WAYPOINT_IDLE_TIMEOUT_MS = 3_600_000;

/**
 * What one tunnel may make the waypoint buffer per direction: Envoy's
 * `per_connection_buffer_limit_bytes` default (1 MiB), applied as the HTTP/2 stream windows of
 * both HBONE sides; backpressure does the rest.
 */
export const WAYPOINT_BUFFER_LIMIT_BYTES: number = 1024 * 1024;

/** What the first bytes of a tunnel look like; "more" = too few bytes to tell yet. */
export function sniff(first: Buffer): "h2" | "http1" | "tcp" | "more" {
  const n = Math.min(first.length, H2_PREFACE.length);
  if (n > 0 && first.subarray(0, n).equals(H2_PREFACE.subarray(0, n)))
    return n === H2_PREFACE.length ? "h2" : "more";
  const head = first.subarray(0, 16).toString("latin1");
  if (/^[A-Z]{3,10} \S/.test(head)) return "http1";
  // a method that is still arriving (a slow client) is not TCP yet
  if (/^[A-Z]{1,10} ?$/.test(head)) return "more";
  return "tcp";
}

interface Destination {
  workload: Workload;
  ip: string;
  port: number;
}

interface RoutedRequest {
  backend: Service | undefined;
  dest: Destination | undefined;
  headers: Record<string, string | string[] | undefined>;
  responseModifiers: HeaderModifier[];
  timeoutMs: number | undefined;
  key: string | undefined;
}

export class Waypoint {
  readonly namespace: string;
  readonly name: string;
  readonly metrics: IstioMetrics;
  readonly registry: Registry;
  readonly log: MemoryLog;
  readonly ip: string;
  readonly #opts: WaypointOptions;
  readonly #server: HboneServer;
  readonly #http: http.Server;
  readonly #pool: HbonePool;
  readonly #idleTimeoutMs: number;
  readonly #targets = new WeakMap<Duplex, TunnelTarget>();
  readonly #tunnels = new Set<HboneStream>();
  readonly #listeners: Listener[] = [];
  readonly #random: () => number;
  readonly #shrinker: HeapShrinker | undefined;
  #config: MeshConfig;
  #state: MeshState;
  #policies: CompiledPolicies;
  #self: Workload;
  #closed = false;
  /** Where metrics are served, when enabled. */
  metricsAddress: string | undefined;

  private constructor(opts: WaypointOptions) {
    this.#opts = opts;
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.#random = opts.random ?? Math.random;
    this.#config = opts.config;
    this.#state = new MeshState(opts.config.local);
    this.#policies = this.#compile(opts.config);
    const self = this.#state.workloadByName(opts.namespace, opts.name);
    const ip = self?.workloadIps[0];
    if (!self || ip === undefined) {
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        `waypoint ${opts.namespace}/${opts.name} is not a workload in the LOCAL_XDS config; add it under workloads`,
      );
    }
    this.#self = self;
    this.ip = ip;
    this.log = new MemoryLog({ scope: "waypoint", ...(opts.log ? { write: opts.log } : {}) });
    this.metrics = new IstioMetrics({ build: { component: "proxy", tag: "ambientkit" } });
    this.registry = new Registry();
    registerPrometheus(this.metrics, { registry: this.registry });
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? WAYPOINT_IDLE_TIMEOUT_MS;
    const window = opts.bufferLimitBytes ?? WAYPOINT_BUFFER_LIMIT_BYTES;
    const onConnectionEnd = connectionEndRecorder(this.log, this.registry);
    this.#server = new HboneServer({
      credentials: () => opts.certificates.current(workloadIdentity(this.#self)),
      handler: (req) => this.#onConnect(req),
      streamWindowSize: window,
      hooks: { onConnectionEnd },
    });
    this.#pool = new HbonePool({ streamWindowSize: window, hooks: { onConnectionEnd } });
    this.#http = http.createServer((req, res) => {
      void this.#onRequest(req, res);
    });
    if (opts.shrinkHeap !== false) {
      this.#shrinker = meteredHeapShrinker(opts.shrinkHeap, this.registry, (fields, message) =>
        this.log.info(fields, message),
      );
    }
  }

  /** The heap shrinker (undefined when `shrinkHeap: false`). */
  get heapShrinker(): HeapShrinker | undefined {
    return this.#shrinker;
  }

  static async start(opts: WaypointOptions): Promise<Waypoint> {
    const w = new Waypoint(opts);
    try {
      await opts.certificates.ensure(workloadIdentity(w.#self));
      const srv = net.createServer({ noDelay: true }, (s) => w.#server.handle(s));
      w.#listeners.push(
        await listen(srv, w.ip, opts.hbonePort ?? 15008, `waypoint ${w.namespace}/${w.name} HBONE`),
      );
      if (opts.metricsPort !== undefined && opts.metricsPort !== null) {
        const m = http.createServer((req, res) => {
          if (req.url !== "/metrics" && req.url !== "/stats/prometheus") {
            res.writeHead(404).end();
            return;
          }
          w.registry.metrics().then(
            (t) => res.writeHead(200, { "content-type": w.registry.contentType }).end(t),
            (e: unknown) => res.writeHead(500).end(String(e)),
          );
        });
        const l = await listen(
          m,
          w.ip,
          opts.metricsPort,
          `waypoint ${w.namespace}/${w.name} metrics`,
        );
        w.#listeners.push(l);
        w.metricsAddress = `${w.ip}:${l.port}`;
      }
      w.#shrinker?.start();
      return w;
    } catch (e) {
      await w.close();
      throw e;
    }
  }

  #compile(c: MeshConfig): CompiledPolicies {
    return compilePolicies([...c.authorizationPolicies, ...c.peerAuthentications], {
      rootNamespace: c.rootNamespace,
      trustDomain: c.trustDomain,
      trustDomainAliases: [],
    });
  }

  /** Replaces the config (policies and routes apply to new requests). */
  setConfig(config: MeshConfig): void {
    this.#config = config;
    this.#state = new MeshState(config.local);
    this.#policies = this.#compile(config);
    const self = this.#state.workloadByName(this.namespace, this.name);
    if (self) this.#self = self;
  }

  #usesMe(g: Service["waypoint"]): boolean {
    if (!g) return false;
    const t = this.#state.resolveGateway(g, () => 0);
    return t !== undefined && t.workload === this.#self;
  }

  #onConnect(req: HboneServerRequest): HboneDecision {
    if (req.authority.kind !== "ip")
      return { action: "reject", status: 400, reason: "authority must be ip:port" };
    const { host: ip, port } = req.authority;
    const svc = this.#state.serviceByVip(ip);
    let target: Omit<TunnelTarget, "req"> | undefined;
    if (
      svc &&
      svc.ports[port] !== undefined &&
      (this.#usesMe(svc.waypoint) || svc.weightedWaypoints.some((w) => this.#usesMe(w.destination)))
    ) {
      target = { service: svc, workload: undefined, ip, port };
    } else {
      const wl = this.#state.workloadByIp(ip);
      if (wl && this.#usesMe(wl.waypoint)) target = { service: undefined, workload: wl, ip, port };
    }
    if (!target) {
      this.log.warn(
        { authority: req.authorityText, "src.identity": req.peerIdentity },
        "no service or workload uses this waypoint for the authority",
      );
      return { action: "reject", status: 400 };
    }
    const t: TunnelTarget = { ...target, req };
    return {
      action: "accept",
      onTunnel: (tunnel) => {
        if (this.#closed) {
          tunnel.destroy();
          return;
        }
        this.#tunnels.add(tunnel);
        tunnel.once("close", () => this.#tunnels.delete(tunnel));
        t.tunnel = tunnel;
        this.#dispatch(tunnel, t);
      },
    };
  }

  /**
   * Picks the protocol of a tunnel as Istio's waypoint does: from the Service port's declared
   * protocol (`appProtocol`, port name); TCP goes to L4 at once; HTTP (or an undeclared port, or a
   * workload address) waits for the client's first bytes — with no short deadline, so a slow HTTP
   * client is never mistaken for TCP (Istio's `protocolDetectionTimeout` is off by default) — then
   * the HTTP/2 preface selects HTTP/2, a request line HTTP/1.1, anything else on an undeclared port
   * L4. The wait is bounded by the idle timeout.
   */
  #dispatch(tunnel: HboneStream, t: TunnelTarget): void {
    const declared = t.service
      ? this.#config.portProtocols?.get(`${t.service.namespace}/${t.service.name}`)?.get(t.port)
      : undefined;
    if (declared === "tcp") {
      void this.#onTcp(tunnel, t);
      return;
    }
    const idle = setTimeout(() => tunnel.destroy(), this.#idleTimeoutMs);
    idle.unref();
    let first: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
      const seen = sniff(first);
      if (seen === "more") return;
      clearTimeout(idle);
      tunnel.removeListener("data", onData);
      tunnel.removeListener("end", onEnd);
      tunnel.pause();
      tunnel.unshift(first);
      decide(declared === "http" && seen === "tcp" ? "http1" : seen);
    };
    // FIN before the protocol is clear: an undeclared port carries what arrived as TCP
    const onEnd = (): void => {
      clearTimeout(idle);
      tunnel.removeListener("data", onData);
      if (declared === "http") tunnel.destroy();
      else void this.#onTcp(tunnel, t, first);
    };
    const decide = (kind: "h2" | "http1" | "tcp"): void => {
      if (kind === "h2") {
        const h2 = http2.createServer();
        h2.on("request", (req, res) => {
          void this.#onRequest(req, res, t);
        });
        h2.on("sessionError", () => tunnel.destroy());
        h2.emit("connection", tunnel);
      } else if (kind === "http1") {
        this.#targets.set(tunnel, t);
        this.#http.emit("connection", tunnel);
      } else {
        void this.#onTcp(tunnel, t);
        return;
      }
      tunnel.resume();
    };
    tunnel.on("data", onData);
    tunnel.once("end", onEnd);
    onceClosed(tunnel, () => clearTimeout(idle));
  }

  /**
   * What the waypoint enforcement point decides on: the waypoint, the target service, and the
   * connection as the waypoint sees it (the original client from `forwarded`, else the peer).
   */
  #decisionInput(
    t: TunnelTarget,
    protocol: "tcp" | "http",
    request: NonNullable<DecisionInput["request"]> | null,
  ): DecisionInput {
    const forwardedFor = t.req.forwarded.for?.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    return {
      enforcement: "waypoint",
      waypoint: {
        name: this.name,
        namespace: this.namespace,
        serviceAccount: this.#self.serviceAccount,
        ip: this.ip,
      },
      ...(t.service
        ? {
            service: {
              kind: "Service" as const,
              name: t.service.name,
              namespace: t.service.namespace,
              vip: t.ip,
              port: t.port,
              protocol,
            },
          }
        : {}),
      workload: {
        namespace: t.service?.namespace ?? t.workload?.namespace ?? this.namespace,
        labels: {},
      },
      connection: {
        sourcePrincipal: t.req.peerIdentity,
        sourceIp: forwardedFor && net.isIP(forwardedFor) ? forwardedFor : t.req.remoteAddress,
        destinationIp: t.ip,
        destinationPort: t.port,
      },
      request,
    };
  }

  /** L4 at the waypoint: TCP authorization (no request attributes), then a tunnel to a pod. */
  async #onTcp(tunnel: HboneStream, t: TunnelTarget, head?: Buffer): Promise<void> {
    const source = this.#state.workloadByIp(t.req.remoteAddress);
    const decision = this.#policies.decide(this.#decisionInput(t, "tcp", null));
    const ctx: TrafficContext = {
      reporter: "waypoint",
      ...(source ? { source: workloadInfo(source) } : {}),
      ...(t.service ? { destinationService: serviceInfo(t.service) } : {}),
      sourcePrincipal: t.req.peerIdentity,
      securityPolicy: "mutual_tls",
    };
    const addrs = {
      src: `${t.req.remoteAddress}:${t.req.remotePort}`,
      dst: `${this.ip}:${this.#opts.hbonePort ?? 15008}`,
      hboneAddr: t.req.authorityText,
    };
    if (decision.decision === "deny") {
      this.log.warn(
        {
          "src.identity": t.req.peerIdentity,
          authority: t.req.authorityText,
          protocol: "TCP",
          policy: decision.decidedBy,
          rule: decision.rule,
        },
        `connection denied by ${decision.decidedBy}`,
      );
      this.metrics
        .openConnection(envoyTcpLabels(ctx), addrs)
        .close({ error: `denied by ${decision.decidedBy}` });
      tunnel.destroy();
      return;
    }
    const dest = t.service
      ? this.#state.pickEndpoint(t.service, t.port, this.#random)
      : t.workload
        ? { workload: t.workload, ip: t.ip, port: t.port }
        : undefined;
    const creds = this.#opts.certificates.current(workloadIdentity(this.#self));
    if (!dest || !creds) {
      tunnel.destroy();
      return;
    }
    let upstream: HboneStream;
    // the client may leave while we dial: abandon the dial, never pipe to a closed tunnel
    const gone = new AbortController();
    const onGone = (): void => gone.abort();
    onceClosed(tunnel, onGone);
    try {
      upstream = await this.#pool.open({
        address: { host: dest.ip, port: this.#opts.hbonePort ?? 15008 },
        credentials: creds,
        expectedIdentities: this.#state.expectedIdentities(dest.workload, t.service),
        sourceIp: this.ip,
        authority: `${dest.ip}:${dest.port}`,
        forwarded: {
          for: t.req.forwarded.for ?? addrs.src,
          ...(t.service ? { host: t.service.hostname } : {}),
        },
        signal: gone.signal,
      });
    } catch (e) {
      tunnel.removeListener("close", onGone);
      this.log.warn(
        { authority: `${dest.ip}:${dest.port}`, error: (e as Error).message },
        "upstream connect failed",
      );
      tunnel.destroy();
      return;
    }
    tunnel.removeListener("close", onGone);
    if (tunnel.destroyed || this.#closed) {
      upstream.destroy();
      return;
    }
    if (head && head.length > 0) upstream.write(head);
    const h = this.metrics.openConnection(
      envoyTcpLabels({
        ...ctx,
        destination: workloadInfo(dest.workload),
        destinationPrincipal: workloadIdentity(dest.workload),
      }),
      addrs,
    );
    pipeBoth(
      tunnel,
      upstream,
      () => {
        h.received(tunnel.bytesReceived);
        h.sent(tunnel.bytesSent);
        h.close();
      },
      { idleTimeoutMs: this.#idleTimeoutMs },
    );
    tunnel.resume();
  }

  #jwtRulesFor(svc: Service | undefined): JwtRule[] {
    return this.#config.requestAuthentications
      .filter((ra) =>
        ra.targetRefs.some((r) =>
          r.kind === "Service"
            ? svc !== undefined && ra.namespace === svc.namespace && r.name === svc.name
            : r.kind === "Gateway" && ra.namespace === this.namespace && r.name === this.name,
        ),
      )
      .flatMap((ra) => ra.jwtRules);
  }

  #routesFor(svc: Service): HttpRoute[] {
    return this.#config.httpRoutes.filter((r) =>
      (r.spec.parentRefs ?? []).some(
        (p) =>
          (p.kind ?? "Gateway") === "Service" &&
          (p.group ?? "") === "" &&
          p.name === svc.name &&
          (p.namespace ?? r.metadata?.namespace ?? "default") === svc.namespace &&
          (p.port === undefined || svc.ports[p.port] !== undefined),
      ),
    );
  }

  /**
   * One HTTP request at the waypoint, in Envoy's filter order: RequestAuthentication (401), L7
   * authorization (403), HTTPRoute, then HBONE to the chosen pod (forward.ts).
   */
  async #onRequest(req: AnyRequest, res: AnyResponse, tunnelTarget?: TunnelTarget): Promise<void> {
    const started = performance.now();
    const t = tunnelTarget ?? this.#targets.get(req.socket as unknown as Duplex);
    if (!t) {
      reply(res, 500, "no tunnel\n");
      return;
    }
    const isH2 = req instanceof http2.Http2ServerRequest;
    const host = (isH2 ? req.headers[":authority"] : req.headers.host) ?? "";
    const plainHeaders: http.IncomingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers))
      if (!k.startsWith(":")) plainHeaders[k] = v as string | string[] | undefined;
    if (isH2) plainHeaders.host = host;
    const source = this.#state.workloadByIp(t.req.remoteAddress);
    const ctx: TrafficContext = {
      reporter: "waypoint",
      ...(source ? { source: workloadInfo(source) } : {}),
      ...(t.service ? { destinationService: serviceInfo(t.service) } : {}),
      sourcePrincipal: t.req.peerIdentity,
      securityPolicy: "mutual_tls",
    };
    const record = (code: number, dest?: Workload, flags?: string): void => {
      const labels = httpLabels(
        dest
          ? {
              ...ctx,
              destination: workloadInfo(dest),
              destinationPrincipal: workloadIdentity(dest),
            }
          : ctx,
      );
      this.metrics.recordRequest(labels, {
        responseCode: code,
        durationMs: performance.now() - started,
        ...(flags ? { responseFlags: flags } : {}),
      });
    };
    const jwt = this.#authenticate(req, plainHeaders, t);
    if (jwt.kind === "invalid") {
      record(401);
      reply(res, 401, `${jwt.reason}\n`);
      return;
    }
    if (!this.#authorize(req, host, plainHeaders, jwt.claims, t)) {
      record(403);
      reply(res, 403, "RBAC: access denied\n");
      return;
    }
    const route = this.#route(req, plainHeaders, t);
    if (!route.dest) {
      record(503, undefined, "UH");
      reply(res, 503, "no healthy upstream\n");
      return;
    }
    const dest = route.dest;
    // The client may leave (RST or FIN mid-upload) while we dial: abandon the dial, and never hand
    // a tunnel to a request that is already gone (nothing would ever close it). A reset of the
    // downstream HBONE stream ends our tunnel's write side at once but its read side only after the
    // unread body, which nobody reads while we dial: so watch its write side too.
    const gone = new AbortController();
    const downstream = t.tunnel;
    const onGone = (): void => gone.abort();
    res.once("close", onGone);
    downstream?.once("finish", onGone);
    downstream?.once("close", onGone);
    const leftDuringDial = (): boolean => {
      res.removeListener("close", onGone);
      downstream?.removeListener("finish", onGone);
      downstream?.removeListener("close", onGone);
      if (!gone.signal.aborted) return false;
      // Envoy: response code 0, DC (downstream connection termination)
      record(0, dest.workload, "DC");
      if (downstream?.rstCode !== undefined) downstream.destroy();
      return true;
    };
    let tunnel: HboneStream;
    try {
      tunnel = await this.#originate(dest, route.backend, t, gone.signal);
    } catch (e) {
      if (leftDuringDial()) return;
      // Envoy: 503 with UF (upstream connection failure), also when the destination ztunnel says 401
      const status =
        e instanceof HboneError && e.status !== undefined
          ? `CONNECT answered ${e.status}`
          : (e as Error).message;
      this.log.warn(
        { authority: `${dest.ip}:${dest.port}`, error: status },
        "upstream connect failed",
      );
      record(503, dest.workload, "UF");
      reply(res, 503, "upstream connect error or disconnect/reset before headers\n");
      return;
    }
    if (leftDuringDial()) {
      tunnel.destroy();
      return;
    }
    forward({
      req,
      res,
      tunnel,
      origin: `${dest.ip}:${dest.port}`,
      host,
      headers: route.headers,
      responseModifiers: route.responseModifiers,
      timeoutMs: route.timeoutMs,
      done: (status, flags) => {
        record(status, dest.workload, flags);
        if (flags !== undefined) return;
        this.log.info(
          {
            "src.identity": t.req.peerIdentity,
            protocol: isH2 ? "HTTP/2" : "HTTP/1.1",
            method: req.method,
            path: req.url,
            route: route.key,
            upstream: `${dest.ip}:${dest.port}`,
            status,
          },
          "request",
        );
      },
    });
  }

  /** RequestAuthentication: an invalid token is 401; a valid one feeds request.auth.* to authz. */
  #authenticate(
    req: AnyRequest,
    headers: http.IncomingHttpHeaders,
    t: TunnelTarget,
  ): { kind: "invalid"; reason: string } | { kind: "ok"; claims: Record<string, unknown> | null } {
    const rules = this.#jwtRulesFor(t.service);
    if (rules.length === 0) return { kind: "ok", claims: null };
    const token = extractToken(headers, req.url ?? "/", rules);
    if (token === undefined) return { kind: "ok", claims: null };
    const v = verifyJwt(token, rules, Math.floor(Date.now() / 1000));
    if (v.kind === "invalid") {
      this.log.warn(
        { "src.identity": t.req.peerIdentity, method: req.method, path: req.url, error: v.reason },
        "request unauthenticated",
      );
      return { kind: "invalid", reason: v.reason };
    }
    return { kind: "ok", claims: v.kind === "valid" ? v.claims : null };
  }

  /** L7 authorization at the waypoint enforcement point; false = 403 (logged). */
  #authorize(
    req: AnyRequest,
    host: string,
    plainHeaders: http.IncomingHttpHeaders,
    jwt: Record<string, unknown> | null,
    t: TunnelTarget,
  ): boolean {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(plainHeaders)) if (v !== undefined) headers[k] = v;
    const decision: Decision = this.#policies.decide(
      this.#decisionInput(t, "http", {
        host,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers,
        jwt,
      }),
    );
    if (decision.decision !== "deny") return true;
    this.log.warn(
      {
        "src.identity": t.req.peerIdentity,
        authority: t.req.authorityText,
        method: req.method,
        path: req.url,
        policy: decision.decidedBy,
        rule: decision.rule,
      },
      `request denied by ${decision.decidedBy}`,
    );
    return false;
  }

  /** HTTPRoute: the backend, its pod, header modifiers and the request timeout. */
  #route(req: AnyRequest, plainHeaders: http.IncomingHttpHeaders, t: TunnelTarget): RoutedRequest {
    const headers: Record<string, string | string[] | undefined> = { ...plainHeaders };
    for (const h of HOP_BY_HOP) delete headers[h];
    const responseModifiers: HeaderModifier[] = [];
    let backend: Service | undefined = t.service;
    let backendPort = t.port;
    let timeoutMs: number | undefined;
    let key: string | undefined;
    if (t.service) {
      const choice = selectRule(this.#routesFor(t.service), {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers: plainHeaders,
      });
      if (choice) {
        key = `${choice.routeKey}#${choice.ruleIndex}`;
        const filters = [...(choice.rule.filters ?? [])];
        timeoutMs = parseGatewayDuration(choice.rule.timeouts?.request);
        if ((choice.rule.backendRefs ?? []).length > 0) {
          const ref = pickBackend(choice.rule.backendRefs ?? [], this.#random);
          const ns = ref?.namespace ?? choice.route.metadata?.namespace ?? "default";
          backend = ref ? this.#state.serviceByName(ns, ref.name) : undefined;
          backendPort = ref?.port ?? t.port;
          filters.push(...(ref?.filters ?? []));
        }
        for (const f of filters) {
          if (f.type === "RequestHeaderModifier")
            applyHeaderModifier(headers, f.requestHeaderModifier);
          if (f.type === "ResponseHeaderModifier") responseModifiers.push(f.responseHeaderModifier);
        }
      }
    }
    let dest: Destination | undefined;
    if (backend) dest = this.#state.pickEndpoint(backend, backendPort, this.#random);
    else if (t.workload) dest = { workload: t.workload, ip: t.ip, port: t.port };
    return { backend, dest, headers, responseModifiers, timeoutMs, key };
  }

  /** HBONE (as the waypoint's SVID) to podIP:15008 with :authority = podIP:targetPort. */
  #originate(
    dest: Destination,
    backend: Service | undefined,
    t: TunnelTarget,
    signal: AbortSignal,
  ): Promise<HboneStream> {
    const creds = this.#opts.certificates.current(workloadIdentity(this.#self));
    if (!creds) return Promise.reject(new Error("no waypoint certificate"));
    return this.#pool.open({
      address: { host: dest.ip, port: this.#opts.hbonePort ?? 15008 },
      credentials: creds,
      expectedIdentities: this.#state.expectedIdentities(dest.workload, backend),
      sourceIp: this.ip,
      authority: `${dest.ip}:${dest.port}`,
      forwarded: {
        for: t.req.forwarded.for ?? `${t.req.remoteAddress}:${t.req.remotePort}`,
        ...(backend ? { host: backend.hostname } : {}),
      },
      signal,
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#shrinker?.stop();
    for (const t of this.#tunnels) t.destroy();
    this.#tunnels.clear();
    this.#pool.destroy();
    this.#http.closeAllConnections();
    await Promise.all([...this.#listeners.map((l) => l.close()), this.#server.close(0)]);
    this.#listeners.length = 0;
  }
}
