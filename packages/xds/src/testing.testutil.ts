// Drives the python-grpcio control plane (testdata/control_plane.py): an independent gRPC server that
// speaks delta ADS and the Istio CA by field number. Commands go in on stdin, events come out on stdout.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./testdata/control_plane.py", import.meta.url));

export type CpEvent = { event: string } & Record<string, unknown>;

export interface CpRequest {
  event: "request";
  stream: number;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  initialVersions: Record<string, string>;
  nonce: string;
  error: { code: number; message: string } | null;
  nodeId: string | null;
}

export interface CpWorkload {
  uid: string;
  name?: string;
  namespace?: string;
  addresses?: string[];
  network?: string;
  protocol?: "HBONE" | "TCP";
  trustDomain?: string;
  serviceAccount?: string;
  node?: string;
}

export interface CpAuthorization {
  name: string;
  namespace: string;
  scope?: "GLOBAL" | "NAMESPACE" | "WORKLOAD_SELECTOR";
  action?: "ALLOW" | "DENY";
  /** One rule per entry, each with one clause matching any of these source namespaces. */
  ruleNamespaces?: string[][];
}

export interface CpResource {
  name: string;
  version?: string;
  workload?: CpWorkload;
  authorization?: CpAuthorization;
  /** Raw Any value bytes (hex) for malformed-resource tests. */
  hex?: string;
  anyTypeUrl?: string;
}

export class ControlPlane {
  readonly events: CpEvent[] = [];
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #waiters: Array<{ match: (e: CpEvent) => boolean; resolve: (e: CpEvent) => void }> = [];
  #stderr = "";
  port = 0;

  private constructor(args: string[]) {
    // Debian's python3 (python3-grpcio), not a pyenv one earlier on PATH.
    this.#proc = spawn("/usr/bin/python3", [script, ...args], { stdio: "pipe" });
    this.#proc.stderr.on("data", (d: Buffer) => {
      this.#stderr += d.toString();
    });
    createInterface({ input: this.#proc.stdout }).on("line", (line) => {
      const e = JSON.parse(line) as CpEvent;
      this.events.push(e);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i];
        if (w?.match(e)) {
          this.#waiters.splice(i, 1);
          w.resolve(e);
        }
      }
    });
  }

  static async start(args: string[] = []): Promise<ControlPlane> {
    const cp = new ControlPlane(args);
    const e = await cp.next((ev) => ev.event === "listening", 15_000);
    cp.port = e.port as number;
    return cp;
  }

  /** The first event (already seen from index `from`, or future) matching `match`. */
  next(match: (e: CpEvent) => boolean, timeoutMs = 10_000, from = 0): Promise<CpEvent> {
    const seen = this.events.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`control plane: no matching event in ${timeoutMs} ms; stderr: ${this.#stderr}`),
        );
      }, timeoutMs);
      this.#waiters.push({
        match,
        resolve: (ev) => {
          clearTimeout(timer);
          resolve(ev);
        },
      });
    });
  }

  /** The next request after the current end of the event log matching `match`. */
  nextRequest(
    match: (r: CpRequest) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<CpRequest> {
    return this.next(
      (e) => e.event === "request" && match(e as unknown as CpRequest),
      timeoutMs,
      this.events.length,
    ) as unknown as Promise<CpRequest>;
  }

  requests(): CpRequest[] {
    return this.events.filter((e) => e.event === "request") as unknown as CpRequest[];
  }

  send(cmd: Record<string, unknown>): void {
    this.#proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  push(typeUrl: string, nonce: string, resources: CpResource[], removed: string[] = []): void {
    this.send({ cmd: "push", typeUrl, nonce, resources, removed });
  }

  async close(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    const exited = new Promise((r) => this.#proc.once("exit", r));
    this.#proc.kill("SIGKILL");
    await exited;
  }
}

/**
 * A self-signed P-256 root from the openssl CLI (an independent PKI): `<dir>/<name>.pem` and
 * `<dir>/<name>.key`, marked as a CA that signs certificates.
 */
export function opensslRoot(dir: string, name: string): void {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "3",
      "-subj",
      `/O=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    { cwd: dir, stdio: "pipe" },
  );
}
