// netnsInterfaces and Netns.check on real namespaces: what the ZdsClient's netns check relies on.
import { closeSync, fstatSync, openSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns, netnsInterfaces } from "./netns.js";
import { threadNetns } from "./netns.testutil.js";
import { createPodNetwork, type Pod, type PodNetwork, privileged, run } from "./testing.js";

describe.skipIf(!privileged())("netnsInterfaces and Netns.check", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;

  beforeAll(() => {
    network = createPodNetwork(2, { capture: false });
    [a, b] = network.pods as [Pod, Pod];
  });

  afterAll(() => {
    network?.delete();
  });

  it("lists the namespace's own interfaces, not the caller's, and sees a deleted veth go", () => {
    const home = threadNetns();
    const ns = Netns.open(a.path);
    try {
      const names = netnsInterfaces(ns);
      expect(names).toContain("lo");
      expect(names.filter((n) => n !== "lo")).toHaveLength(1); // the veth to the bridge
      expect(netnsInterfaces(b.path).filter((n) => n !== "lo")).toHaveLength(1);
      expect(threadNetns()).toBe(home); // back where it started
      // the pod's network torn down: the veth deleted from the other side (the bridge's)
      expect(names).toContain(a.dev);
      run("ip", ["-n", network.bridge, "link", "del", a.bridgeDev]);
      expect(netnsInterfaces(ns)).toEqual(["lo"]);
      ns.check(); // still a namespace, only its network is gone
    } finally {
      ns.close();
    }
  });

  it("check() throws once the fd was closed behind the Netns, and close() then leaves the number alone", () => {
    const ns = Netns.open(a.path);
    closeSync(ns.fd);
    const other = openSync("/dev/null", "r"); // most likely the same number
    try {
      expect(() => ns.check()).toThrow(InpodError);
      ns.close();
      expect(fstatSync(other).isCharacterDevice()).toBe(true); // not closed by ns.close()
    } finally {
      closeSync(other);
    }
  });
});
