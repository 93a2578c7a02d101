// The xDS client's apply path (decode → convert → state store) against decoding the same protobufs
// alone: a 10,000-workload initial push, then 1,000 single-workload updates (O(changed): an update
// must cost ≤ 2× decoding it, whatever the state size), and readiness after connect over real gRPC
// on loopback with 10,000 workloads (target < 1 s).
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  AggregatedDiscoveryService,
  applyDeltaResponse,
  type DeltaDiscoveryResponse,
  DeltaDiscoveryResponseSchema,
  DeltaXdsClient,
  MeshStateStore,
  ztunnelNode,
} from "@ambientkit/xds";
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  createMessage,
  decodeAddress,
  encodeAddress,
  workloadProto,
} from "@ambientkit/xds-types";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

const wl = workloadProto;

function workloadAddress(i: number, revision = "v1"): Uint8Array {
  return encodeAddress(
    createMessage(wl.AddressSchema, {
      type: {
        case: "workload",
        value: createMessage(wl.WorkloadSchema, {
          uid: `Kubernetes//Pod/ns-${i % 100}/app-${i}`,
          name: `app-${i}`,
          namespace: `ns-${i % 100}`,
          addresses: [new Uint8Array([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])],
          tunnelProtocol: wl.TunnelProtocol.HBONE,
          trustDomain: "cluster.local",
          serviceAccount: `sa-${i % 50}`,
          node: `node-${i % 20}`,
          canonicalName: `app-${i % 500}`,
          canonicalRevision: revision,
          workloadName: `app-${i % 500}`,
          services: {
            [`ns-${i % 100}/svc-${i % 1000}.ns-${i % 100}.svc.cluster.local`]: createMessage(
              wl.PortListSchema,
              {
                ports: [createMessage(wl.PortSchema, { servicePort: 80, targetPort: 8080 })],
              },
            ),
          },
          clusterId: "Kubernetes",
        }),
      },
    }),
  );
}

function response(
  first: number,
  count: number,
  nonce: string,
  revision = "v1",
): DeltaDiscoveryResponse {
  return create(DeltaDiscoveryResponseSchema, {
    typeUrl: ADDRESS_TYPE_URL,
    nonce,
    resources: Array.from({ length: count }, (_, k) => {
      const i = first + k;
      return {
        name: `Kubernetes//Pod/ns-${i % 100}/app-${i}`,
        version: revision,
        resource: { typeUrl: ADDRESS_TYPE_URL, value: workloadAddress(i, revision) },
      };
    }),
  });
}

const authzEmpty = (nonce: string): DeltaDiscoveryResponse =>
  create(DeltaDiscoveryResponseSchema, { typeUrl: AUTHORIZATION_TYPE_URL, nonce });

/** Decoding alone: the response, then every resource's Address message. */
function decodeOnly(bytes: Uint8Array): number {
  const res = fromBinary(DeltaDiscoveryResponseSchema, bytes);
  let n = 0;
  for (const r of res.resources)
    if (r.resource !== undefined && decodeAddress(r.resource.value).type.case) n++;
  return n;
}

function applyBytes(state: MeshStateStore, bytes: Uint8Array): void {
  const r = applyDeltaResponse(state, fromBinary(DeltaDiscoveryResponseSchema, bytes), ["address"]);
  if (!r.ok) throw r.error;
}

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const N = 10_000;
const UPDATES = 1_000;

function initialPush(): BenchGroup {
  const bytes = toBinary(DeltaDiscoveryResponseSchema, response(0, N, "initial"));
  return {
    name: "xds/initial-push-10k",
    target:
      "apply a 10,000-workload initial push: time and memory vs decoding the same protobufs alone",
    cases: [],
    async measure(): Promise<MeasureRow[]> {
      const decode: number[] = [];
      const apply: number[] = [];
      for (let round = 0; round < 7; round++) {
        decode.push(timeMs(() => decodeOnly(bytes)));
        apply.push(timeMs(() => applyBytes(new MeshStateStore(), bytes)));
      }
      const base = heapMiB();
      const decoded = fromBinary(DeltaDiscoveryResponseSchema, bytes).resources.map((r) =>
        decodeAddress(r.resource?.value ?? new Uint8Array()),
      );
      const decodedHeap = heapMiB() - base;
      const base2 = heapMiB();
      const state = new MeshStateStore();
      applyBytes(state, bytes);
      const stateHeap = heapMiB() - base2;
      if (state.workloadCount !== N || decoded.length !== N) throw new Error("bench: wrong count");
      return [
        {
          name: `push size (${N.toLocaleString("en-US")} workloads)`,
          value: bytes.byteLength / 1024 / 1024,
          unit: "MiB",
        },
        { name: "decode alone (median of 7)", value: median(decode), unit: "ms", peer: true },
        {
          name: "apply: decode + convert + state store (median of 7)",
          value: median(apply),
          unit: "ms",
        },
        { name: "apply / decode", value: median(apply) / median(decode), unit: "×" },
        {
          name: "heap held by the decoded protobufs alone",
          value: decodedHeap,
          unit: "MiB",
          peer: true,
        },
        { name: "heap held by the state store", value: stateHeap, unit: "MiB" },
      ];
    },
  };
}

function updates(): BenchGroup {
  const updateBytes = Array.from({ length: UPDATES }, (_, k) =>
    toBinary(DeltaDiscoveryResponseSchema, response((k * 7) % N, 1, `u${k}`, "v2")),
  );
  const perUpdateUs = (stateSize: number): number => {
    const state = new MeshStateStore();
    applyBytes(state, toBinary(DeltaDiscoveryResponseSchema, response(0, stateSize, "init")));
    const small = updateBytes.map((_, k) =>
      toBinary(DeltaDiscoveryResponseSchema, response((k * 7) % stateSize, 1, `s${k}`, "v2")),
    );
    const t0 = performance.now();
    for (const b of small) applyBytes(state, b);
    return ((performance.now() - t0) * 1000) / UPDATES;
  };
  return {
    name: "xds/updates",
    target:
      "1,000 single-workload updates on a 10,000-workload state: one update ≤ 2× the cost of decoding it; cost independent of state size",
    cases: [],
    async measure(): Promise<MeasureRow[]> {
      const decode: number[] = [];
      const apply10k: number[] = [];
      const apply100: number[] = [];
      for (let round = 0; round < 5; round++) {
        const t0 = performance.now();
        for (const b of updateBytes) decodeOnly(b);
        decode.push(((performance.now() - t0) * 1000) / UPDATES);
        apply10k.push(perUpdateUs(N));
        apply100.push(perUpdateUs(100));
      }
      return [
        {
          name: "decode one update alone (median of 5 × 1,000)",
          value: median(decode),
          unit: "µs",
          peer: true,
        },
        { name: "apply one update, 10,000-workload state", value: median(apply10k), unit: "µs" },
        { name: "apply one update, 100-workload state", value: median(apply100), unit: "µs" },
        {
          name: "apply / decode (10,000-workload state)",
          value: median(apply10k) / median(decode),
          unit: "×",
        },
        {
          name: "apply at 10,000 / apply at 100 workloads",
          value: median(apply10k) / median(apply100),
          unit: "×",
        },
      ];
    },
  };
}

async function readiness(): Promise<BenchGroup> {
  const initial = response(0, N, "initial");
  const routes = (router: ConnectRouter): void => {
    router.service(AggregatedDiscoveryService, {
      async *deltaAggregatedResources(requests) {
        for await (const r of requests) {
          if (r.responseNonce !== "") continue; // an ACK
          yield r.typeUrl === ADDRESS_TYPE_URL ? initial : authzEmpty("a1");
        }
      },
    });
  };
  const server: Http2Server = createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    name: "xds/readiness-10k",
    target: "readiness after connect with 10,000 workloads < 1 s (real gRPC on loopback)",
    cases: [],
    async measure(): Promise<MeasureRow[]> {
      const times: number[] = [];
      for (let round = 0; round < 7; round++) {
        const state = new MeshStateStore();
        const client = new DeltaXdsClient({
          address: `http://127.0.0.1:${port}`,
          node: ztunnelNode({
            instanceIp: "10.0.0.1",
            podName: "zt",
            podNamespace: "istio-system",
          }),
          state,
        });
        const t0 = performance.now();
        client.start();
        await client.ready();
        times.push(performance.now() - t0);
        await client.close();
        if (state.workloadCount !== N) throw new Error("bench: incomplete state");
      }
      return [
        {
          name: "connect → ready, 10,000 workloads (median of 7)",
          value: median(times),
          unit: "ms",
        },
        { name: "worst of 7", value: Math.max(...times), unit: "ms" },
      ];
    },
    teardown: () =>
      new Promise<void>((r) => {
        server.close(() => r());
      }),
  };
}

const suite: BenchSuite = {
  package: "xds",
  async groups() {
    return [initialPush(), updates(), await readiness()];
  },
};
export default suite;
