// netnsInterfaces and Netns.check on real namespaces: what the ZdsClient's netns check relies on.
import { closeSync, fstatSync, openSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns, netnsInterfaces } from "./netns.js";
import { createNetnsPair, type NetnsPair, privileged, run, threadNetns } from "./netns.testutil.js";

describe.skipIf(!privileged())("netnsInterfaces and Netns.check", () => {
  let pair: NetnsPair;

  beforeAll(() => {
    pair = createNetnsPair();
  });

  afterAll(() => {
    pair?.delete();
  });

  it("lists the namespace's own interfaces, not the caller's, and sees a deleted veth go", () => {
    const home = threadNetns();
    const ns = Netns.open(pair.pathA);
    try {
      const names = netnsInterfaces(ns);
      expect(names).toContain("lo");
      expect(names.filter((n) => n !== "lo")).toHaveLength(1); // the veth to B
      expect(netnsInterfaces(pair.pathB).filter((n) => n !== "lo")).toHaveLength(1);
      expect(threadNetns()).toBe(home); // back where it started
      // the pod's network torn down: the veth deleted from the other side
      const peer = netnsInterfaces(pair.pathB).find((n) => n !== "lo") as string;
      run("ip", ["-n", pair.b, "link", "del", peer]);
      expect(netnsInterfaces(ns)).toEqual(["lo"]);
      ns.check(); // still a namespace, only its network is gone
    } finally {
      ns.close();
    }
  });

  it("check() throws once the fd was closed behind the Netns, and close() then leaves the number alone", () => {
    const ns = Netns.open(pair.pathA);
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
