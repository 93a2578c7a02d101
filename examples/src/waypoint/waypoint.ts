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
import { ExampleError } from "../mesh/errors.js";
import type { HttpRoute } from "../mesh/httproute-types.js";
import { serviceInfo, workloadInfo } from "../mesh/labels.js";
import { type Listener, listen, pipeBoth } from "../mesh/net.js";
import { MeshState } from "../mesh/state.js";
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
}

/** What the waypoint resolved the CONNECT authority to. */
interface TunnelTarget {
  service: Service | undefined;
  workload: Workload | undefined;
  ip: string;
  port: number;
  req: HboneServerRequest;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How long the waypoint waits for the client's first bytes before treating a tunnel as TCP. */
const SNIFF_TIMEOUT_MS = 300;

const HTTP1_REQUEST_LINE = /^[A-Z]{3,10} \S/;

/** What the first bytes of a tunnel look like. */
export function sniff(first: Buffer): "h2" | "http1" | "tcp" {
  const n = Math.min(first.length, H2_PREFACE.length);
  if (n >= 3 && first.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return "h2";
  if (HTTP1_REQUEST_LINE.test(first.subarray(0, 16).toString("latin1"))) return "http1";
  return "tcp";
}

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

function abort(res: AnyResponse): void {
  if (res instanceof http.ServerResponse) res.destroy();
  else res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}

function reply(res: AnyResponse, status: number, text: string): void {
  (res as http.ServerResponse).writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
];

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
  readonly #pool = new HbonePool();
  readonly #targets = new WeakMap<Duplex, TunnelTarget>();
  readonly #tunnels = new Set<HboneStream>();
  readonly #listeners: Listener[] = [];
  readonly #random: () => number;
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
    this.#server = new HboneServer({
      credentials: () => opts.certificates.current(workloadIdentity(this.#self)),
      handler: (req) => this.#onConnect(req),
    });
    this.#http = http.createServer((req, res) => {
      void this.#onRequest(req, res);
    });
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
        // Protocol sniffing on the first bytes: HTTP/2 prior knowledge (e.g. gRPC), HTTP/1.1, or
        // anything else (or nothing within SNIFF_TIMEOUT_MS, a server-first protocol) → L4 TCP.
        let decided = false;
        const dispatch = (first: Buffer | undefined): void => {
          if (decided) return;
          decided = true;
          clearTimeout(sniffTimer);
          tunnel.removeListener("data", onFirst);
          tunnel.pause();
          if (first) tunnel.unshift(first);
          const kind = first ? sniff(first) : "tcp";
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
        const onFirst = (first: Buffer): void => dispatch(first);
        const sniffTimer = setTimeout(() => dispatch(undefined), SNIFF_TIMEOUT_MS);
        tunnel.on("data", onFirst);
        tunnel.once("close", () => clearTimeout(sniffTimer));
      },
    };
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
  async #onTcp(tunnel: HboneStream, t: TunnelTarget): Promise<void> {
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
      });
    } catch (e) {
      this.log.warn(
        { authority: `${dest.ip}:${dest.port}`, error: (e as Error).message },
        "upstream connect failed",
      );
      tunnel.destroy();
      return;
    }
    const h = this.metrics.openConnection(
      envoyTcpLabels({
        ...ctx,
        destination: workloadInfo(dest.workload),
        destinationPrincipal: workloadIdentity(dest.workload),
      }),
      addrs,
    );
    pipeBoth(tunnel, upstream, () => {
      h.received(tunnel.bytesReceived);
      h.sent(tunnel.bytesSent);
      h.close();
    });
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
    // 1. L7 authorization at the waypoint enforcement point
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(plainHeaders)) if (v !== undefined) headers[k] = v;
    // 0. RequestAuthentication: an invalid token is 401; a valid one feeds request.auth.* to authz
    let jwt: Record<string, unknown> | null = null;
    const jwtRules = this.#jwtRulesFor(t.service);
    if (jwtRules.length > 0) {
      const token = extractToken(plainHeaders, req.url ?? "/", jwtRules);
      if (token !== undefined) {
        const v = verifyJwt(token, jwtRules, Math.floor(Date.now() / 1000));
        if (v.kind === "invalid") {
          this.log.warn(
            {
              "src.identity": t.req.peerIdentity,
              method: req.method,
              path: req.url,
              error: v.reason,
            },
            "request unauthenticated",
          );
          record(401);
          reply(res, 401, `${v.reason}\n`);
          return;
        }
        if (v.kind === "valid") jwt = v.claims;
      }
    }
    const decision: Decision = this.#policies.decide(
      this.#decisionInput(t, "http", {
        host,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers,
        jwt,
      }),
    );
    if (decision.decision === "deny") {
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
      record(403);
      reply(res, 403, "RBAC: access denied\n");
      return;
    }
    // 2. routing
    const reqHeaders: Record<string, string | string[] | undefined> = { ...plainHeaders };
    for (const h of HOP_BY_HOP) delete reqHeaders[h];
    const respMods: Parameters<typeof applyHeaderModifier>[1][] = [];
    let backend: Service | undefined = t.service;
    let backendPort = t.port;
    let timeoutMs: number | undefined;
    let routeKey: string | undefined;
    if (t.service) {
      const choice = selectRule(this.#routesFor(t.service), {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers: plainHeaders,
      });
      if (choice) {
        routeKey = `${choice.routeKey}#${choice.ruleIndex}`;
        for (const f of choice.rule.filters ?? []) {
          if (f.type === "RequestHeaderModifier")
            applyHeaderModifier(reqHeaders, f.requestHeaderModifier);
          if (f.type === "ResponseHeaderModifier") respMods.push(f.responseHeaderModifier);
        }
        timeoutMs = parseGatewayDuration(choice.rule.timeouts?.request);
        if ((choice.rule.backendRefs ?? []).length > 0) {
          const ref = pickBackend(choice.rule.backendRefs ?? [], this.#random);
          const ns = ref?.namespace ?? choice.route.metadata?.namespace ?? "default";
          backend = ref ? this.#state.serviceByName(ns, ref.name) : undefined;
          backendPort = ref?.port ?? t.port;
          for (const f of ref?.filters ?? []) {
            if (f.type === "RequestHeaderModifier")
              applyHeaderModifier(reqHeaders, f.requestHeaderModifier);
            if (f.type === "ResponseHeaderModifier") respMods.push(f.responseHeaderModifier);
          }
        }
      }
    }
    // 3. pick the pod
    let dest: { workload: Workload; ip: string; port: number } | undefined;
    if (backend) dest = this.#state.pickEndpoint(backend, backendPort, this.#random);
    else if (t.workload) dest = { workload: t.workload, ip: t.ip, port: t.port };
    if (!dest) {
      record(503, undefined, "UH");
      reply(res, 503, "no healthy upstream\n");
      return;
    }
    // 4. re-originate HBONE to podIP:15008 with :authority = podIP:targetPort
    const creds = this.#opts.certificates.current(workloadIdentity(this.#self));
    let tunnel: HboneStream;
    try {
      if (!creds) throw new Error("no waypoint certificate");
      tunnel = await this.#pool.open({
        address: { host: dest.ip, port: this.#opts.hbonePort ?? 15008 },
        credentials: creds,
        expectedIdentities: this.#state.expectedIdentities(dest.workload, backend),
        sourceIp: this.ip,
        authority: `${dest.ip}:${dest.port}`,
        forwarded: {
          for: t.req.forwarded.for ?? `${t.req.remoteAddress}:${t.req.remotePort}`,
          ...(backend ? { host: backend.hostname } : {}),
        },
      });
    } catch (e) {
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
    const target = dest;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const fail = (status: number, flags: string, text: string): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      tunnel.destroy();
      if (!res.headersSent) {
        record(status, target.workload, flags);
        reply(res, status, text);
      } else abort(res);
    };
    const respond = (
      status: number,
      headers: Record<string, string | string[] | undefined>,
      body: NodeJS.ReadableStream,
    ): void => {
      if (finished) return;
      if (timer) clearTimeout(timer);
      const out: Record<string, string | string[] | undefined> = {};
      for (const [k, v] of Object.entries(headers))
        if (!k.startsWith(":") && !HOP_BY_HOP.includes(k)) out[k] = v;
      for (const m of respMods) applyHeaderModifier(out, m);
      (res as http.ServerResponse).writeHead(status, out as http.OutgoingHttpHeaders);
      body.pipe(res as NodeJS.WritableStream);
      body.once("end", () => {
        finished = true;
        record(status, target.workload);
        this.log.info(
          {
            "src.identity": t.req.peerIdentity,
            protocol: isH2 ? "HTTP/2" : "HTTP/1.1",
            method: req.method,
            path: req.url,
            route: routeKey,
            upstream: `${target.ip}:${target.port}`,
            status,
          },
          "request",
        );
      });
    };
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => fail(504, "UT", "upstream request timeout\n"), timeoutMs);
    }
    if (isH2) {
      // HTTP/2 downstream → HTTP/2 upstream (gRPC needs trailers end to end)
      const session = http2.connect(`http://${target.ip}:${target.port}`, {
        createConnection: () => tunnel as unknown as net.Socket,
      });
      session.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
      const up = session.request({
        ":method": req.method ?? "GET",
        ":path": req.url ?? "/",
        ":authority": String(reqHeaders.host ?? host),
        ...Object.fromEntries(Object.entries(reqHeaders).filter(([k]) => k !== "host")),
      });
      up.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
      up.on("response", (h) =>
        respond(Number(h[":status"] ?? 502), h as Record<string, string>, up),
      );
      up.on("trailers", (tr) => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(tr))
          if (!k.startsWith(":") && v !== undefined) out[k] = String(v);
        (res as http2.Http2ServerResponse).addTrailers(out);
      });
      up.once("close", () => session.close());
      req.pipe(up);
      return;
    }
    const up = http.request({
      createConnection: () => tunnel as unknown as net.Socket,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: reqHeaders as http.OutgoingHttpHeaders,
    });
    up.on("response", (ur) => respond(ur.statusCode ?? 502, ur.headers, ur));
    up.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
    req.pipe(up);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tunnels) t.destroy();
    this.#tunnels.clear();
    this.#pool.destroy();
    this.#http.closeAllConnections();
    await Promise.all([...this.#listeners.map((l) => l.close()), this.#server.close(0)]);
    this.#listeners.length = 0;
  }
}
