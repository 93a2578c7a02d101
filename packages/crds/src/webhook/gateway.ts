// Gateway: istio/istio pkg/config/validation ValidateGateway, validateServer, validateServerPort,
// validateServerBind and validateTLSOptions (validation.go).
import {
  ipProblem,
  isDNS1123Label,
  isHTTPProtocol,
  isTLSProtocol,
  len,
  list,
  namespaceHostProblems,
  num,
  type Obj,
  obj,
  parseProtocol,
  portProblem,
  q,
  str,
  unixAddressProblem,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";

type At = readonly PathSeg[];

export function checkGateway(r: Report, spec: Obj, name: string, annotations: Obj): void {
  const gatewaySemantics = annotations["internal.istio.io/gateway-semantics"] === "gateway";
  if (!isDNS1123Label(name) && !gatewaySemantics)
    r.error(["metadata", "name"], `invalid gateway name: ${q(name)}`);
  const servers = list(spec.servers);
  if (servers.length === 0) r.error(["spec"], "gateway must have at least one server");
  else {
    servers.forEach((s, i) => {
      const server = obj(s);
      if (server === undefined) r.error(["spec", "servers", i], "cannot have nil server");
      else checkServer(r, ["spec", "servers", i], server, gatewaySemantics);
    });
  }
  const portNames = new Set<string>();
  servers.forEach((s, i) => {
    const server = obj(s);
    if (server === undefined) {
      r.error(["spec", "servers", i], "server may not be nil");
      return;
    }
    const port = obj(server.port);
    if (port === undefined) return;
    const pname = str(port.name);
    if (portNames.has(pname)) {
      r.error(
        ["spec", "servers", i, "port", "name"],
        `port names in servers must be unique: duplicate name ${pname}`,
      );
    }
    portNames.add(pname);
    if (
      !isHTTPProtocol(parseProtocol(str(port.protocol))) &&
      obj(server.tls)?.httpsRedirect === true
    ) {
      r.warn(
        ["spec", "servers", i, "tls", "httpsRedirect"],
        "tls.httpsRedirect should only be used with http servers",
      );
    }
  });
}

/** Go's %v of a Port message, as "port name must be set" and the unix-socket error print it. */
function portString(port: Obj): string {
  const parts: string[] = [];
  if (num(port.number) !== 0) parts.push(`number:${num(port.number)}`);
  if (str(port.protocol) !== "") parts.push(`protocol:${q(str(port.protocol))}`);
  if (str(port.name) !== "") parts.push(`name:${q(str(port.name))}`);
  if (num(port.targetPort) !== 0) parts.push(`target_port:${num(port.targetPort)}`);
  return parts.join(" ");
}

export function checkServer(r: Report, at: At, server: Obj, gatewaySemantics: boolean): void {
  const hosts = list(server.hosts).map(str);
  if (hosts.length === 0) r.error([...at, "hosts"], "server config must contain at least one host");
  hosts.forEach((h, i) => {
    for (const p of namespaceHostProblems(h, true, gatewaySemantics))
      r.error([...at, "hosts", i], p);
  });
  const bind = str(server.bind);
  const port = obj(server.port);
  let portOk = true;
  if (port === undefined) {
    r.error([...at, "port"], "port is required");
    portOk = false;
  } else {
    const proto = str(port.protocol);
    if (parseProtocol(proto) === "UnsupportedProtocol") {
      r.error(
        [...at, "port", "protocol"],
        `invalid protocol ${q(proto)}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP`,
      );
      portOk = false;
    }
    if (num(port.number) > 0 || !bind.startsWith("unix://")) {
      const p = portProblem(num(port.number));
      if (p !== undefined) {
        r.error([...at, "port", "number"], p);
        portOk = false;
      }
    }
    if (num(port.targetPort) > 0) {
      r.error([...at, "port", "targetPort"], "targetPort has no impact on Gateways");
      portOk = false;
    }
    if (str(port.name) === "") {
      r.error([...at, "port"], `port name must be set: ${portString(port)}`);
      portOk = false;
    }
  }
  if (bind.startsWith("unix://")) {
    const p = unixAddressProblem(bind.slice("unix://".length));
    if (p !== undefined) r.error([...at, "bind"], p);
    if (port !== undefined && num(port.number) !== 0) {
      r.error(
        [...at, "port", "number"],
        `port number must be 0 for unix domain socket: ${portString(port)}`,
      );
    }
  } else if (bind !== "") {
    const p = ipProblem(bind);
    if (p !== undefined) r.error([...at, "bind"], p);
  }
  checkServerTLS(r, [...at, "tls"], server.tls);
  if (portOk && port !== undefined) {
    const p = parseProtocol(str(port.protocol));
    const tls = obj(server.tls);
    if (isTLSProtocol(p) && tls === undefined) {
      r.error([...at, "tls"], "server must have TLS settings for HTTPS/TLS protocols");
    } else if (!isTLSProtocol(p) && tls !== undefined) {
      if (isHTTPProtocol(p)) {
        // gateway.IsPassThroughServer (an unset mode is PASSTHROUGH): only an httpsRedirect is
        // allowed on a plain HTTP server
        const mode = str(tls.mode);
        const passThrough = mode === "" || mode === "PASSTHROUGH" || mode === "AUTO_PASSTHROUGH";
        if (
          !passThrough ||
          str(tls.caCertificates) !== "" ||
          str(tls.privateKey) !== "" ||
          str(tls.serverCertificate) !== ""
        ) {
          r.error([...at, "tls"], "server cannot have TLS settings for plain text HTTP ports");
        }
      } else {
        r.error([...at, "tls"], "server cannot have TLS settings for non HTTPS/TLS ports");
      }
    }
  }
}

const CIPHERS = new Set([
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-SHA",
  "ECDHE-RSA-AES128-SHA",
  "ECDHE-ECDSA-AES256-SHA",
  "ECDHE-RSA-AES256-SHA",
  "AES128-GCM-SHA256",
  "AES256-GCM-SHA384",
  "AES128-SHA",
  "AES256-SHA",
  "DES-CBC3-SHA",
]);

/** security.IsValidCipherSuite: expressions starting with an operator pass. */
function validCipher(cs: string): boolean {
  if (cs === "" || cs === "ALL") return true;
  if (!/^[\p{L}\p{N}]/u.test(cs)) return true;
  return CIPHERS.has(cs);
}

/** validateTLSOptions (server side); also used for Sidecar ingress TLS. */
export function checkServerTLS(r: Report, at: At, settings: unknown): void {
  const t = obj(settings);
  if (t === undefined) return;
  const mode = str(t.mode) === "" ? "PASSTHROUGH" : str(t.mode);
  const ciphers = list(t.cipherSuites).map(str);
  if (
    (t.minProtocolVersion === "TLSV1_0" || t.minProtocolVersion === "TLSV1_1") &&
    ciphers.length === 0
  ) {
    r.warn(
      [...at, "minProtocolVersion"],
      "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
    );
  }
  const invalid = new Set<string>();
  const valid = new Set<string>();
  const dup = new Set<string>();
  for (const cs of ciphers) {
    if (!validCipher(cs)) invalid.add(cs);
    else if (valid.has(cs)) dup.add(cs);
    else valid.add(cs);
  }
  if (invalid.size > 0)
    r.warn(
      [...at, "cipherSuites"],
      `ignoring invalid cipher suites: [${[...invalid].sort().join(" ")}]`,
    );
  if (dup.size > 0)
    r.warn(
      [...at, "cipherSuites"],
      `ignoring duplicate cipher suites: [${[...dup].sort().join(" ")}]`,
    );
  const serverCert = str(t.serverCertificate);
  const key = str(t.privateKey);
  const ca = str(t.caCertificates);
  const cred = str(t.credentialName);
  const creds = len(t.credentialNames);
  const certs = list(t.tlsCertificates);
  if (mode === "ISTIO_MUTUAL") {
    if (serverCert !== "")
      r.error(at, "ISTIO_MUTUAL TLS cannot have associated server certificate");
    if (key !== "") r.error(at, "ISTIO_MUTUAL TLS cannot have associated private key");
    if (ca !== "") r.error(at, "ISTIO_MUTUAL TLS cannot have associated CA bundle");
    if (certs.length > 0) r.error(at, "ISTIO_MUTUAL TLS cannot have associated tlsCertificates");
    if (cred !== "") r.error(at, "ISTIO_MUTUAL TLS cannot have associated credentialName");
    if (creds > 0) r.error(at, "ISTIO_MUTUAL TLS cannot have associated credentialNames");
    return;
  }
  if (mode === "PASSTHROUGH" || mode === "AUTO_PASSTHROUGH") {
    if (
      str(t.caCrl) !== "" ||
      serverCert !== "" ||
      key !== "" ||
      ca !== "" ||
      certs.length > 0 ||
      cred !== "" ||
      creds > 0
    ) {
      r.warn(at, `${mode} mode does not use certificates, they will be ignored`);
    }
  }
  let sources = 0;
  if (serverCert !== "" && key !== "") sources++;
  if (cred !== "") sources++;
  if (creds > 0) sources++;
  if (certs.length > 0) sources++;
  if (sources > 1) {
    r.error(
      at,
      "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
    );
  }
  const terminating = mode === "SIMPLE" || mode === "MUTUAL" || mode === "OPTIONAL_MUTUAL";
  // Credentials fetched remotely need no certificate fields.
  if (terminating && (cred !== "" || creds > 0)) return;
  if (terminating) {
    const prefix = mode === "SIMPLE" ? "SIMPLE TLS" : "MUTUAL TLS";
    if (mode !== "SIMPLE" && ca === "") r.error(at, `${prefix} requires a client CA bundle`);
    if (certs.length > 2)
      r.warn([...at, "tlsCertificates"], `${prefix} can support up to 2 server certificates`);
    const toVerify =
      certs.length > 0
        ? certs.map((c) => obj(c) ?? {})
        : [{ serverCertificate: serverCert, privateKey: key }];
    for (const c of toVerify) {
      if (str(c.serverCertificate) === "") r.error(at, `${prefix} requires a server certificate`);
      if (str(c.privateKey) === "") r.error(at, `${prefix} requires a private key`);
    }
  }
  if (str(t.caCrl) !== "") {
    if (cred !== "")
      r.error(
        [...at, "caCrl"],
        "CRL is not supported with credentialName. CRL has to be specified in the credential",
      );
    if (mode === "SIMPLE") r.error([...at, "caCrl"], "CRL is not supported with SIMPLE TLS");
  }
}
