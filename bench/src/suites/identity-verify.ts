// @ambientkit/identity relying-party costs: verifying a peer's X509-SVID chain (Istio shape: P-256
// leaf + intermediate, root in the trust bundle, every X509-SVID rule checked) and parsing SPIFFE
// IDs. No SPIFFE verifier exists on npm to compare with (go-spiffe is Go), so the peers are the
// closest baselines: node:crypto checking the same two signatures with no SPIFFE rules, and the
// WHATWG URL parser with no SPIFFE rules.
import { X509Certificate as NodeX509Certificate } from "node:crypto";
import {
  CertificateAuthority,
  createCsr,
  decodePemCertificates,
  generateKeyPair,
  parseIstioIdentity,
  parseSpiffeId,
  TrustBundle,
  verifyX509Svid,
} from "@ambientkit/identity";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

/** More distinct leaves than the verifier's parse cache holds (512), cycled in order. */
const COLD_LEAVES = 600;

interface Fixture {
  bundle: TrustBundle;
  chain: Uint8Array[];
  coldLeaves: Uint8Array[];
  node: { leaf: NodeX509Certificate; intermediate: NodeX509Certificate; root: NodeX509Certificate };
}

let fixture: Promise<Fixture> | undefined;

async function setup(): Promise<Fixture> {
  const root = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const ca = await root.createIntermediate({ commonName: "intermediate" });
  const issued = await ca.issue("spiffe://cluster.local/ns/default/sa/sleep");
  const chain = decodePemCertificates(issued.certChainPem);
  const bundle = TrustBundle.fromPem("cluster.local", issued.rootCertPem);
  const key = await generateKeyPair("ec-p256");
  const coldLeaves: Uint8Array[] = [];
  for (let i = 0; i < COLD_LEAVES; i++) {
    const identity = `spiffe://cluster.local/ns/ns-${i}/sa/sa-${i}`;
    const signed = await ca.sign(await createCsr(identity, key), { identity });
    coldLeaves.push(decodePemCertificates(signed.certificatePem)[0] as Uint8Array);
  }
  const [leafDer, intDer] = chain as [Uint8Array, Uint8Array];
  const rootDer = decodePemCertificates(issued.rootCertPem)[0] as Uint8Array;
  return {
    bundle,
    chain,
    coldLeaves,
    node: {
      leaf: new NodeX509Certificate(leafDer),
      intermediate: new NodeX509Certificate(intDer),
      root: new NodeX509Certificate(rootDer),
    },
  };
}

const get = (): Promise<Fixture> => {
  fixture ??= setup();
  return fixture;
};

const IDS = [
  "spiffe://cluster.local/ns/default/sa/sleep",
  "spiffe://cluster.local/ns/istio-system/sa/ztunnel",
  "spiffe://k8s-west.example.com/ns/staging/sa/bookinfo-productpage",
  "spiffe://td/ns/a/sa/b",
];

const suite: BenchSuite = {
  package: "identity",
  async groups(): Promise<BenchGroup[]> {
    let cold = 0;
    let idIndex = 0;
    return [
      {
        name: "identity/svid-verify",
        target: "SVID chain verifications/s (leaf + intermediate, P-256, all X509-SVID rules)",
        timeMs: 2000,
        cases: [
          {
            name: "ambientkit verifyX509Svid, same chain again (parse + signature results cached)",
            fn: async () => {
              const f = await get();
              await verifyX509Svid(f.chain, f.bundle);
            },
          },
          {
            name: "ambientkit verifyX509Svid, new leaf each time (cold leaf)",
            fn: async () => {
              const f = await get();
              const leaf = f.coldLeaves[cold++ % COLD_LEAVES] as Uint8Array;
              await verifyX509Svid([leaf, f.chain[1] as Uint8Array], f.bundle);
            },
          },
          {
            name: "node:crypto 2 signatures + validity, no SPIFFE rules",
            peer: true,
            fn: async () => {
              const { leaf, intermediate, root } = (await get()).node;
              const now = Date.now();
              const ok =
                leaf.checkIssued(intermediate) &&
                leaf.verify(intermediate.publicKey) &&
                intermediate.checkIssued(root) &&
                intermediate.verify(root.publicKey) &&
                Date.parse(leaf.validTo) > now &&
                Date.parse(intermediate.validTo) > now;
              if (!ok) throw new Error("baseline chain did not verify");
            },
          },
        ],
        // WebCrypto verifies on the libuv thread pool: with several handshakes in flight the
        // cold-leaf rate is higher than one-at-a-time above.
        measure: async (): Promise<MeasureRow[]> => {
          const f = await get();
          const rows: MeasureRow[] = [];
          for (const inFlight of [1, 16]) {
            let next = 0;
            const total = 1200;
            const start = performance.now();
            await Promise.all(
              Array.from({ length: inFlight }, async () => {
                while (next < total) {
                  const leaf = f.coldLeaves[next++ % COLD_LEAVES] as Uint8Array;
                  await verifyX509Svid([leaf, f.chain[1] as Uint8Array], f.bundle);
                }
              }),
            );
            rows.push({
              name: `ambientkit verifyX509Svid, cold leaf, ${inFlight} in flight`,
              value: total / ((performance.now() - start) / 1000),
              unit: "verifications/s",
            });
          }
          return rows;
        },
      },
      {
        name: "identity/spiffe-id-parse",
        target: "SPIFFE ID parses/s",
        ratio: { ours: "ambientkit parseSpiffeId", peer: "WHATWG new URL(), no SPIFFE rules" },
        cases: [
          {
            name: "ambientkit parseSpiffeId",
            fn: () => parseSpiffeId(IDS[idIndex++ & 3] as string),
          },
          {
            name: "ambientkit parseIstioIdentity",
            fn: () => parseIstioIdentity(IDS[idIndex++ & 3] as string),
          },
          {
            name: "WHATWG new URL(), no SPIFFE rules",
            peer: true,
            fn: () => new URL(IDS[idIndex++ & 3] as string),
          },
        ],
      },
    ];
  },
};

export default suite;
