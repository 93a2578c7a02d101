// ztunnel's local endpoints: admin (15000: /config_dump in ztunnel's JSON shape or as LOCAL_XDS,
// /certs), Prometheus metrics (15020) and readiness (15021). SOCKS5 (15080) is in outbound.ts.
import http from "node:http";
import { decodePemCertificates, parseCertificate } from "@ambientkit/identity";
import { serializeLocalXds } from "@ambientkit/xds-types/local-xds";
import type { Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import { type Listener, listen } from "../mesh/net.js";
import type { ZtunnelContext } from "./context.js";
import type { InpodManager } from "./inpod.js";

/** What the admin endpoints read: the ztunnel, and its in-pod manager in in-pod mode. */
type AdminContext = ZtunnelContext & { readonly inpod?: InpodManager | undefined };

/** Starts the enabled endpoints; returns their listeners and addresses. */
export async function startAdmin(
  ctx: AdminContext,
  registry: Registry,
  ready: () => boolean,
): Promise<{
  listeners: Listener[];
  addresses: { admin?: string; metrics?: string; readiness?: string };
}> {
  const host = ctx.opts.adminHost ?? "127.0.0.1";
  const p = ctx.ports;
  const listeners: Listener[] = [];
  const addresses: { admin?: string; metrics?: string; readiness?: string } = {};
  if (p.admin !== null) {
    const l = await listen(adminServer(ctx), host, p.admin, `ztunnel ${ctx.node} admin`);
    listeners.push(l);
    addresses.admin = `${host}:${l.port}`;
  }
  if (p.metrics !== null) {
    const srv = http.createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://m").pathname;
      if (path !== "/metrics" && path !== "/stats/prometheus") {
        res.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (e: unknown) => {
          res.writeHead(500).end(String(e));
        },
      );
    });
    const l = await listen(srv, host, p.metrics, `ztunnel ${ctx.node} metrics`);
    listeners.push(l);
    addresses.metrics = `${host}:${l.port}`;
  }
  if (p.readiness !== null) {
    const srv = http.createServer((req, res) => {
      if (req.url === "/healthz/ready") {
        const ok = ready();
        res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
        res.end(ok ? "ready\n" : "not ready\n");
      } else res.writeHead(404).end();
    });
    const l = await listen(srv, host, p.readiness, `ztunnel ${ctx.node} readiness`);
    listeners.push(l);
    addresses.readiness = `${host}:${l.port}`;
  }
  return { listeners, addresses };
}

/** One certificate as ztunnel's `CertDump` shows it. */
function certDump(
  pem: string,
): { pem: string; serialNumber: string; validFrom: string; expirationTime: string }[] {
  return decodePemCertificates(pem).map((der) => {
    const c = parseCertificate(der);
    return {
      pem: c.toString("pem"),
      serialNumber: c.serialNumber,
      validFrom: c.notBefore.toISOString(),
      expirationTime: c.notAfter.toISOString(),
    };
  });
}

/**
 * ztunnel's `/config_dump` shape: the proxy state (workloads, services, policies in ztunnel's serde
 * field names — the LOCAL_XDS ones), the certificates per identity, and this proxy's settings. In
 * in-pod mode also ztunnel's `workloadState` (its in-pod admin handler's key: uid → state, info,
 * plus our netns id, listeners and connection count) and `zds`, the node agent connection (ours).
 */
function ztunnelConfigDump(ctx: AdminContext): Record<string, unknown> {
  const state = parseYaml(serializeLocalXds(ctx.state.config)) as Record<string, unknown>;
  return {
    workloads: state.workloads ?? [],
    services: state.services ?? [],
    policies: state.policies ?? [],
    certificates: ctx.certs.identities().map((identity) => {
      const c = ctx.certs.certificate(identity);
      return c === undefined
        ? { identity, state: "Unavailable", certChain: [], caCert: [] }
        : {
            identity,
            state: "Available",
            certChain: certDump(c.certChainPem),
            caCert: certDump(c.rootCertPem),
          };
    }),
    ...(ctx.inpod ? { workloadState: ctx.inpod.workloadState(), zds: ctx.inpod.zdsState() } : {}),
    config: { node: ctx.node, ports: ctx.ports },
    version: { component: "ztunnel", implementation: "ambientkit reference" },
  };
}

function adminServer(ctx: AdminContext): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://admin");
    if (url.pathname === "/config_dump") {
      if (url.searchParams.get("format") === "local_xds") {
        // The state as a LOCAL_XDS document: valid input for ztunnel's LOCAL_XDS_PATH.
        res.writeHead(200, { "content-type": "application/yaml" });
        res.end(serializeLocalXds(ctx.state.config));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`${JSON.stringify(ztunnelConfigDump(ctx), null, 2)}\n`);
      }
    } else if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(
        "ztunnel admin (ambientkit reference)\n/config_dump                   workloads, services, policies, certificates, in-pod workloadState (JSON, ztunnel's shape)\n/config_dump?format=local_xds  the same state as LOCAL_XDS YAML\n/certs                         issued workload identities\n",
      );
    } else if (url.pathname === "/certs") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ identities: ctx.certs.identities() }, null, 2));
    } else {
      res.writeHead(404).end();
    }
  });
}
