// Sidecar: istio/istio pkg/config/validation ValidateSidecar and its port/bind/outbound-policy
// helpers (validation.go).
import {
  alphaSelector,
  fqdnProblem,
  ipProblem,
  isHTTPProtocol,
  isSet,
  isTLSProtocol,
  len,
  list,
  namespaceHostProblems,
  num,
  type Obj,
  obj,
  parseProtocol,
  portNameProblem,
  portProblem,
  protocolProblem,
  q,
  str,
  unixAddressProblem,
} from "./common.js";
import { checkConnectionPool } from "./destination-rule.js";
import { checkServerTLS } from "./gateway.js";
import type { PathSeg, Report } from "./report.js";
import { checkDestination } from "./virtual-service.js";

type At = readonly PathSeg[];

export function checkSidecar(r: Report, spec: Obj, namespace: string): void {
  const sel = alphaSelector(r, ["spec", "workloadSelector"], spec.workloadSelector);
  if (sel.errors) return;
  if (sel.noLabels) {
    r.warn(
      ["spec", "workloadSelector"],
      "sidecar: workload selector specified without labels, will be applied to all services in namespace",
    );
  }
  if (
    len(spec.egress) === 0 &&
    len(spec.ingress) === 0 &&
    !isSet(spec.outboundTrafficPolicy) &&
    !isSet(spec.inboundConnectionPool)
  ) {
    r.error(["spec"], "sidecar: empty configuration provided");
    return;
  }
  const ports = new Set<number>();
  list(spec.ingress).forEach((ing, i) => {
    const at: PathSeg[] = ["spec", "ingress", i];
    const ingress = obj(ing);
    if (ingress === undefined) {
      r.error(at, "sidecar: ingress may not be null");
      return;
    }
    const port = obj(ingress.port);
    if (port === undefined) {
      r.error(at, "sidecar: port is required for ingress listeners");
      return;
    }
    if (num(port.targetPort) > 0)
      r.error([...at, "port", "targetPort"], "targetPort has no impact on Sidecars");
    const bind = str(ingress.bind);
    checkPortAndBind(r, at, port, bind);
    if (ports.has(num(port.number)))
      r.error([...at, "port"], "sidecar: ports on IP bound listeners must be unique");
    ports.add(num(port.number));
    const def = str(ingress.defaultEndpoint);
    if (def !== "") checkDefaultEndpoint(r, [...at, "defaultEndpoint"], def);
    const tls = obj(ingress.tls);
    if (tls !== undefined) {
      const tat: PathSeg[] = [...at, "tls"];
      if (len(tls.subjectAltNames) > 0)
        r.error(tat, "sidecar: subjectAltNames is not supported in ingress tls");
      if (tls.httpsRedirect === true) r.error(tat, "sidecar: httpsRedirect is not supported");
      if (str(tls.credentialName) !== "")
        r.error(tat, "sidecar: credentialName is not currently supported");
      if (len(tls.credentialNames) > 0)
        r.error(tat, "sidecar: credentialNames is not currently supported");
      if (len(tls.tlsCertificates) > 0)
        r.error(tat, "sidecar: tls_certificates is not currently supported");
      if (tls.mode === "ISTIO_MUTUAL" || tls.mode === "AUTO_PASSTHROUGH") {
        r.error(
          [...tat, "mode"],
          `configuration is invalid: cannot set mode to ${str(tls.mode)} in sidecar ingress tls`,
        );
      }
      if (!isTLSProtocol(parseProtocol(str(port.protocol)))) {
        r.error(tat, "server cannot have TLS settings for non HTTPS/TLS ports");
      }
      checkServerTLS(r, tat, tls);
    }
    checkConnectionPool(r, [...at, "connectionPool"], ingress.connectionPool);
    const pool = obj(ingress.connectionPool);
    if (
      pool !== undefined &&
      isSet(pool.http) &&
      !isHTTPProtocol(parseProtocol(str(port.protocol)))
    ) {
      r.warn(
        [...at, "connectionPool", "http"],
        `sidecar: HTTP connection pool settings are configured for port ${num(port.number)} (${q(str(port.name))}) but its protocol is not HTTP (${str(port.protocol)}); only TCP settings will apply`,
      );
    }
  });
  checkConnectionPool(r, ["spec", "inboundConnectionPool"], spec.inboundConnectionPool);

  const egressPorts = new Set<number>();
  const uds = new Set<string>();
  let catchAll = false;
  const egress = list(spec.egress);
  egress.forEach((e, i) => {
    const at: PathSeg[] = ["spec", "egress", i];
    const eg = obj(e);
    if (eg === undefined) {
      r.error(at, "egress listener may not be null");
      return;
    }
    const port = obj(eg.port);
    if (port === undefined) {
      if (!catchAll) {
        if (i === egress.length - 1) catchAll = true;
        else
          r.error(
            at,
            "sidecar: the egress listener with empty port should be the last listener in the list",
          );
      } else {
        r.error(at, "sidecar: egress can have only one listener with empty port");
        return;
      }
    } else {
      if (num(port.targetPort) > 0)
        r.error([...at, "port", "targetPort"], "targetPort has no impact on Sidecars");
      const bind = str(eg.bind);
      checkEgressPort(r, at, port, bind, str(eg.captureMode));
      if (num(port.number) === 0) {
        if (uds.has(bind))
          r.error(
            [...at, "bind"],
            "sidecar: unix domain socket values for listeners must be unique",
          );
        uds.add(bind);
      } else {
        if (egressPorts.has(num(port.number)))
          r.error([...at, "port"], "sidecar: ports on IP bound listeners must be unique");
        egressPorts.add(num(port.number));
      }
    }
    const hosts = list(eg.hosts).map(str);
    if (hosts.length === 0) {
      r.error([...at, "hosts"], "sidecar: egress listener must contain at least one host");
      return;
    }
    const byNs = new Map<string, Set<string>>();
    hosts.forEach((h, j) => {
      const hat: PathSeg[] = [...at, "hosts", j];
      const slash = h.indexOf("/");
      if (slash >= 0 && !h.startsWith("~")) {
        let ns = h.slice(0, slash);
        const svc = h.slice(slash + 1);
        if (ns === ".") ns = namespace;
        let svcs = byNs.get(ns);
        if (svcs === undefined) {
          svcs = new Set();
          byNs.set(ns, svcs);
        }
        if (svc !== "*" ? svcs.has(svc) || svcs.has("*") : svcs.size !== 0) {
          r.warn(hat, `duplicated egress host: ${h}`);
        }
        svcs.add(svc);
      }
      for (const p of namespaceHostProblems(h, false, false)) r.error(hat, p);
    });
    if (byNs.get("*")?.has("*") === true && byNs.size !== 1) {
      r.warn([...at, "hosts"], "`*/*` host select all resources, no other hosts can be added");
    }
  });
  checkOutboundTrafficPolicy(r, ["spec", "outboundTrafficPolicy"], spec.outboundTrafficPolicy);
}

function checkDefaultEndpoint(r: Report, at: At, def: string): void {
  if (def.startsWith("unix://")) {
    const p = unixAddressProblem(def.slice("unix://".length));
    if (p !== undefined) r.error(at, p);
    return;
  }
  // net.SplitHostPort: host:port or [v6]:port
  let host = "";
  let port = "";
  const m = /^\[([^\]]*)\]:([^:]*)$/.exec(def) ?? /^([^:[\]]*):([^:[\]]*)$/.exec(def);
  if (m === null) {
    const colons = def.split(":").length - 1;
    r.error(
      at,
      colons === 0
        ? `address ${def}: missing port in address`
        : `address ${def}: too many colons in address`,
    );
  } else {
    host = m[1] ?? "";
    port = m[2] ?? "";
  }
  if (
    host !== "" &&
    host !== "127.0.0.1" &&
    host !== "0.0.0.0" &&
    host !== "::1" &&
    host !== "::"
  ) {
    r.error(
      at,
      "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
    );
  }
  if (!/^[+-]?[0-9]+$/.test(port)) {
    r.error(
      at,
      `sidecar: defaultEndpoint port (${port}) is not a number: strconv.Atoi: parsing ${q(port)}: invalid syntax`,
    );
  } else {
    const p = portProblem(Number(port));
    if (p !== undefined) r.error(at, p);
  }
}

/** validateSidecarIngressPortAndBind */
function checkPortAndBind(r: Report, at: At, port: Obj, bind: string): void {
  const name = str(port.name);
  if (name !== "") {
    const p = portNameProblem(name);
    if (p !== undefined) r.error([...at, "port", "name"], p);
  }
  const proto = protocolProblem(str(port.protocol));
  if (proto !== undefined) r.error([...at, "port", "protocol"], proto);
  const n = portProblem(num(port.number));
  if (n !== undefined) r.error([...at, "port", "number"], n);
  if (bind !== "") {
    const b = ipProblem(bind);
    if (b !== undefined) r.error([...at, "bind"], b);
  }
}

/** validateSidecarEgressPortBindAndCaptureMode */
function checkEgressPort(r: Report, at: At, port: Obj, bind: string, captureMode: string): void {
  if (num(port.number) !== 0) {
    checkPortAndBind(r, at, port, bind);
    return;
  }
  const name = str(port.name);
  if (name !== "") {
    const p = portNameProblem(name);
    if (p !== undefined) r.error([...at, "port", "name"], p);
  }
  const proto = protocolProblem(str(port.protocol));
  if (proto !== undefined) r.error([...at, "port", "protocol"], proto);
  if (!bind.startsWith("unix://")) {
    r.error(
      [...at, "bind"],
      "sidecar: ports with 0 value must have a unix domain socket bind address",
    );
  } else {
    const p = unixAddressProblem(bind.slice("unix://".length));
    if (p !== undefined) r.error([...at, "bind"], p);
  }
  if (captureMode !== "" && captureMode !== "DEFAULT" && captureMode !== "NONE") {
    r.error(
      [...at, "captureMode"],
      "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
    );
  }
}

/** validateSidecarOutboundTrafficPolicy */
function checkOutboundTrafficPolicy(r: Report, at: At, policy: unknown): void {
  const tp = obj(policy);
  if (tp === undefined) return;
  const mode = str(tp.mode) === "" ? "REGISTRY_ONLY" : str(tp.mode);
  if (mode === "ALLOW_ANY_DYNAMIC_DNS") {
    r.error(
      [...at, "mode"],
      "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource",
    );
    return;
  }
  const proxy = obj(tp.egressProxy);
  if (proxy === undefined) return;
  if (mode !== "ALLOW_ANY") {
    r.error(
      [...at, "egressProxy"],
      "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
    );
    return;
  }
  const f = fqdnProblem(str(proxy.host));
  if (f !== undefined) r.error([...at, "egressProxy", "host"], f);
  if (!isSet(proxy.port)) {
    r.error([...at, "egressProxy"], "sidecar: egress_proxy port must be non-nil");
    return;
  }
  checkDestination(r, [...at, "egressProxy"], proxy);
}
