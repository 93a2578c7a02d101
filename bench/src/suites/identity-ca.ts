// @ambientkit/identity CA signing throughput: what istiod does per workload CSR (parse the PEM
// CSR, check its self-signature, sign a leaf with the Istio profile). The peer is node-forge, the
// long-standing pure-JS X.509 library — which cannot read ECDSA keys or CSRs at all (see
// docs/adr/0001-x509-library.md), so it does the same work the only way it can: an RSA-2048 CSR
// signed by an RSA-2048 CA.
import {
  CertificateAuthority,
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
} from "@ambientkit/identity";
import forge from "node-forge";
import type { BenchGroup, BenchSuite } from "../harness.js";

const ID = "spiffe://cluster.local/ns/default/sa/sleep";

interface Fixture {
  ecCa: CertificateAuthority;
  rsaCa: CertificateAuthority;
  p256Csr: string;
  forge: {
    caCert: forge.pki.Certificate;
    caKey: forge.pki.rsa.PrivateKey;
    csrPem: string;
  };
}

async function setup(): Promise<Fixture> {
  const ecCa = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const rsaCa = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "rsa-2048",
  });
  const p256Csr = await createCsr(ID, await generateKeyPair("ec-p256"));

  // node-forge: an RSA-2048 root (from our key, so key generation is not part of the fixture
  // cost difference) and an RSA-2048 CSR with the URI SAN.
  const caKey = forge.pki.privateKeyFromPem(
    await exportPrivateKeyPem((await generateKeyPair("rsa-2048")).privateKey),
  ) as forge.pki.rsa.PrivateKey;
  const caPublic = forge.pki.setRsaPublicKey(caKey.n, caKey.e);
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = caPublic;
  caCert.serialNumber = "01";
  caCert.validity.notBefore = new Date();
  caCert.validity.notAfter = new Date(Date.now() + 3650 * 24 * 3600_000);
  caCert.setSubject([{ name: "organizationName", value: "cluster.local" }]);
  caCert.setIssuer([{ name: "organizationName", value: "cluster.local" }]);
  caCert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, critical: true },
  ]);
  caCert.sign(caKey, forge.md.sha256.create());
  const leafKey = forge.pki.privateKeyFromPem(
    await exportPrivateKeyPem((await generateKeyPair("rsa-2048")).privateKey),
  ) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(leafKey.n, leafKey.e);
  csr.setAttributes([
    {
      name: "extensionRequest",
      extensions: [{ name: "subjectAltName", critical: true, altNames: [{ type: 6, value: ID }] }],
    },
  ]);
  csr.sign(leafKey, forge.md.sha256.create());
  return {
    ecCa,
    rsaCa,
    p256Csr,
    forge: { caCert, caKey, csrPem: forge.pki.certificationRequestToPem(csr) },
  };
}

/** node-forge doing istiod's steps: parse the CSR, check it, issue the Istio leaf profile. */
function forgeSign(f: Fixture["forge"]): string {
  const csr = forge.pki.certificationRequestFromPem(f.csrPem);
  if (!csr.verify()) throw new Error("forge: CSR signature invalid");
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey as forge.pki.rsa.PublicKey;
  cert.serialNumber = forge.util.bytesToHex(forge.random.getBytesSync(16)).replace(/^[89a-f]/, "7");
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 120_000);
  cert.validity.notAfter = new Date(now + 24 * 3600_000);
  cert.setSubject([]);
  cert.setIssuer(f.caCert.subject.attributes);
  cert.setExtensions([
    { name: "keyUsage", critical: true, digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "basicConstraints", critical: true, cA: false },
    { name: "subjectAltName", critical: true, altNames: [{ type: 6, value: ID }] },
  ]);
  cert.sign(f.caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

const suite: BenchSuite = {
  package: "identity",
  async groups(): Promise<BenchGroup[]> {
    const f = await setup();
    // sanity: both produce certificates before we time them
    await f.ecCa.sign(f.p256Csr, { identity: ID });
    forgeSign(f.forge);
    return [
      {
        name: "identity/ca-sign",
        target: "P-256 CSR signs/s with ambientkit ≥ 10× node-forge RSA-2048 certificate signing",
        ratio: {
          ours: "ambientkit P-256 CSR → leaf (P-256 CA)",
          peer: "node-forge RSA-2048 CSR → leaf (RSA-2048 CA)",
        },
        timeMs: 2000,
        cases: [
          {
            name: "ambientkit P-256 CSR → leaf (P-256 CA)",
            fn: () => f.ecCa.sign(f.p256Csr, { identity: ID }),
          },
          {
            name: "ambientkit P-256 CSR → leaf (RSA-2048 CA, istiod's default root)",
            fn: () => f.rsaCa.sign(f.p256Csr, { identity: ID }),
          },
          {
            name: "node-forge RSA-2048 CSR → leaf (RSA-2048 CA)",
            peer: true,
            fn: () => forgeSign(f.forge),
          },
        ],
      },
    ];
  },
};

export default suite;
