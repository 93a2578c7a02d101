// A network namespace made to look like an ambient pod: the capture rules istio-cni installs in a
// pod for an in-pod ztunnel (per ztunnel's scripts/ztunnel-redirect-inpod.sh; facts, our layout).
import { execFileSync } from "node:child_process";
import { run } from "./netns.testutil.js";

/** ztunnel's in-pod ports and marks. */
export const INPOD = {
  outbound: 15001,
  inboundPlaintext: 15006,
  inboundHbone: 15008,
  /** SO_MARK of ztunnel's own sockets: the rules never redirect them. */
  mark: "0x539/0xfff",
  /** Connmark of connections ztunnel opened towards the pod (spoofed source): replies go back to it. */
  connmark: "0x111/0xfff",
  routeTable: "100",
} as const;

/** [table, rule] pairs in iptables-restore syntax; chains ISTIO_PRERT and ISTIO_OUTPUT per table. */
const RULES: [table: "mangle" | "nat", rule: string][] = [
  ["mangle", "-A PREROUTING -j ISTIO_PRERT"],
  ["mangle", "-A OUTPUT -j ISTIO_OUTPUT"],
  // Replies of the app to a connection ztunnel made with a spoofed source carry the connmark back
  // as a packet mark, which routes them to the local ztunnel socket (table 100) instead of out.
  [
    "mangle",
    `-A ISTIO_OUTPUT -m connmark --mark ${INPOD.connmark} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`,
  ],
  [
    "mangle",
    `-A ISTIO_PRERT -m mark --mark ${INPOD.mark} -j CONNMARK --set-xmark ${INPOD.connmark}`,
  ],
  ["nat", "-A OUTPUT -j ISTIO_OUTPUT"],
  ["nat", "-A PREROUTING -j ISTIO_PRERT"],
  ["nat", `-A ISTIO_OUTPUT -p tcp -m mark --mark ${INPOD.connmark} -j ACCEPT`],
  // the pod talking to its own IP goes over lo: not outbound traffic
  ["nat", "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT"],
  // everything else the app sends over TCP: to ztunnel's outbound port
  [
    "nat",
    `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${INPOD.mark} -j REDIRECT --to-ports ${INPOD.outbound}`,
  ],
  // everything arriving over TCP except HBONE: to ztunnel's inbound plaintext port
  [
    "nat",
    `-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport ${INPOD.inboundHbone} -m mark ! --mark ${INPOD.mark} -j REDIRECT --to-ports ${INPOD.inboundPlaintext}`,
  ],
];

/** Installs the in-pod capture rules and policy routing in namespace `ns` (an `ip netns` name). */
export function installInpodCapture(ns: string): void {
  let input = "";
  for (const table of ["mangle", "nat"] as const) {
    input += `*${table}\n:ISTIO_PRERT - [0:0]\n:ISTIO_OUTPUT - [0:0]\n`;
    for (const [t, rule] of RULES) if (t === table) input += `${rule}\n`;
    input += "COMMIT\n";
  }
  execFileSync("ip", ["netns", "exec", ns, "iptables-restore", "--noflush"], {
    input,
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 10_000,
  });
  run("ip", [
    "-n",
    ns,
    "route",
    "add",
    "local",
    "0.0.0.0/0",
    "dev",
    "lo",
    "table",
    INPOD.routeTable,
  ]);
  run("ip", [
    "-n",
    ns,
    "rule",
    "add",
    "fwmark",
    INPOD.connmark,
    "pref",
    "32764",
    "lookup",
    INPOD.routeTable,
  ]);
}
