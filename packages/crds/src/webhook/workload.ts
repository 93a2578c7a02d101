// WorkloadEntry and WorkloadGroup: istio/istio pkg/config/validation ValidateWorkloadEntry,
// validateWorkloadEntry, ValidateWorkloadGroup and validateReadinessProbe (validation.go).

import { isIP } from "../net.js";
import {
  checkLabels,
  entries,
  fqdnProblem,
  labelsProblems,
  list,
  num,
  type Obj,
  obj,
  portNameProblem,
  portProblem,
  probeHeaderNameProblem,
  q,
  str,
  unixAddressProblem,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";

type At = readonly PathSeg[];

/**
 * validateWorkloadEntry: a WorkloadEntry spec, or a ServiceEntry endpoint (`servicePorts` then
 * holds the service's port names and FQDN addresses are not allowed).
 */
export function checkWorkloadEntry(
  r: Report,
  at: At,
  we: Obj,
  servicePorts: Set<string> | undefined,
  allowFQDN: boolean,
): void {
  const addr = str(we.address);
  if (addr === "") {
    if (str(we.network) === "") {
      r.error(at, "address is required");
      return;
    }
    r.warn([...at, "network"], `address is unset with network ${q(str(we.network))}`);
  }
  let unix = false;
  if (addr.startsWith("unix://")) {
    unix = true;
    const p = unixAddressProblem(addr.slice("unix://".length));
    if (p !== undefined) r.error([...at, "address"], p);
    if (Object.keys(obj(we.ports) ?? {}).length !== 0)
      r.error([...at, "ports"], `unix endpoint ${addr} must not include ports`);
  } else if (addr !== "" && !isIP(addr)) {
    if (!allowFQDN)
      r.error([...at, "address"], `endpoint address ${q(addr)} is not a valid IP address`);
    else if (fqdnProblem(addr) !== undefined) {
      r.error(
        [...at, "address"],
        `endpoint address ${q(addr)} is not a valid FQDN or an IP address`,
      );
    }
  }
  for (const [name, port] of entries(we.ports)) {
    const pat: PathSeg[] = [...at, "ports", name];
    if (servicePorts !== undefined && !servicePorts.has(name)) {
      r.error(pat, `endpoint port ${num(port)} is not defined by the service entry`);
    }
    const n = portNameProblem(name);
    if (n !== undefined) r.error(pat, n);
    const p = portProblem(num(port));
    if (p !== undefined) r.error(pat, p);
  }
  checkLabels(r, [...at, "labels"], we.labels);
  if (unix && servicePorts !== undefined && servicePorts.size !== 1) {
    r.error(at, "exactly 1 service port required for unix endpoints");
  }
}

export function checkWorkloadGroup(r: Report, spec: Obj): void {
  if (obj(spec.template) === undefined) {
    r.error(["spec", "template"], "template is required");
    return;
  }
  const meta = obj(spec.metadata);
  if (meta !== undefined) {
    const p = labelsProblems(meta.labels);
    if (p.length > 0) {
      r.error(["spec", "metadata", "labels"], `invalid labels: ${p.join("; ")}`);
      return;
    }
  }
  checkReadinessProbe(r, ["spec", "probe"], spec.probe);
}

function checkReadinessProbe(r: Report, at: At, probe: unknown): void {
  const p = obj(probe);
  if (p === undefined) return;
  for (const f of [
    "periodSeconds",
    "initialDelaySeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
  ]) {
    if (num(p[f]) < 0) r.error([...at, f], `${f} must be non-negative`);
  }
  const http = obj(p.httpGet);
  const tcp = obj(p.tcpSocket);
  const exec = obj(p.exec);
  if (http !== undefined) {
    const port = portProblem(num(http.port));
    if (port !== undefined) r.error([...at, "httpGet", "port"], port);
    const scheme = str(http.scheme);
    if (scheme !== "" && scheme !== "HTTPS" && scheme !== "HTTP") {
      r.error([...at, "httpGet", "scheme"], 'httpGet.scheme must be one of "HTTPS", "HTTP"');
    }
    list(http.httpHeaders).forEach((h, i) => {
      const header = obj(h);
      if (header === undefined) {
        r.error([...at, "httpGet", "httpHeaders", i], "invalid nil header");
        return;
      }
      const e = probeHeaderNameProblem(str(header.name));
      if (e !== undefined) r.error([...at, "httpGet", "httpHeaders", i, "name"], e);
    });
  } else if (tcp !== undefined) {
    const port = portProblem(num(tcp.port));
    if (port !== undefined) r.error([...at, "tcpSocket", "port"], port);
  } else if (exec !== undefined) {
    if (list(exec.command).length === 0) r.error([...at, "exec"], "exec.command is required");
  } else {
    r.error(at, "unknown health check method <nil>");
  }
}
