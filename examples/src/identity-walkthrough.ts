// `npm start`: a real walk through @ambientkit/identity. It creates an Istio-style CA, issues an
// X.509-SVID for a ztunnel-style P-256 CSR, verifies it against the trust bundle of its trust
// domain, and runs a TLS 1.3 mutual-TLS handshake on 127.0.0.1 with HBONE's settings.
// Exits non-zero if any step misbehaves.
import { connect } from "node:tls";
import { pathToFileURL } from "node:url";
import {
  CertificateAuthority,
  createCsr,
  decodePemCertificates,
  exportPrivateKeyPem,
  generateKeyPair,
  istioIdentity,
  TrustBundle,
  TrustBundleSet,
  verifyX509Svid,
} from "@ambientkit/identity";
import {
  createHboneTlsServer,
  hboneClientTlsOptions,
  type MtlsIdentity,
  peerIdentity,
} from "@ambientkit/identity/node";

/** What the walkthrough observed; the test asserts on it. */
export interface WalkthroughResult {
  trustDomain: string;
  clientIdentity: string;
  serverIdentity: string;
  chainLength: number;
  verifiedIdentity: string;
  foreignBundleRejected: string;
  tls: {
    protocol: string;
    cipher: string;
    alpn: string;
    serverSawClient: string;
    clientSawServer: string;
  };
}

export async function runWalkthrough(
  log: (line: string) => void = () => {},
): Promise<WalkthroughResult> {
  const trustDomain = "cluster.local";
  const clientId = istioIdentity(trustDomain, "default", "sleep").toString();
  const serverId = istioIdentity(trustDomain, "default", "httpbin").toString();

  // 1. istiod's self-signed CA: RSA 2048, O=<trust domain>, 10 years.
  const ca = await CertificateAuthority.createRoot({ trustDomain });
  log(
    `1. created root CA "O=${ca.trustDomain}" (${ca.keyAlgorithm}), valid until ${ca.notAfter.toISOString()}`,
  );

  // 2. What ztunnel does for a pod: a P-256 key and a CSR with an empty subject and one URI SAN.
  const key = await generateKeyPair("ec-p256");
  const csrPem = await createCsr(clientId, key);
  // istiod takes the identity from the authenticated caller, never from the CSR.
  const issued = await ca.sign(csrPem, { identity: clientId });
  log(
    `2. signed a ztunnel-style P-256 CSR for ${issued.identity}: serial ${issued.serialNumber}, ` +
      `${issued.notBefore.toISOString()} → ${issued.notAfter.toISOString()}, chain of ${issued.chain.length} (leaf … root)`,
  );

  // 3. Verify as a relying party: the bundle is picked by the leaf's trust domain.
  const bundles = new TrustBundleSet([TrustBundle.fromPem(trustDomain, issued.rootCertPem)]);
  const verified = await verifyX509Svid(decodePemCertificates(issued.certChainPem), bundles);
  log(`3. verified the X509-SVID against the ${trustDomain} bundle: ${verified.id}`);

  // ...and a different CA's bundle for the same trust domain must not accept it.
  const other = await CertificateAuthority.createRoot({ trustDomain, keyAlgorithm: "ec-p256" });
  const foreign = new TrustBundleSet([TrustBundle.fromPem(trustDomain, other.rootCertPem)]);
  const rejection = await verifyX509Svid(decodePemCertificates(issued.certChainPem), foreign).then(
    () => {
      throw new Error("a chain from another CA was accepted");
    },
    (error: Error & { code?: string }) => error,
  );
  log(`   a bundle from another CA rejects it: ${rejection.code} — ${rejection.message}`);

  // 4. Mutual TLS as HBONE does it: TLS 1.3 only, AES-GCM, ALPN h2, no SNI, client cert required.
  const client: MtlsIdentity = {
    certChainPem: issued.certChainPem,
    privateKeyPem: await exportPrivateKeyPem(key),
  };
  const server = await ca.issue(serverId); // key + CSR + sign in one call
  const serverTls: MtlsIdentity = {
    certChainPem: server.certChainPem,
    privateKeyPem: server.privateKeyPem,
  };

  const rejects: Error[] = [];
  let serverSawClient = "";
  const listener = createHboneTlsServer(
    { identity: serverTls, trustBundles: bundles, onReject: (e) => rejects.push(e) },
    (socket, peer) => {
      serverSawClient = peer.identity;
      socket.on("error", () => {});
      socket.end(`hello ${peer.identity}\n`);
    },
  );
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as { port: number }).port;
  try {
    const tls = await new Promise<WalkthroughResult["tls"]>((resolve, reject) => {
      const socket = connect({
        host: "127.0.0.1",
        port,
        ...hboneClientTlsOptions({
          identity: client,
          trustBundles: bundles,
          expectedIdentities: [serverId],
        }),
      });
      socket.setTimeout(5000, () => socket.destroy(new Error("TLS walkthrough timed out")));
      let greeting = "";
      let info: Omit<WalkthroughResult["tls"], "serverSawClient"> | undefined;
      socket.on("secureConnect", () => {
        info = {
          protocol: socket.getProtocol() ?? "",
          cipher: socket.getCipher().standardName,
          alpn: String(socket.alpnProtocol),
          clientSawServer: peerIdentity(socket) ?? "",
        };
      });
      socket.on("data", (d) => {
        greeting += d.toString();
      });
      socket.on("error", reject);
      socket.on("close", () => {
        if (info === undefined || greeting !== `hello ${clientId}\n`) {
          reject(
            new Error(
              `mTLS exchange failed (greeting ${JSON.stringify(greeting)}, server rejects: ${rejects.map((e) => e.message).join("; ")})`,
            ),
          );
        } else {
          resolve({ ...info, serverSawClient });
        }
      });
    });
    log(
      `4. mTLS on 127.0.0.1:${port}: ${tls.protocol} ${tls.cipher} ALPN ${tls.alpn}; ` +
        `server saw ${tls.serverSawClient}, client saw ${tls.clientSawServer}`,
    );
    return {
      trustDomain,
      clientIdentity: clientId,
      serverIdentity: serverId,
      chainLength: issued.chain.length,
      verifiedIdentity: verified.id.toString(),
      foreignBundleRejected: rejection.code ?? "",
      tls,
    };
  } finally {
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runWalkthrough((line) => process.stdout.write(`${line}\n`)).then(
    (r) => {
      const ok =
        r.verifiedIdentity === r.clientIdentity &&
        r.tls.protocol === "TLSv1.3" &&
        r.tls.alpn === "h2" &&
        r.tls.serverSawClient === r.clientIdentity &&
        r.tls.clientSawServer === r.serverIdentity;
      process.stdout.write(ok ? "walkthrough OK\n" : "walkthrough FAILED: unexpected result\n");
      process.exitCode = ok ? 0 : 1;
    },
    (error: unknown) => {
      process.stderr.write(
        `walkthrough FAILED: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
