// The state store: both sources through the same conversion, replace vs delta, events, indexes
// kept in step, readiness.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  type AddressResource,
  addressFromProto,
  addressToProto,
  decodeAddress,
  encodeAddress,
  type LocalConfig,
  type Workload,
} from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { describe, expect, it } from "vitest";
import { MeshStateStore, type Named, type StateEvent } from "./state.js";

const localhost = fileURLToPath(
  new URL("../../xds-types/src/workload/testdata/localhost.yaml", import.meta.url),
);

function loadFile(): LocalConfig {
  const text = readFileSync(localhost, "utf8");
  const r = parseLocalXds(text);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
}

function workload(i: number, extra: Partial<Workload> = {}): Workload {
  // Built through the wire conversion, as both sources do.
  const base = loadFile().workloads[0] as Workload;
  const w: Workload = {
    ...base,
    uid: `Kubernetes//Pod/ns/w-${i}`,
    name: `w-${i}`,
    workloadIps: [`10.1.${i >> 8}.${i & 255}`],
    ...extra,
  };
  return (
    addressFromProto(
      decodeAddress(encodeAddress(addressToProto({ kind: "workload", workload: w }))),
    ) as {
      workload: Workload;
    }
  ).workload;
}

const named = (w: Workload, version = "v1"): Named<AddressResource> => ({
  name: w.uid,
  version,
  value: { kind: "workload", workload: w },
});

describe("MeshStateStore", () => {
  it("loads a LOCAL_XDS file and indexes workloads, services and policies", () => {
    const s = new MeshStateStore();
    const events = s.loadLocalConfig(loadFile());
    expect(s.workloadCount).toBe(2);
    expect(s.workloadByIp("127.0.0.2")?.name).toBe("local-tcp");
    expect(s.serviceByVip("127.10.0.1")?.hostname).toBe("example.com");
    expect(s.service("default/example.com")?.name).toBe("local");
    expect(s.policy("default/deny-9999")?.action).toBe("Allow");
    expect(events.filter((e) => e.op === "add")).toHaveLength(events.length);
    expect(s.isReady()).toBe(true);
    // The snapshot round-trips what was loaded.
    expect(
      s
        .snapshot()
        .workloads.map((w) => w.uid)
        .sort(),
    ).toEqual(
      loadFile()
        .workloads.map((w) => w.uid)
        .sort(),
    );
  });

  it("reloading a file replaces: what is gone is removed, what changed is an update", () => {
    const s = new MeshStateStore();
    s.loadLocalConfig(loadFile());
    const cfg = loadFile();
    const [first] = cfg.workloads as [Workload];
    const next: LocalConfig = {
      ...cfg,
      workloads: [{ ...first, workloadIps: ["127.0.0.9"] }],
      policies: [],
    };
    const events = s.loadLocalConfig(next);
    expect(events.map((e) => `${e.op} ${e.kind}`).sort()).toEqual([
      "remove policy",
      "remove workload",
      "update workload",
    ]);
    expect(s.workloadByIp("127.0.0.1")).toBeUndefined(); // the old IP left the index
    expect(s.workloadByIp("127.0.0.9")?.uid).toBe(first.uid);
    expect(s.versions("address").get(first.uid)).toBe("local");
  });

  it("a changed IP leaves no stale index entry; a delta removal by name removes the workload", () => {
    const s = new MeshStateStore();
    const w = workload(1);
    s.applyAddresses([named(w)], []);
    s.applyAddresses([named({ ...w, workloadIps: ["10.9.9.9"] }, "v2")], []);
    expect(s.workloadByIp("10.1.0.1")).toBeUndefined();
    expect(s.workloadByIp("10.9.9.9")?.uid).toBe(w.uid);
    const events = s.applyAddresses([], [w.uid, "never-heard-of"]);
    expect(events).toEqual([
      expect.objectContaining({ op: "remove", kind: "workload", key: w.uid }),
    ]);
    expect(s.workloadByIp("10.9.9.9")).toBeUndefined();
    expect(s.versions("address").size).toBe(0);
  });

  it("listeners see each batch once, after it is applied; a throwing listener harms nothing", () => {
    const s = new MeshStateStore();
    const seen: StateEvent[][] = [];
    s.subscribe(() => {
      throw new Error("listener bug");
    });
    const off = s.subscribe((e) => seen.push([...e]));
    s.applyAddresses([named(workload(1)), named(workload(2))], []);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toHaveLength(2);
    off();
    s.applyAddresses([named(workload(3))], []);
    expect(seen).toHaveLength(1);
    expect(s.workloadCount).toBe(3);
  });

  it("an unchanged resend under the same version is no change: no event", () => {
    const s = new MeshStateStore();
    const w = workload(7);
    s.applyAddresses([named(w)], []);
    expect(s.applyAddresses([named(w)], [])).toEqual([]);
    // Same version, other content (a LOCAL_XDS file edited in place): a change.
    expect(s.applyAddresses([named({ ...w, canonicalRevision: "v9" })], [])).toEqual([
      expect.objectContaining({ op: "update", kind: "workload", key: w.uid }),
    ]);
    // A new version is a change without a content comparison (istiod versions are content hashes).
    expect(s.applyAddresses([named({ ...w, canonicalRevision: "v9" }, "v2")], [])).toHaveLength(1);
    expect(s.versions("address").get(w.uid)).toBe("v2");
  });

  it("readiness waits for every subscribed kind", async () => {
    const s = new MeshStateStore();
    let ready = false;
    const p = s.whenReady().then(() => {
      ready = true;
    });
    s.applyAddresses([], []);
    await Promise.resolve();
    expect(ready).toBe(false);
    expect(s.isReady(["address"])).toBe(true);
    s.applyAuthorizations([], []);
    await p;
    expect(ready).toBe(true);
  });
});
