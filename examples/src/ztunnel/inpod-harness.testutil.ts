// Real pods for the in-pod ztunnel tests and bench: network namespaces joined by veth pairs to a
// bridge namespace (10.214.0.0/24 and fd00:214::/64, ULA: neither routes anywhere outside them),
// istio-cni's in-pod capture rules (ztunnel's scripts/ztunnel-redirect-inpod.sh, as packages/inpod's
// harness installs them; the same rules for IPv6 with ip6tables, as istio-cni applies them) inside
// each pod, and a fake istio-cni node agent (packages/inpod's testdata/fake_node_agent.py: its own
// SEQPACKET server, protobuf by field number, netns fds by SCM_RIGHTS). Every name carries a random
// tag; delete() removes everything even after a failed setup.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** Set on machines that lack root: the namespace tests are then not run (and say so). */
export const NO_PRIVILEGE_ENV = "AMBIENTKIT_INPOD_NO_NETNS_PRIVILEGE";

/** True when the privileged tests should run; throws when they should but cannot. */
export function privileged(): boolean {
  if (process.env[NO_PRIVILEGE_ENV] === "1") return false;
  if (process.platform !== "linux") throw new Error("the in-pod ztunnel tests need Linux");
  if (process.getuid?.() !== 0) {
    throw new Error(
      `needs root (CI runs as root): network namespaces, veth and iptables; set ${NO_PRIVILEGE_ENV}=1 only on a machine that lacks the privilege`,
    );
  }
  return true;
}

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 10_000,
    ...(input !== undefined ? { input } : {}),
  });
}

export interface Pod {
  /** `ip netns` name; its file is `path`. */
  readonly ns: string;
  readonly path: string;
  readonly ip: string;
  /** The pod's IPv6 address (fd00:214::/64). */
  readonly ip6: string;
  /** Its end of the veth pair (CNI DEL deletes it). */
  readonly dev: string;
}

export interface PodNetwork {
  readonly pods: Pod[];
  /** Adds one more pod on the bridge (index = its position in `pods`). */
  addPod(capture?: boolean): Pod;
  delete(): void;
}

const MARK = "0x539/0xfff";
const CONNMARK = "0x111/0xfff";

/**
 * iptables-restore input of istio-cni's in-pod rules (chains ISTIO_PRERT / ISTIO_OUTPUT); for
 * ip6tables-restore the same rules with `::1/128` as the loopback address.
 */
function captureRules(family: 4 | 6): string {
  const rules: [string, string][] = [
    ["mangle", "-A PREROUTING -j ISTIO_PRERT"],
    ["mangle", "-A OUTPUT -j ISTIO_OUTPUT"],
    // replies of the app to ztunnel's spoofed-source connections go back to ztunnel's socket
    [
      "mangle",
      `-A ISTIO_OUTPUT -m connmark --mark ${CONNMARK} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`,
    ],
    ["mangle", `-A ISTIO_PRERT -m mark --mark ${MARK} -j CONNMARK --set-xmark ${CONNMARK}`],
    ["nat", "-A OUTPUT -j ISTIO_OUTPUT"],
    ["nat", "-A PREROUTING -j ISTIO_PRERT"],
    ["nat", `-A ISTIO_OUTPUT -p tcp -m mark --mark ${CONNMARK} -j ACCEPT`],
    ["nat", "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT"],
    [
      "nat",
      `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${MARK} -j REDIRECT --to-ports 15001`,
    ],
    [
      "nat",
      `-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark ${MARK} -j REDIRECT --to-ports 15006`,
    ],
  ];
  let input = "";
  for (const table of ["mangle", "nat"]) {
    input += `*${table}\n:ISTIO_PRERT - [0:0]\n:ISTIO_OUTPUT - [0:0]\n`;
    for (const [t, rule] of rules)
      if (t === table)
        input += `${family === 6 ? rule.replace("127.0.0.1/32", "::1/128") : rule}\n`;
    input += "COMMIT\n";
  }
  return input;
}

/** Installs the in-pod capture rules and the connmark policy route in pod namespace `ns`. */
export function installCapture(ns: string): void {
  run("ip", ["netns", "exec", ns, "iptables-restore", "--noflush"], captureRules(4));
  run("ip", ["netns", "exec", ns, "ip6tables-restore", "--noflush"], captureRules(6));
  run("ip", ["-n", ns, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"]);
  run("ip", ["-n", ns, "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100"]);
  for (const family of ["-4", "-6"])
    run("ip", [
      "-n",
      ns,
      family,
      "rule",
      "add",
      "fwmark",
      CONNMARK,
      "pref",
      "32764",
      "lookup",
      "100",
    ]);
}

/**
 * A bridge namespace and `count` pods on it (10.214.0.10 and fd00:214::10, .11 and ::11, …),
 * capture rules in each.
 */
export function createPodNetwork(count: number, options: { capture?: boolean } = {}): PodNetwork {
  const tag = randomBytes(3).toString("hex");
  const bridgeNs = `ak-zt-${tag}-br`;
  const pods: Pod[] = [];
  const made: string[] = [];
  const net: PodNetwork = {
    pods,
    addPod(capture = options.capture ?? true): Pod {
      const i = pods.length;
      if (i > 200) throw new Error("the pod network holds at most 200 pods");
      const ns = `ak-zt-${tag}-p${i}`;
      const inPod = `akz${tag}p${i}`;
      const pod: Pod = {
        ns,
        path: `/run/netns/${ns}`,
        ip: `10.214.0.${10 + i}`,
        ip6: `fd00:214::${10 + i}`,
        dev: inPod,
      };
      run("ip", ["netns", "add", ns]);
      made.push(ns);
      const inBr = `akz${tag}b${i}`;
      run("ip", [
        "-n",
        ns,
        "link",
        "add",
        inPod,
        "type",
        "veth",
        "peer",
        "name",
        inBr,
        "netns",
        bridgeNs,
      ]);
      run("ip", ["-n", bridgeNs, "link", "set", inBr, "master", "br0", "up"]);
      run("ip", ["-n", ns, "addr", "add", `${pod.ip}/24`, "dev", inPod]);
      // nodad: usable at once, no duplicate-address-detection wait
      run("ip", ["-n", ns, "addr", "add", `${pod.ip6}/64`, "dev", inPod, "nodad"]);
      run("ip", ["-n", ns, "link", "set", inPod, "up"]);
      run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      if (capture) installCapture(ns);
      pods.push(pod);
      return pod;
    },
    delete(): void {
      for (const ns of [...made].reverse()) {
        try {
          run("ip", ["netns", "delete", ns]);
        } catch {
          // not created: nothing to delete (veths go with their namespace)
        }
      }
      made.length = 0;
    },
  };
  try {
    run("ip", ["netns", "add", bridgeNs]);
    made.push(bridgeNs);
    run("ip", ["-n", bridgeNs, "link", "add", "br0", "type", "bridge"]);
    run("ip", ["-n", bridgeNs, "link", "set", "br0", "up"]);
    for (let i = 0; i < count; i++) net.addPod();
  } catch (err) {
    net.delete();
    throw err;
  }
  return net;
}

const AGENT = fileURLToPath(
  new URL("../../../packages/inpod/src/testdata/fake_node_agent.py", import.meta.url),
);

type Reply = { hello?: string; ack?: string; eof?: boolean; ok?: boolean; listening?: string };

/** The fake istio-cni node agent: one JSON command per line in, one JSON reply per line out. */
export class FakeNodeAgent {
  readonly path: string;
  #proc: ChildProcessWithoutNullStreams;
  #lines: string[] = [];
  #waiters: ((line: string) => void)[] = [];
  #exited: Promise<void>;

  private constructor(proc: ChildProcessWithoutNullStreams, path: string) {
    this.#proc = proc;
    this.path = path;
    this.#exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const w = this.#waiters.shift();
      if (w) w(line);
      else this.#lines.push(line);
    });
  }

  static async start(path: string): Promise<FakeNodeAgent> {
    const proc = spawn("/usr/bin/python3", [AGENT, path], { stdio: "pipe" });
    let stderr = "";
    proc.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const agent = new FakeNodeAgent(proc, path);
    const first = await agent.#next().catch((e: Error) => {
      throw new Error(`fake node agent did not start: ${e.message} ${stderr}`);
    });
    if (first.listening !== path) throw new Error(`fake node agent: ${JSON.stringify(first)}`);
    return agent;
  }

  #next(): Promise<Reply> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line) as Reply);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("no reply from the fake node agent in 12 s")),
        12_000,
      );
      this.#waiters.push((l) => {
        clearTimeout(timer);
        resolve(JSON.parse(l) as Reply);
      });
    });
  }

  async send(cmd: Record<string, unknown>): Promise<Reply> {
    this.#proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    return await this.#next();
  }

  /** Accepts the ztunnel's connection; returns the hex of its ZdsHello. */
  async accept(): Promise<string> {
    const r = await this.send({ op: "accept" });
    return r.hello ?? "";
  }

  /** Sends a request and returns the Ack's error ("" on success). */
  async ack(cmd: Record<string, unknown>): Promise<string> {
    const r = await this.send(cmd);
    if (r.ack === undefined) throw new Error(`expected an Ack, got ${JSON.stringify(r)}`);
    return r.ack;
  }

  /** AddWorkload for `pod` with its netns fd. */
  add(uid: string, info: { name: string; namespace: string; sa: string }, pod: Pick<Pod, "path">) {
    return this.ack({ op: "add", uid, info, fds: [pod.path] });
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode === null) {
      this.#proc.stdin.end(`${JSON.stringify({ op: "quit" })}\n`);
      const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

/** Bounded wait for a condition that settles asynchronously. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}
