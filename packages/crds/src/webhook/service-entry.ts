// ServiceEntry: istio/istio pkg/config/validation ValidateServiceEntry (validation.go).

import { isIP } from "../net.js";
import {
  alphaSelector,
  checkLabels,
  entries,
  exportToProblems,
  fqdnProblem,
  ipSubnetProblem,
  isHTTPProtocol,
  isSet,
  isTCPProtocol,
  isTLSProtocol,
  list,
  num,
  type Obj,
  obj,
  parseProtocol,
  partialWildcardProblem,
  portNameProblem,
  portProblem,
  protocolProblem,
  q,
  str,
  wildcardDomainProblem,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";
import { checkWorkloadEntry } from "./workload.js";

export function checkServiceEntry(r: Report, spec: Obj, namespace: string, labels: Obj): void {
  const sel = alphaSelector(r, ["spec", "workloadSelector"], spec.workloadSelector);
  if (sel.errors) return;
  if (sel.noLabels) {
    r.warn(
      ["spec", "workloadSelector"],
      "service entry: workload selector specified without labels, will be applied to all services in namespace",
    );
  }
  // Go's `Endpoints != nil`: an empty list decodes to nil.
  if (isSet(spec.workloadSelector) && list(spec.endpoints).length > 0) {
    r.error(["spec"], "only one of WorkloadSelector or Endpoints is allowed in Service Entry");
  }
  const resolution = str(spec.resolution) === "" ? "NONE" : str(spec.resolution);
  const hosts = list(spec.hosts).map(str);
  if (hosts.length === 0) r.error(["spec", "hosts"], "service entry must have at least one host");
  hosts.forEach((h, i) => {
    const at: PathSeg[] = ["spec", "hosts", i];
    if (h === "*") {
      r.error(at, `invalid host ${h}`);
      return;
    }
    const p = wildcardDomainProblem(h);
    if (p !== undefined) r.error(at, p);
    if (resolution !== "DYNAMIC_DNS") {
      const w = partialWildcardProblem(h);
      if (w !== undefined) r.warn(at, w);
    }
  });
  const addresses = list(spec.addresses).map(str);
  let cidr = false;
  addresses.forEach((a, i) => {
    cidr ||= a.includes("/");
    const p = ipSubnetProblem(a);
    if (p !== undefined) r.error(["spec", "addresses", i], p);
  });
  if (cidr && resolution !== "NONE" && resolution !== "STATIC") {
    r.error(
      ["spec", "addresses"],
      "CIDR addresses are allowed only for NONE/STATIC resolution types",
    );
  }
  // serviceentry.ShouldV2AutoAllocateIPFromConfig with PILOT_ENABLE_IP_AUTOALLOCATE at its default (on)
  const autoAllocation =
    resolution !== "NONE" &&
    str(labels["networking.istio.io/enable-autoallocate-ip"]).toLowerCase() !== "false" &&
    addresses.length === 0;
  const ports = list(spec.ports);
  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  ports.forEach((p, i) => {
    const at: PathSeg[] = ["spec", "ports", i];
    const port = obj(p);
    if (port === undefined) {
      r.error(at, "service entry port may not be null");
      return;
    }
    const name = str(port.name);
    const number = num(port.number);
    if (portNames.has(name))
      r.error([...at, "name"], `service entry port name ${q(name)} already defined`);
    portNames.add(name);
    if (portNumbers.has(number))
      r.error([...at, "number"], `service entry port ${number} already defined`);
    portNumbers.add(number);
    if (num(port.targetPort) !== 0) {
      const e = portProblem(num(port.targetPort));
      if (e !== undefined) r.error([...at, "targetPort"], e);
    }
    if (
      addresses.length === 0 &&
      !autoAllocation &&
      (str(port.protocol) === "" || str(port.protocol) === "TCP")
    ) {
      r.warn(
        at,
        "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
      );
    }
    const n = portNameProblem(name);
    if (n !== undefined) r.error([...at, "name"], n);
    const pr = protocolProblem(str(port.protocol));
    if (pr !== undefined) r.error([...at, "protocol"], pr);
    const pn = portProblem(number);
    if (pn !== undefined) r.error([...at, "number"], pn);
  });
  const endpoints = list(spec.endpoints);
  switch (resolution) {
    case "NONE":
      if (endpoints.length !== 0)
        r.error(["spec", "endpoints"], "no endpoints should be provided for resolution type none");
      if (isSet(spec.workloadSelector))
        r.warn(
          ["spec", "workloadSelector"],
          "workloadSelector should not be set when resolution mode is NONE",
        );
      break;
    case "STATIC":
      endpoints.forEach((e, i) => {
        const ep = obj(e);
        if (ep === undefined) {
          r.error(["spec", "endpoints", i], "endpoint cannot be nil");
          return;
        }
        checkWorkloadEntry(r, ["spec", "endpoints", i], ep, portNames, false);
      });
      break;
    case "DNS":
    case "DNS_ROUND_ROBIN": {
      if (endpoints.length === 0) {
        for (let i = 0; i < hosts.length; i++) {
          const p = fqdnProblem(hosts[i] ?? "");
          if (p !== undefined) {
            r.error(
              ["spec", "hosts", i],
              `hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode ${resolution}, ${p}`,
            );
            break;
          }
        }
      }
      if (resolution === "DNS_ROUND_ROBIN" && endpoints.length > 1) {
        r.error(
          ["spec", "endpoints"],
          `there must only be 0 or 1 endpoint for resolution mode ${resolution}`,
        );
      }
      endpoints.forEach((e, i) => {
        const at: PathSeg[] = ["spec", "endpoints", i];
        const ep = obj(e);
        if (ep === undefined) {
          r.error(at, "endpoint cannot be nil");
          return;
        }
        const addr = str(ep.address);
        if (!isIP(addr) && fqdnProblem(addr) !== undefined) {
          r.error(
            [...at, "address"],
            `endpoint address ${q(addr)} is not a valid FQDN or an IP address`,
          );
        }
        checkLabels(r, [...at, "labels"], ep.labels);
        for (const [name, port] of entries(ep.ports)) {
          const pat: PathSeg[] = [...at, "ports", name];
          if (!portNames.has(name))
            r.error(pat, `endpoint port ${num(port)} is not defined by the service entry`);
          const n = portNameProblem(name);
          if (n !== undefined) r.error(pat, n);
          const p = portProblem(num(port));
          if (p !== undefined) r.error(pat, p);
        }
      });
      if (addresses.length > 0 && hosts.length > 1) {
        const tcp = ports.some((p) => isTCPProtocol(parseProtocol(str(obj(p)?.protocol))));
        if (tcp) {
          r.warn(
            ["spec", "hosts"],
            "service entry can not have more than one host specified simultaneously with address and tcp port",
          );
        }
      }
      break;
    }
    case "DYNAMIC_DNS": {
      if (hosts.length === 0)
        r.error(
          ["spec", "hosts"],
          `at least one wildcard host must be provided for resolution type ${resolution}`,
        );
      hosts.forEach((h, i) => {
        if (!h.startsWith("*"))
          r.error(
            ["spec", "hosts", i],
            `host must be wildcarded for resolution mode ${resolution}`,
          );
      });
      if (addresses.length !== 0) {
        r.error(
          ["spec", "addresses"],
          `addresses cannot be set for resolution type ${resolution}. HTTP route domains will only be generatedfrom the hosts field values`,
        );
      }
      if (endpoints.length !== 0) {
        r.error(
          ["spec", "endpoints"],
          `endpoints cannot be set for resolution type ${resolution}. Destination IP address determined from hostsfield values`,
        );
      }
      ports.forEach((p, i) => {
        const proto = parseProtocol(str(obj(p)?.protocol));
        if (proto !== "HTTP" && proto !== "TLS" && proto !== "GRPC" && proto !== "HTTP2") {
          r.error(
            ["spec", "ports", i, "protocol"],
            `only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type ${resolution}`,
          );
        }
      });
      const location = str(spec.location) === "" ? "MESH_EXTERNAL" : str(spec.location);
      const waypoint = str(labels["istio.io/use-waypoint"]);
      if (location === "MESH_INTERNAL" && waypoint !== "" && waypoint.toLowerCase() !== "none") {
        r.error(
          ["spec", "location"],
          `location MESH_INTERNAL with resolution type ${resolution} is not supported when using waypoints`,
        );
      }
      break;
    }
    default:
      r.error(["spec", "resolution"], `unsupported resolution type ${resolution}`);
  }
  if (resolution !== "NONE" && hosts.length > 1) {
    const i = ports.findIndex((p) => {
      const proto = parseProtocol(str(obj(p)?.protocol));
      return !isHTTPProtocol(proto) && !isTLSProtocol(proto);
    });
    if (i >= 0)
      r.error(["spec", "ports", i], "multiple hosts provided with non-HTTP, non-TLS ports");
  }
  for (const p of exportToProblems(namespace, spec.exportTo, true, false))
    r.error(["spec", "exportTo"], p);
}
