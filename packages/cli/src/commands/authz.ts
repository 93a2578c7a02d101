import {
  AuthzError,
  type CaseFileReport,
  compilePolicies,
  convertAuthorizationPolicy,
  convertPeerAuthentications,
  type Decision,
  type DecisionCase,
  type DecisionInput,
  type Issue,
  issuePathSegments,
  type MeshSettings,
  type PolicyResource,
  parseDecisionCase,
  parseIp,
  parsePolicyResource,
  runCaseFile,
  toLocalXdsAuthorization,
} from "@ambientkit/authz";
import { type Command, Option } from "commander";
import { type Document, LineCounter, parseAllDocuments, stringify } from "yaml";
import { type CommandContext, EXIT_FAILURE_FOUND, EXIT_USAGE, outputOption } from "../command.js";
import { CliError } from "../errors.js";
import { readInput } from "../io.js";

interface LoadedDoc {
  file: string;
  doc: Document;
  lines: LineCounter;
  index: number;
}

async function loadYaml(ctx: CommandContext, file: string): Promise<LoadedDoc[]> {
  const text = await readInput(ctx.io, file);
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    const e = d.errors[0];
    if (e) {
      const pos = lines.linePos(e.pos[0]);
      throw new CliError(
        "ERR_CLI_INPUT_INVALID",
        `${file}:${pos.line}:${pos.col}: invalid YAML: ${e.message.split("\n")[0]}`,
      );
    }
  }
  return list.map((doc, index) => ({ file, doc: doc as Document, lines, index }));
}

/** `file:line:col` of the deepest node that exists on `path`. */
function locate(d: LoadedDoc, path: readonly (string | number)[]): string {
  for (let n = path.length; n >= 0; n--) {
    const node = d.doc.getIn(path.slice(0, n), true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node && typeof node === "object" && node.range) {
      const pos = d.lines.linePos(node.range[0]);
      return `${d.file}:${pos.line}:${pos.col}`;
    }
  }
  return d.file;
}

function issueLines(
  d: LoadedDoc,
  issues: readonly Issue[],
  prefix: (string | number)[] = [],
): string[] {
  return issues
    .filter((i) => i.severity === "error")
    .map((i) => `${locate(d, [...prefix, ...issuePathSegments(i.path)])}: ${i.message}`);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function loadPolicies(
  ctx: CommandContext,
  files: readonly string[],
): Promise<{ policies: PolicyResource[]; errors: string[] }> {
  const policies: PolicyResource[] = [];
  const errors: string[] = [];
  for (const file of files) {
    for (const d of await loadYaml(ctx, file)) {
      const root: unknown = d.doc.toJS();
      if (root === null || root === undefined) continue;
      const items: { value: unknown; path: (string | number)[] }[] = [];
      if (
        typeof root === "object" &&
        !Array.isArray(root) &&
        (root as { kind?: unknown }).kind === "List"
      )
        ((root as { items?: unknown[] }).items ?? []).forEach((value, i) => {
          items.push({ value, path: ["items", i] });
        });
      else if (Array.isArray(root))
        root.forEach((value, i) => {
          items.push({ value, path: [i] });
        });
      else items.push({ value: root, path: [] });
      for (const { value, path } of items) {
        const kind = (value as { kind?: unknown } | null)?.kind;
        if (kind !== "AuthorizationPolicy" && kind !== "PeerAuthentication") continue;
        const res = parsePolicyResource(value, path);
        if (res.ok) policies.push(res.value);
        else errors.push(...issueLines(d, res.issues));
      }
    }
  }
  return { policies, errors };
}

function describeDecision(d: Decision): string[] {
  const lines = [
    `${d.decision} (decidedBy ${d.decidedBy}${d.rule !== undefined ? `, rule ${d.rule}` : ""}) at ${d.enforcement}`,
  ];
  for (const e of d.explanation) lines.push(`  ${e}`);
  for (const i of d.ignored)
    lines.push(
      `  ignored: ${i.policy}${i.rule !== undefined ? ` rule ${i.rule}` : ""} ${i.attribute}: ${i.reason}`,
    );
  for (const r of d.dryRun)
    lines.push(
      `  dry-run: ${r.policy} (${r.action}) ${r.matched ? `would match rule ${r.rule}` : "would not match"}`,
    );
  for (const a of d.audit) lines.push(`  audit: ${a.policy} rule ${a.rule} matched`);
  return lines;
}

function fmtExpect(v: Record<string, unknown>): string {
  if ("valid" in v)
    return v.valid
      ? "valid"
      : `invalid${v.messageContains ? ` (message containing ${JSON.stringify(v.messageContains)})` : ""}`;
  return `${String(v.decision ?? "?")} by ${String(v.decidedBy ?? "?")}`;
}

async function runTest(
  ctx: CommandContext,
  files: readonly string[],
  output: string,
): Promise<void> {
  const results: { file: string; report: CaseFileReport }[] = [];
  const errors: string[] = [];
  for (const file of files) {
    const docs = await loadYaml(ctx, file);
    // An empty file tests nothing; passing it would hide a truncated or misplaced file.
    if (docs.length === 0) errors.push(`${file}: empty file: no cases`);
    for (const d of docs) {
      const report = runCaseFile(d.doc.toJS());
      errors.push(...issueLines(d, report.issues));
      results.push({ file, report });
    }
  }
  let passed = 0;
  let failed = 0;
  const rows: { id: string; file: string; passed: boolean; expected: unknown; got: unknown }[] = [];
  for (const { file, report } of results) {
    passed += report.passed;
    failed += report.failed;
    for (const r of report.results) {
      rows.push({ id: r.id, file, passed: r.passed, expected: r.expected, got: r.got });
      if (!r.passed && output === "text") {
        const got =
          r.kind === "validation" ? (r.got.valid ? "valid" : "invalid") : fmtExpect(r.got);
        ctx.io.stdout(`FAIL ${r.id} (${file}): expected ${fmtExpect(r.expected)}, got ${got}\n`);
        for (const e of r.explanation) ctx.io.stdout(`  ${e}\n`);
      }
    }
  }
  if (output === "json") {
    const out: Record<string, unknown> = { passed, failed, results: rows };
    if (errors.length > 0) out.errors = errors;
    ctx.io.stdout(`${JSON.stringify(out, null, 2)}\n`);
  } else ctx.io.stdout(`${passed} passed, ${failed} failed\n`);
  for (const e of errors) ctx.io.stderr(`ambientkit: ${e}\n`);
  if (errors.length > 0) ctx.setExit(EXIT_USAGE);
  else if (failed > 0) ctx.setExit(EXIT_FAILURE_FOUND);
}

interface CheckOptions {
  policies: string[];
  case?: string;
  caseId?: string;
  enforcement?: string;
  rootNamespace: string;
  trustDomain: string;
  trustDomainAlias: string[];
  namespace?: string;
  labels: string[];
  waypoint?: string;
  service?: string;
  serviceKind: string;
  protocol: string;
  sourcePrincipal?: string;
  sourceIp?: string;
  destinationIp?: string;
  destinationPort?: string;
  host?: string;
  method?: string;
  path?: string;
  header: string[];
  jwt?: string;
  customProvider: string[];
  output: string;
}

function splitPair(v: string, sep: string, what: string): [string, string] {
  const i = v.indexOf(sep);
  if (i <= 0)
    throw new CliError(
      "ERR_CLI_USAGE",
      `${what} must look like key${sep}value, got ${JSON.stringify(v)}`,
    );
  return [v.slice(0, i), v.slice(i + 1)];
}

/** A string map without a prototype: flag values like `__proto__=x` are data, never dropped. */
function dataMap<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

function nsName(v: string, what: string): { namespace: string; name: string } {
  const [namespace, name] = splitPair(v, "/", what);
  return { namespace, name };
}

async function caseFromFile(
  ctx: CommandContext,
  file: string,
  id: string | undefined,
): Promise<DecisionCase> {
  const [d] = await loadYaml(ctx, file);
  if (!d) throw new CliError("ERR_CLI_INPUT_INVALID", `${file}: empty file`);
  const root = d.doc.toJS() as unknown;
  let value: unknown = root;
  let path: (string | number)[] = [];
  const cases = (root as { cases?: unknown } | null)?.cases;
  if (Array.isArray(cases)) {
    const idx =
      id === undefined ? 0 : cases.findIndex((c) => (c as { id?: unknown } | null)?.id === id);
    if (idx < 0 || cases[idx] === undefined)
      throw new CliError(
        "ERR_CLI_USAGE",
        `${file}: no case${id ? ` with id ${id}` : ""} in cases:`,
      );
    if (id === undefined && cases.length > 1)
      throw new CliError(
        "ERR_CLI_USAGE",
        `${file} has ${cases.length} cases: pick one with --case-id`,
      );
    value = cases[idx];
    path = ["cases", idx];
  }
  const parsed = parseDecisionCase(value, path);
  if (!parsed.value)
    throw new CliError("ERR_CLI_INPUT_INVALID", issueLines(d, parsed.issues).join("\n  "));
  return parsed.value;
}

async function runCheck(ctx: CommandContext, o: CheckOptions): Promise<void> {
  const loaded = await loadPolicies(ctx, o.policies);
  if (loaded.errors.length > 0)
    throw new CliError("ERR_CLI_INPUT_INVALID", loaded.errors.join("\n  "));
  let mesh: MeshSettings;
  let input: DecisionInput;
  let policies = loaded.policies;
  if (o.case) {
    const c = await caseFromFile(ctx, o.case, o.caseId);
    mesh = c.mesh;
    input = c.input;
    policies = [...c.policies, ...policies];
    if (o.enforcement === "ztunnel" || o.enforcement === "waypoint")
      input.enforcement = o.enforcement;
  } else {
    if (o.enforcement !== "ztunnel" && o.enforcement !== "waypoint")
      throw new CliError(
        "ERR_CLI_USAGE",
        "--enforcement ztunnel|waypoint is required (or --case FILE)",
      );
    for (const [flag, v] of [
      ["--namespace", o.namespace],
      ["--source-ip", o.sourceIp],
      ["--destination-ip", o.destinationIp],
      ["--destination-port", o.destinationPort],
    ] as const)
      if (v === undefined)
        throw new CliError("ERR_CLI_USAGE", `${flag} is required (or --case FILE)`);
    const port = /^[0-9]{1,5}$/.test(o.destinationPort ?? "") ? Number(o.destinationPort) : -1;
    if (port < 0 || port > 65535)
      throw new CliError("ERR_CLI_USAGE", "--destination-port must be 0-65535");
    for (const [flag, v] of [
      ["--source-ip", o.sourceIp],
      ["--destination-ip", o.destinationIp],
    ] as const)
      if (parseIp(v ?? "") === undefined)
        throw new CliError(
          "ERR_CLI_USAGE",
          `${flag} must be an IP address (no brackets, zone or prefix), got ${JSON.stringify(v)}`,
        );
    const labels = dataMap<string>();
    for (const l of o.labels.flatMap((x) => x.split(",")).filter(Boolean)) {
      const [k, v] = splitPair(l, "=", "--labels");
      labels[k] = v;
    }
    mesh = {
      rootNamespace: o.rootNamespace,
      trustDomain: o.trustDomain,
      trustDomainAliases: o.trustDomainAlias,
    };
    input = {
      enforcement: o.enforcement,
      workload: { namespace: o.namespace ?? "", labels },
      connection: {
        sourcePrincipal: o.sourcePrincipal ?? null,
        sourceIp: o.sourceIp ?? "",
        destinationIp: o.destinationIp ?? "",
        destinationPort: port,
      },
    };
    if (o.waypoint) input.waypoint = nsName(o.waypoint, "--waypoint");
    if (o.service) {
      if (o.serviceKind !== "Service" && o.serviceKind !== "ServiceEntry")
        throw new CliError("ERR_CLI_USAGE", "--service-kind must be Service or ServiceEntry");
      input.service = {
        ...nsName(o.service, "--service"),
        kind: o.serviceKind,
        protocol: o.protocol,
      };
    }
    if (
      o.host !== undefined ||
      o.method !== undefined ||
      o.path !== undefined ||
      o.header.length > 0 ||
      o.jwt !== undefined
    ) {
      let jwt: Record<string, unknown> | null = null;
      if (o.jwt !== undefined) {
        try {
          jwt = JSON.parse(o.jwt) as Record<string, unknown>;
        } catch (cause) {
          throw new CliError(
            "ERR_CLI_USAGE",
            "--jwt must be the JSON payload of a validated token",
            { cause },
          );
        }
      }
      const headers = dataMap<string[]>();
      for (const h of o.header) {
        const [k, v] = splitPair(h, ":", "--header");
        headers[k.toLowerCase()] = [...(headers[k.toLowerCase()] ?? []), v.trim()];
      }
      input.request = {
        host: o.host ?? "",
        method: o.method ?? "GET",
        path: o.path ?? "/",
        headers,
        jwt,
      };
    }
  }
  if (o.customProvider.length > 0) {
    const providers = dataMap<"allow" | "deny">();
    for (const p of o.customProvider) {
      const [k, v] = splitPair(p, "=", "--custom-provider");
      if (v !== "allow" && v !== "deny")
        throw new CliError("ERR_CLI_USAGE", "--custom-provider must be NAME=allow|deny");
      providers[k] = v;
    }
    input.customProviders = providers;
  }
  let decision: Decision;
  try {
    decision = compilePolicies(policies, mesh).decide(input);
  } catch (cause) {
    // Bad input is exit 2 with the library's reason, never a decision.
    if (cause instanceof AuthzError) throw new CliError("ERR_CLI_INPUT_INVALID", cause.message);
    throw cause;
  }
  if (o.output === "json") ctx.io.stdout(`${JSON.stringify(decision, null, 2)}\n`);
  else ctx.io.stdout(`${describeDecision(decision).join("\n")}\n`);
}

async function runConvert(
  ctx: CommandContext,
  o: { policies: string[]; rootNamespace: string; ambientEnableDryRun?: boolean; output: string },
): Promise<void> {
  const loaded = await loadPolicies(ctx, o.policies);
  if (loaded.errors.length > 0)
    throw new CliError("ERR_CLI_INPUT_INVALID", loaded.errors.join("\n  "));
  const out: Record<string, unknown>[] = [];
  const notes: string[] = [];
  for (const p of loaded.policies) {
    if (p.kind !== "AuthorizationPolicy") continue;
    const c = convertAuthorizationPolicy(p, o.rootNamespace, {
      ambientEnableDryRun: o.ambientEnableDryRun ?? false,
    });
    if (c.authorization) out.push(toLocalXdsAuthorization(c.authorization));
    if (c.status) notes.push(`${p.namespace}/${p.name}: ${c.status.message}`);
    else if (!c.authorization)
      notes.push(
        `${p.namespace}/${p.name}: not sent to ztunnel (${c.ignored[0]?.reason ?? "targetRefs"})`,
      );
    // istiod would drop these silently; say what the output does with them instead.
    for (const u of c.unparsable ?? [])
      notes.push(
        `${p.namespace}/${p.name}: rule ${u.rule} ${u.attribute} ${JSON.stringify(u.value)} does not parse: ${
          c.authorization?.action === "Deny"
            ? "read as matching every connection (fail closed)"
            : "the ALLOW rule is dropped (fail closed)"
        }`,
      );
  }
  const pas = loaded.policies.filter((p) => p.kind === "PeerAuthentication");
  for (const a of convertPeerAuthentications(pas, o.rootNamespace))
    out.push(toLocalXdsAuthorization(a));
  if (o.output === "json") ctx.io.stdout(`${JSON.stringify({ policies: out }, null, 2)}\n`);
  else {
    const header = notes.map((n) => `# ${n}`).join("\n");
    ctx.io.stdout(`${header ? `${header}\n` : ""}${stringify({ policies: out })}`);
  }
}

/** Registers `ambientkit authz test|check|convert`. */
export function registerAuthz(program: Command, ctx: CommandContext): void {
  const authz = program
    .command("authz")
    .description(
      "evaluate Istio AuthorizationPolicies as ztunnel (L4) and waypoints (L7) enforce them",
    );
  authz
    .command("test")
    .description(
      "run policy test case files (cases: and validationCases:); exit 0 all pass, 1 a case failed, 2 bad input",
    )
    .argument("<files...>", "case files (YAML), - for stdin")
    .addOption(outputOption())
    .action(async (files: string[], opts: { output: string }) => {
      await runTest(ctx, files, opts.output);
    });
  authz
    .command("check")
    .description("decide one connection/request and explain the decision")
    .option(
      "--policies <path>",
      "policy YAML (repeatable; multi-document and List are fine)",
      collect,
      [],
    )
    .option(
      "--case <file>",
      "take mesh, policies and inputs from a case (a case mapping or a case file)",
    )
    .option("--case-id <id>", "which case of a case file")
    .addOption(
      new Option("--enforcement <point>", "where the decision is taken").choices([
        "ztunnel",
        "waypoint",
      ]),
    )
    .option("--root-namespace <ns>", "meshConfig.rootNamespace", "istio-system")
    .option("--trust-domain <td>", "meshConfig.trustDomain", "cluster.local")
    .option(
      "--trust-domain-alias <td>",
      "meshConfig.trustDomainAliases entry (repeatable)",
      collect,
      [],
    )
    .option("--namespace <ns>", "destination workload namespace")
    .option("--labels <k=v,...>", "destination workload labels (repeatable)", collect, [])
    .option("--waypoint <ns/name>", "the waypoint (Gateway) serving the request")
    .option("--service <ns/name>", "destination service at the waypoint")
    .addOption(new Option("--service-kind <kind>", "Service or ServiceEntry").default("Service"))
    .option(
      "--protocol <proto>",
      "service protocol at the waypoint (HTTP chain or TCP chain)",
      "HTTP",
    )
    .option("--source-principal <uri>", "peer SPIFFE URI (omit for plaintext)")
    .option("--source-ip <ip>", "source address as the enforcement point sees it")
    .option("--destination-ip <ip>", "ztunnel: pod IP; waypoint: service VIP")
    .option("--destination-port <port>", "ztunnel: container port; waypoint: service port")
    .option("--host <authority>", "HTTP :authority")
    .option("--method <method>", "HTTP method")
    .option("--path <path>", "raw HTTP path")
    .option("--header <name:value>", "HTTP header (repeatable)", collect, [])
    .option("--jwt <json>", "validated JWT payload as JSON")
    .option(
      "--custom-provider <name=allow|deny>",
      "answer of a CUSTOM ext-authz provider (repeatable)",
      collect,
      [],
    )
    .addOption(outputOption())
    .action(async (opts: CheckOptions) => {
      await runCheck(ctx, opts);
    });
  authz
    .command("convert")
    .description("print the ztunnel Authorization objects istiod would send (LOCAL_XDS form)")
    .option("--policies <path>", "policy YAML (repeatable)", collect, [])
    .option("--root-namespace <ns>", "meshConfig.rootNamespace", "istio-system")
    .option("--ambient-enable-dry-run", "istiod AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY=true")
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["yaml", "json"])
        .default("yaml"),
    )
    .action(
      async (opts: {
        policies: string[];
        rootNamespace: string;
        ambientEnableDryRun?: boolean;
        output: string;
      }) => {
        if (opts.policies.length === 0)
          throw new CliError("ERR_CLI_USAGE", "--policies PATH is required");
        await runConvert(ctx, opts);
      },
    );
}
