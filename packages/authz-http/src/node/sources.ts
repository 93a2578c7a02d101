// Live policy sources on the local file system: a watched directory of YAML manifests and a
// LOCAL_XDS file. Each change is read whole, parsed whole, and only then handed over; a file that
// does not parse is reported with file:line and the last good content keeps serving.
import { type FSWatcher, watch } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ZtunnelAuthorization } from "@ambientkit/authz";
import type { LocalConfig } from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import type { MeshWorkload, WorkloadLookup } from "../mesh-state.js";
import type { PolicyContent, PolicySink, PolicySource } from "../policy-set.js";
import { parsePolicyYaml, type SourceIssue } from "../policy-yaml.js";

export interface WatchOptions {
  /** Also re-check file signatures this often, in case a watch event is lost (default 500 ms). */
  readonly pollMs?: number;
  /** Wait this long after an event before reading, to coalesce a burst (default 20 ms). */
  readonly debounceMs?: number;
}

/** Reloads on change; `read` returns content, or issues to report. */
class Watched {
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #lastText: string | undefined;
  #lastSignature = "";
  #running = false;
  #again = false;
  #version = 0;
  #closed = false;

  constructor(
    private readonly target: string,
    private readonly signature: () => Promise<string>,
    private readonly read: () => Promise<{ text: string; parse: () => PolicyContentOrIssues }>,
    private readonly options: WatchOptions,
  ) {}

  async start(sink: PolicySink): Promise<void> {
    await this.#reload(sink);
    if (this.#closed) return;
    try {
      this.#watcher = watch(this.target, { persistent: false }, () => this.#schedule(sink));
      this.#watcher.on("error", () => undefined);
    } catch {
      // Polling alone still picks changes up.
    }
    this.#poll = setInterval(() => {
      void this.signature().then(
        (s) => {
          if (s !== this.#lastSignature) this.#schedule(sink);
        },
        () => this.#schedule(sink),
      );
    }, this.options.pollMs ?? 500);
    this.#poll.unref();
  }

  #schedule(sink: PolicySink): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#reload(sink), this.options.debounceMs ?? 20);
    this.#timer.unref();
  }

  async #reload(sink: PolicySink): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      do {
        this.#again = false;
        let text: string;
        let parse: () => PolicyContentOrIssues;
        try {
          this.#lastSignature = await this.signature();
          ({ text, parse } = await this.read());
        } catch (cause) {
          sink.error([{ file: this.target, message: `cannot read: ${(cause as Error).message}` }]);
          continue;
        }
        if (text === this.#lastText) continue;
        let r: PolicyContentOrIssues;
        try {
          r = parse();
        } catch (cause) {
          // A parser failure is a broken file like any other: report it, keep the last good set.
          r = {
            issues: [{ file: this.target, message: `cannot parse: ${(cause as Error).message}` }],
          };
        }
        if ("issues" in r) {
          sink.error(r.issues);
          continue;
        }
        this.#lastText = text;
        sink.update({ ...r.content, revision: String(++this.#version) });
      } while (this.#again && !this.#closed);
    } finally {
      this.#running = false;
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    this.#watcher?.close();
  }
}

type PolicyContentOrIssues =
  | { content: Omit<PolicyContent, "revision"> }
  | { issues: readonly SourceIssue[] };

const MANIFEST = /\.(ya?ml|json)$/i;

/**
 * Every `*.yaml`, `*.yml`, `*.json` in `dir` (not recursive; dot-files ignored, so a Kubernetes
 * ConfigMap mount with its `..data` symlink swap works), reloaded on change. Write files
 * atomically (write a dot-file, rename it into place): a reader can otherwise see half a file,
 * which may parse as a smaller, valid policy set.
 */
export function directoryPolicySource(
  dir: string,
  options: WatchOptions & {
    rootNamespace?: string;
    /** Which file names to read (default `*.yaml`, `*.yml`, `*.json`). */
    include?: RegExp;
  } = {},
): PolicySource {
  const include = options.include ?? MANIFEST;
  const files = async (): Promise<string[]> =>
    (await readdir(dir)).filter((f) => !f.startsWith(".") && include.test(f)).sort();
  const w = new Watched(
    dir,
    async () => {
      const list = await files();
      const parts = await Promise.all(
        list.map(async (f) => {
          const s = await stat(join(dir, f));
          return `${f}:${s.mtimeMs}:${s.size}:${s.ino}`;
        }),
      );
      return parts.join("|");
    },
    async () => {
      const list = await files();
      const texts = await Promise.all(list.map((f) => readFile(join(dir, f), "utf8")));
      return {
        text: list.map((f, i) => `${f}\0${texts[i]}`).join("\0\0"),
        parse: () => {
          const resources = [];
          const issues: SourceIssue[] = [];
          for (const [i, f] of list.entries()) {
            const p = parsePolicyYaml(texts[i] ?? "", join(dir, f), options);
            resources.push(...p.resources);
            issues.push(...p.issues);
          }
          return issues.length > 0 ? { issues } : { content: { resources } };
        },
      };
    },
    options,
  );
  return { name: `dir:${dir}`, start: (sink) => w.start(sink), close: () => w.close() };
}

/** A LOCAL_XDS source also answers "which workload has this IP" from the same file. */
export interface LocalXdsSource extends PolicySource, WorkloadLookup {}

/**
 * ztunnel's LOCAL_XDS file: its `policies` (Authorization form, evaluated at L4 as ztunnel does)
 * and its workloads (for source IP → identity). `self` names the app's own workload so its
 * WorkloadSelector-scoped policies apply.
 */
export function localXdsFileSource(
  file: string,
  self: { uid?: string; namespace: string; name: string },
  options: WatchOptions = {},
): LocalXdsSource {
  let byIp = new Map<string, MeshWorkload>();
  const w = new Watched(
    file,
    async () => {
      const s = await stat(file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    },
    async () => {
      const text = await readFile(file, "utf8");
      return {
        text,
        parse: () => {
          const r = parseLocalXds(text);
          if (!r.ok)
            return {
              issues: r.issues.map((i) => ({
                file,
                ...(i.line !== undefined ? { line: i.line } : {}),
                ...(i.column !== undefined ? { column: i.column } : {}),
                message: `${i.path ? `${i.path}: ` : ""}${i.message}`,
              })),
            };
          const config: LocalConfig = r.value;
          const me = config.workloads.find((x) =>
            self.uid ? x.uid === self.uid : x.namespace === self.namespace && x.name === self.name,
          );
          const next = new Map<string, MeshWorkload>();
          for (const wl of config.workloads) for (const ip of wl.workloadIps) next.set(ip, wl);
          byIp = next;
          return {
            content: {
              authorizations: config.policies as readonly ZtunnelAuthorization[],
              selectedAuthorizations: me?.authorizationPolicies ?? [],
            },
          };
        },
      };
    },
    options,
  );
  return {
    name: `local-xds:${file}`,
    start: (sink) => w.start(sink),
    close: () => w.close(),
    workloadByIp: (ip) => byIp.get(ip),
  };
}
