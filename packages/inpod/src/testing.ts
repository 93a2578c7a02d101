// @ambientkit/inpod/testing — real pods for testing an in-pod ztunnel: network namespaces on a
// bridge of their own (10.214.0.0/24 and fd00:214::/64, which route nowhere outside them), the
// capture rules istio-cni installs in an ambient pod (ztunnel's scripts/ztunnel-redirect-inpod.sh,
// and the same with ip6tables), and a fake istio-cni node agent that hands pods and their netns fds
// over ZDS. For tests only: it needs Linux, root and `ip`, iptables and python3; nothing it makes
// touches the host's own network. Every name carries the pid and a random tag so that parallel
// test files never collide; `delete()` deletes everything made, and a run killed before it leaves
// its namespaces to the next createPodNetwork, which deletes those of processes that are gone.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { InpodError } from "./errors.js";

/** Set to `1` on machines that lack root: `privileged()` is then false instead of throwing. */
export const NO_PRIVILEGE_ENV = "AMBIENTKIT_INPOD_NO_NETNS_PRIVILEGE";

const TOOLS = ["ip", "iptables-restore", "ip6tables-restore", "python3"] as const;

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, tool)));
}

/**
 * Why pods cannot be made here (not Linux, not root, a tool missing), or undefined when they can.
 * Ignores {@link NO_PRIVILEGE_ENV}.
 */
export function missingPrivilege(): string | undefined {
  if (process.platform !== "linux")
    return `network namespaces need Linux; this is ${process.platform}`;
  if (process.getuid?.() !== 0)
    return "needs root: network namespaces, veth and iptables (CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length > 0)
    return `needs ${missing.join(", ")} on PATH (iproute2, iptables, python3)`;
  return undefined;
}

let skipReported = false;

/**
 * Whether tests that make pods should run: false when {@link NO_PRIVILEGE_ENV} is `1`, true when
 * they can; otherwise throws `ERR_INPOD_TESTING` with the reason, so that a CI job missing root
 * fails loudly instead of skipping. For `describe.skipIf(!privileged())`.
 */
export function privileged(): boolean {
  if (process.env[NO_PRIVILEGE_ENV] === "1") {
    // skipped tests say nothing by themselves: say once per process why, and what is missing
    if (!skipReported) {
      skipReported = true;
      process.stderr.write(
        `@ambientkit/inpod/testing: the in-pod tests are not run (${NO_PRIVILEGE_ENV}=1; ${missingPrivilege() ?? "this machine has the privilege: unset it"})\n`,
      );
    }
    return false;
  }
  const reason = missingPrivilege();
  if (reason !== undefined)
    throw new InpodError(
      "ERR_INPOD_TESTING",
      `the in-pod tests cannot run: ${reason}; set ${NO_PRIVILEGE_ENV}=1 only on a machine that lacks the privilege`,
    );
  return true;
}

/** Runs `cmd args…` (10 s at most) and returns its stdout; throws `ERR_INPOD_TESTING` with its stderr. */
export function run(cmd: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      timeout: 10_000,
      ...(input !== undefined ? { input } : {}),
    });
  } catch (cause) {
    const stderr = String((cause as { stderr?: unknown }).stderr ?? "").trim();
    throw new InpodError(
      "ERR_INPOD_TESTING",
      `${cmd} ${args.join(" ")} failed: ${stderr || (cause as Error).message}`,
      { cause },
    );
  }
}

/** ztunnel's in-pod ports and marks, as the capture rules use them. */
export const INPOD = {
  /** Where the rules redirect what the pod's apps send over TCP. */
  outbound: 15001,
  /** Where they redirect TCP arriving at the pod, except HBONE. */
  inboundPlaintext: 15006,
  /** HBONE: arrives untouched. */
  inboundHbone: 15008,
  /** Where the DNS capture rules (opt-in) redirect the pod's DNS, UDP and TCP port 53. */
  dns: 15053,
  /**
   * SO_MARK of ztunnel's own sockets (1337), with istio-cni's mask: the rules never redirect them.
   * `createPodNetwork({ mark })` uses another.
   */
  mark: "0x539/0xfff",
  /** Connmark of connections ztunnel made towards the pod (spoofed source): replies go back to it. */
  connmark: "0x111/0xfff",
  routeTable: "100",
} as const;

/** `--mark` of the rules for ztunnel's mark `mark` (istio-cni's 0xfff mask); throws on a bad one. */
function markMatch(mark: number): string {
  // within the mask, not 0 (unmarked sockets would pass) and not the connmark (its meaning differs)
  if (!Number.isInteger(mark) || mark <= 0 || mark > 0xfff || mark === 0x111)
    throw new InpodError(
      "ERR_INPOD_TESTING",
      `mark ${mark}: expected 1 to 0xfff (the rules match under istio-cni's 0xfff mask), not 0x111 (the connmark)`,
    );
  return `0x${mark.toString(16)}/0xfff`;
}

/** The default ztunnel mark, as a number (1337). */
const DEFAULT_MARK = 0x539;

/** What `installCapture` installs besides the rules every ambient pod gets. */
export interface CaptureOptions {
  /**
   * istio-cni's DNS capture (ambient's DNS proxying on): the pod's UDP and TCP port 53 to
   * {@link INPOD}.dns, and the raw-table conntrack zone for ztunnel's own DNS. Default false.
   */
  readonly dns?: boolean;
}

/**
 * iptables-restore input of istio-cni's in-pod rules, for ztunnel's mark `mark`; for IPv6 with
 * `::1/128` as loopback.
 */
function captureRules(family: 4 | 6, mark: number, dns: boolean): string {
  const ztunnelMark = markMatch(mark);
  // istio-cni's DNS rules (cni/pkg/iptables), before the ACCEPTs below so that they see it all.
  const dnsRules: [table: "raw" | "mangle" | "nat", rule: string][] = !dns
    ? []
    : [
        // UDP: anything not leaving over lo (the pod's own addresses and 127/8 are not DNS to capture)
        [
          "nat",
          `-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark ${ztunnelMark} -m udp --dport 53 -j REDIRECT --to-port ${INPOD.dns}`,
        ],
        [
          "nat",
          `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark ${ztunnelMark} -j REDIRECT --to-ports ${INPOD.dns}`,
        ],
        // ztunnel's own queries upstream and their answers go to conntrack zone 1, so that they
        // never match (and get un-NATed as) an app's redirected flow with the same addresses.
        ["raw", "-A PREROUTING -j ISTIO_PRERT"],
        ["raw", "-A OUTPUT -j ISTIO_OUTPUT"],
        [
          "raw",
          `-A ISTIO_OUTPUT -p udp -m mark --mark ${ztunnelMark} -m udp --dport 53 -j CT --zone 1`,
        ],
        [
          "raw",
          `-A ISTIO_PRERT -p udp -m mark ! --mark ${ztunnelMark} -m udp --sport 53 -j CT --zone 1`,
        ],
      ];
  const rules: [table: "raw" | "mangle" | "nat", rule: string][] = [
    ...dnsRules,
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
      `-A ISTIO_PRERT -m mark --mark ${ztunnelMark} -j CONNMARK --set-xmark ${INPOD.connmark}`,
    ],
    ["nat", "-A OUTPUT -j ISTIO_OUTPUT"],
    ["nat", "-A PREROUTING -j ISTIO_PRERT"],
    ["nat", `-A ISTIO_OUTPUT -p tcp -m mark --mark ${INPOD.connmark} -j ACCEPT`],
    // the pod talking to its own IP goes over lo: not outbound traffic
    ["nat", "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT"],
    [
      "nat",
      `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${ztunnelMark} -j REDIRECT --to-ports ${INPOD.outbound}`,
    ],
    [
      "nat",
      `-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport ${INPOD.inboundHbone} -m mark ! --mark ${ztunnelMark} -j REDIRECT --to-ports ${INPOD.inboundPlaintext}`,
    ],
  ];
  let input = "";
  for (const table of dns ? (["raw", "mangle", "nat"] as const) : (["mangle", "nat"] as const)) {
    input += `*${table}\n:ISTIO_PRERT - [0:0]\n:ISTIO_OUTPUT - [0:0]\n`;
    for (const [t, rule] of rules)
      if (t === table)
        input += `${family === 6 ? rule.replaceAll("127.0.0.1/32", "::1/128") : rule}\n`;
    input += "COMMIT\n";
  }
  return input;
}

/**
 * Installs istio-cni's in-pod capture rules (iptables and ip6tables) and the connmark policy route
 * in namespace `ns` (an `ip netns` name); the rules let pass what carries `mark` (ztunnel's
 * `PACKET_MARK`, default 1337 = 0x539; 1 to 0xfff). `{ dns: true }` adds the DNS capture rules.
 */
export function installCapture(
  ns: string,
  mark: number = DEFAULT_MARK,
  options: CaptureOptions = {},
): void {
  const dns = options.dns ?? false;
  run("ip", ["netns", "exec", ns, "iptables-restore", "--noflush"], captureRules(4, mark, dns));
  run("ip", ["netns", "exec", ns, "ip6tables-restore", "--noflush"], captureRules(6, mark, dns));
  const table = INPOD.routeTable;
  run("ip", ["-n", ns, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", table]);
  run("ip", ["-n", ns, "-6", "route", "add", "local", "::/0", "dev", "lo", "table", table]);
  for (const family of ["-4", "-6"])
    run("ip", [
      "-n",
      ns,
      family,
      "rule",
      "add",
      "fwmark",
      INPOD.connmark,
      "pref",
      "32764",
      "lookup",
      table,
    ]);
}

/** A network namespace made by the harness. */
export interface TestNetns {
  /** Its `ip netns` name. */
  readonly ns: string;
  /** Its file, `/run/netns/<ns>`: what a ZDS AddWorkload carries as an fd. */
  readonly path: string;
}

/** A pod: a namespace with one veth to the bridge, lo up, and the capture rules unless asked not to. */
export interface Pod extends TestNetns {
  /** 10.214.0.10, .11, … in the order the pods were added. */
  readonly ip: string;
  /** fd00:214::10, ::11, … */
  readonly ip6: string;
  /** Its end of the veth pair (its only interface but lo). */
  readonly dev: string;
  /** The other end, on the bridge (in the bridge namespace), as the node's end of a pod's veth. */
  readonly bridgeDev: string;
  /** Whether istio-cni's capture rules are installed in it. */
  readonly captured: boolean;
  /** Whether its capture rules include DNS capture (UDP and TCP 53 to {@link INPOD}.dns). */
  readonly dnsCaptured: boolean;
  /** Runs `cmd args…` inside the pod (`ip netns exec`) and returns its stdout. */
  exec(cmd: string, args: readonly string[], input?: string): string;
}

export interface PodNetworkOptions {
  /** Install istio-cni's capture rules in each pod (default true); `addPod(false)` overrides. */
  readonly capture?: boolean;
  /**
   * ztunnel's packet mark the capture rules let pass (its `PACKET_MARK`; default 0x539 = 1337):
   * for a ztunnel run with another mark. 1 to 0xfff, not 0x111 (the connmark); else
   * `ERR_INPOD_TESTING`.
   */
  readonly mark?: number;
  /**
   * Add istio-cni's DNS capture rules to each captured pod (default false): what a pod gets with
   * ambient DNS proxying on. `addPod({ dnsCapture })` overrides.
   */
  readonly dnsCapture?: boolean;
}

/** Per-pod overrides of the network's {@link PodNetworkOptions}. */
export interface AddPodOptions {
  readonly capture?: boolean;
  readonly dnsCapture?: boolean;
}

/** Pods on one bridge; `delete()` removes every namespace it made. */
export interface PodNetwork {
  /** The random tag in every name it makes. */
  readonly tag: string;
  /** The bridge's namespace (`ip netns` name); the bridge in it is `br0`. */
  readonly bridge: string;
  /** The ztunnel mark its capture rules let pass (0x539 unless `mark` was given). */
  readonly mark: number;
  /** The pods, in the order they were added (removed ones included). */
  readonly pods: readonly Pod[];
  /**
   * Adds a pod on the bridge; `capture` (or the options' `capture`, `dnsCapture`) defaults to the
   * network's options. At most 200 pods.
   */
  addPod(capture?: boolean | AddPodOptions): Pod;
  /** Adds a bare namespace (lo only, down): a pod to hand over ZDS when no traffic is needed. */
  addNamespace(): TestNetns;
  /**
   * What CNI DEL does: deletes the pod's veth, then its namespace file. Whoever holds an fd of the
   * namespace (a ztunnel) keeps it alive, with only lo left in it.
   */
  removePod(pod: Pod): void;
  /** Deletes every namespace of the network (idempotent; what was never made is skipped). */
  delete(): void;
}

const live = new Set<PodNetwork>();
let exitHook = false;

/** Names are `ak-pod-<pid>-<tag>-…`: the pid says whose they are, the tag which network. */
const OWNED = /^ak-pod-(\d+)-[0-9a-f]{6}-/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Deletes the namespaces of processes that are gone: a test runner that kills its workers (vitest
 * does) runs neither afterAll nor exit handlers, so a run killed mid-test leaves its pods to the
 * next. Assumes one pid namespace per /run/netns, as on a CI machine or a dev box.
 */
function deleteOrphans(): void {
  for (const line of run("ip", ["netns", "list"]).split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    const pid = Number(OWNED.exec(ns)?.[1] ?? Number.NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) deleteNetns(ns);
  }
}

function deleteNetns(ns: string): void {
  try {
    run("ip", ["netns", "delete", ns]);
  } catch {
    // already gone (removePod, or never made): nothing to delete; veths go with their namespace
  }
}

/**
 * A bridge namespace and `count` pods on it (pod i: 10.214.0.(10+i) and fd00:214::(10+i)), each
 * with istio-cni's capture rules unless `capture: false`. A setup that fails deletes what it made.
 */
export function createPodNetwork(count: number, options: PodNetworkOptions = {}): PodNetwork {
  const mark = options.mark ?? DEFAULT_MARK;
  markMatch(mark); // a bad mark throws before anything is made
  deleteOrphans();
  const tag = randomBytes(3).toString("hex");
  const prefix = `ak-pod-${process.pid}-${tag}`;
  const bridge = `${prefix}-br`;
  const pods: Pod[] = [];
  const made: string[] = [];
  let bare = 0;
  const net: PodNetwork = {
    tag,
    bridge,
    mark,
    pods,
    addPod(opt?: boolean | AddPodOptions): Pod {
      const o: AddPodOptions = typeof opt === "boolean" ? { capture: opt } : (opt ?? {});
      const capture = o.capture ?? options.capture ?? true;
      const dnsCapture = capture && (o.dnsCapture ?? options.dnsCapture ?? false);
      const i = pods.length;
      if (i >= 200)
        throw new InpodError("ERR_INPOD_TESTING", "a pod network holds at most 200 pods");
      const ns = `${prefix}-p${i}`;
      // interface names are at most 15 bytes: akp + 6 hex + p|b + index
      const dev = `akp${tag}p${i}`;
      const peer = `akp${tag}b${i}`;
      const pod: Pod = {
        ns,
        path: `/run/netns/${ns}`,
        ip: `10.214.0.${10 + i}`,
        ip6: `fd00:214::${10 + i}`,
        dev,
        bridgeDev: peer,
        captured: capture,
        dnsCaptured: dnsCapture,
        exec: (cmd, args, input) => run("ip", ["netns", "exec", ns, cmd, ...args], input),
      };
      run("ip", ["netns", "add", ns]);
      made.push(ns);
      run("ip", [
        "-n",
        ns,
        "link",
        "add",
        dev,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        bridge,
      ]);
      run("ip", ["-n", bridge, "link", "set", peer, "master", "br0", "up"]);
      run("ip", ["-n", ns, "addr", "add", `${pod.ip}/24`, "dev", dev]);
      // nodad: usable at once, no duplicate-address-detection wait
      run("ip", ["-n", ns, "addr", "add", `${pod.ip6}/64`, "dev", dev, "nodad"]);
      run("ip", ["-n", ns, "link", "set", dev, "up"]);
      run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      if (capture) installCapture(ns, mark, { dns: dnsCapture });
      pods.push(pod);
      return pod;
    },
    addNamespace(): TestNetns {
      const ns = `${prefix}-n${bare++}`;
      run("ip", ["netns", "add", ns]);
      made.push(ns);
      return { ns, path: `/run/netns/${ns}` };
    },
    removePod(pod: Pod): void {
      run("ip", ["-n", pod.ns, "link", "del", pod.dev]);
      run("ip", ["netns", "delete", pod.ns]);
    },
    delete(): void {
      live.delete(net);
      for (const ns of made.reverse()) deleteNetns(ns);
      made.length = 0;
    },
  };
  live.add(net);
  if (!exitHook) {
    exitHook = true;
    // a process that exits without deleting its networks (an uncaught error) deletes them here
    process.on("exit", () => {
      for (const n of live) n.delete();
    });
  }
  try {
    run("ip", ["netns", "add", bridge]);
    made.push(bridge);
    run("ip", ["-n", bridge, "link", "add", "br0", "type", "bridge"]);
    run("ip", ["-n", bridge, "link", "set", "br0", "up"]);
    for (let i = 0; i < count; i++) net.addPod();
  } catch (err) {
    net.delete();
    throw err;
  }
  return net;
}

/** A pod's identity as the node agent sends it (ZDS WorkloadInfo); the ZdsClient reports the same. */
export interface FakeWorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** A namespace to send as an fd: a pod, a `TestNetns`, or a path (`/run/netns/…`, `/proc/PID/fd/N`). */
export type NetnsSource = { readonly path: string } | string;

/**
 * One command of the fake agent's line protocol (src/fake-node-agent.py); `fds` are paths opened
 * and sent with the request by SCM_RIGHTS. For requests no method below makes.
 */
export type FakeAgentCommand =
  | { readonly op: "accept" }
  | { readonly op: "disconnect" }
  | {
      readonly op: "add";
      readonly uid: string;
      readonly info: { name: string; namespace: string; sa: string } | null;
      readonly fds?: readonly string[];
    }
  | { readonly op: "keep" | "del"; readonly uid: string; readonly fds?: readonly string[] }
  | { readonly op: "snapshot" }
  | { readonly op: "raw"; readonly hex: string; readonly fds?: readonly string[] }
  | { readonly op: "big"; readonly size: number; readonly fds?: readonly string[] };

/** The fake agent's answer to one command. */
export interface FakeAgentReply {
  /** `accept`: hex of the ZdsHello datagram the client sent. */
  readonly hello?: string;
  /** A request's Ack: its error, empty on success. */
  readonly ack?: string;
  /** The client closed the connection instead of answering. */
  readonly eof?: boolean;
  readonly ok?: boolean;
  readonly listening?: string;
}

export interface FakeNodeAgentOptions {
  /** The Python interpreter (3.9+); default `python3` on PATH. */
  readonly python?: string;
  /** How long to wait for each answer (default 12 s; the agent's socket gives up after 10 s). */
  readonly timeoutMs?: number;
}

/** The agent script ships in src/; dist/testing.js finds it there. */
function agentScript(): string {
  const beside = new URL("./fake-node-agent.py", import.meta.url);
  return fileURLToPath(
    existsSync(beside) ? beside : new URL("../src/fake-node-agent.py", import.meta.url),
  );
}

const pathOf = (n: NetnsSource): string => (typeof n === "string" ? n : n.path);

/**
 * A fake istio-cni node agent: the ZDS server on a SOCK_SEQPACKET UNIX socket, a Python process of
 * its own (independent of this package's ZdsClient: protobuf by field number, fds by
 * SCM_RIGHTS). Each request waits for the ztunnel's Ack; the request methods return the Ack's
 * error, `""` on success.
 */
export class FakeNodeAgent {
  /** The socket it listens on: the ztunnel's INPOD_UDS. */
  readonly path: string;
  #proc: ChildProcessWithoutNullStreams;
  #timeoutMs: number;
  #lines: string[] = [];
  #waiters: { resolve(line: string): void; reject(e: Error): void }[] = [];
  #exited: Promise<void>;
  #stderr = "";

  private constructor(proc: ChildProcessWithoutNullStreams, path: string, timeoutMs: number) {
    this.#proc = proc;
    this.path = path;
    this.#timeoutMs = timeoutMs;
    proc.stderr.on("data", (d: Buffer) => {
      this.#stderr += d.toString();
    });
    this.#exited = new Promise((resolve) =>
      proc.once("close", () => {
        // a crashed agent fails what waits on it at once, with its traceback
        for (const w of this.#waiters.splice(0))
          w.reject(this.#error(`the fake node agent exited (${proc.exitCode ?? proc.signalCode})`));
        resolve();
      }),
    );
    proc.once("error", (e) => {
      for (const w of this.#waiters.splice(0)) w.reject(this.#error(e.message));
    });
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const w = this.#waiters.shift();
      if (w) w.resolve(line);
      else this.#lines.push(line);
    });
  }

  /** Starts the agent listening on `path` (an existing file there is replaced). */
  static async start(path: string, options: FakeNodeAgentOptions = {}): Promise<FakeNodeAgent> {
    const proc = spawn(options.python ?? "python3", [agentScript(), path], { stdio: "pipe" });
    const agent = new FakeNodeAgent(proc, path, options.timeoutMs ?? 12_000);
    try {
      const first = await agent.#next();
      if (first.listening !== path) throw agent.#error(`unexpected ${JSON.stringify(first)}`);
    } catch (err) {
      await agent.stop();
      throw err;
    }
    return agent;
  }

  #error(message: string): InpodError {
    const stderr = this.#stderr.trim();
    return new InpodError(
      "ERR_INPOD_TESTING",
      `fake node agent on ${this.path}: ${message}${stderr ? `\n${stderr}` : ""}`,
    );
  }

  #running(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  #next(): Promise<FakeAgentReply> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line) as FakeAgentReply);
    if (!this.#running()) return Promise.reject(this.#error("it is not running"));
    return new Promise<FakeAgentReply>((resolve, reject) => {
      const waiter = {
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(JSON.parse(l) as FakeAgentReply);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(this.#error(`no answer in ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Sends one command and returns the agent's answer as is. */
  async send(cmd: FakeAgentCommand): Promise<FakeAgentReply> {
    if (!this.#running()) throw this.#error("it is not running");
    this.#proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    return await this.#next();
  }

  /** Sends a request and returns the Ack's error (`""` on success); throws if none came. */
  async ack(cmd: FakeAgentCommand): Promise<string> {
    const r = await this.send(cmd);
    if (r.ack === undefined)
      throw this.#error(
        r.eof ? "the ztunnel closed the connection instead of an Ack" : JSON.stringify(r),
      );
    return r.ack;
  }

  /** Accepts the ztunnel's connection (closing the previous one); returns the hex of its ZdsHello. */
  async accept(): Promise<string> {
    return (await this.send({ op: "accept" })).hello ?? "";
  }

  /** Closes the current connection, as a restarting node agent does; the ztunnel reconnects. */
  async disconnect(): Promise<void> {
    await this.send({ op: "disconnect" });
  }

  /**
   * AddWorkload for `uid` with the pod's netns fd. For bad input: `info` null sends none, an array
   * sends each of its namespaces as an fd (none, or several).
   */
  add(
    uid: string,
    info: FakeWorkloadInfo | null,
    netns: NetnsSource | readonly NetnsSource[],
  ): Promise<string> {
    const fds = Array.isArray(netns) ? netns.map(pathOf) : [pathOf(netns as NetnsSource)];
    const wire = info && { name: info.name, namespace: info.namespace, sa: info.serviceAccount };
    return this.ack({ op: "add", uid, info: wire, fds });
  }

  /** KeepWorkload: `uid` is still there (between a reconnect and SnapshotSent). */
  keep(uid: string): Promise<string> {
    return this.ack({ op: "keep", uid });
  }

  /** DelWorkload for `uid`; `fds` (bad input) go with it. */
  del(uid: string, fds: readonly NetnsSource[] = []): Promise<string> {
    return this.ack({ op: "del", uid, fds: fds.map(pathOf) });
  }

  /** SnapshotSent: every pod of this node has been sent since the connection began. */
  snapshotSent(): Promise<string> {
    return this.ack({ op: "snapshot" });
  }

  /** Sends `bytes` as one datagram (with `fds`), for bad input; returns the Ack's error. */
  sendRaw(bytes: Uint8Array, fds: readonly NetnsSource[] = []): Promise<string> {
    return this.ack({ op: "raw", hex: Buffer.from(bytes).toString("hex"), fds: fds.map(pathOf) });
  }

  /** Sends a request of about `size` bytes (larger than ZDS allows, say); returns the Ack's error. */
  sendOversized(size: number, fds: readonly NetnsSource[] = []): Promise<string> {
    return this.ack({ op: "big", size, fds: fds.map(pathOf) });
  }

  /** Stops the agent and removes its socket file (idempotent). */
  async stop(): Promise<void> {
    if (this.#running()) {
      this.#proc.stdin.end(`${JSON.stringify({ op: "quit" })}\n`);
      const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    // the agent removes it when it quits; not when it crashed or was killed
    rmSync(this.path, { force: true });
  }
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes; returns its last result. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}
