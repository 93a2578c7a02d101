// `ambientkit validate [PATH|DIR|-]...`: validates Istio and Gateway API manifests offline, as the
// Kubernetes API server plus Istio's webhook would (see @ambientkit/crds `validateYaml`).
import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type DocumentResult,
  decodeYamlBytes,
  type GatewayApiChannel,
  type IstioVersion,
  type ValidationIssue,
  validateYamlDocuments,
} from "@ambientkit/crds/validate";
import { type Command, Option } from "commander";
import {
  type CommandContext,
  EXIT_FAILURE_FOUND,
  EXIT_OK,
  EXIT_USAGE,
  outputOption,
} from "../command.js";
import { CliError } from "../errors.js";
import { readInputBytes, resolvePath } from "../io.js";

const EXTENSIONS = [".yaml", ".yml", ".json"];

interface ValidateFlags {
  strict?: boolean;
  istio: IstioVersion;
  gatewayApi: GatewayApiChannel;
  output: "text" | "json" | "sarif" | "github";
}

/**
 * One document's result as `--output json` prints it (`valid` is the library result's `ok`: the
 * report's field names are the CLI's contract).
 */
export interface ValidateJsonResult {
  file: string;
  line: number;
  apiVersion: string | null;
  kind: string | null;
  name: string | null;
  namespace: string | null;
  valid: boolean;
  skipped: boolean;
  issues: ValidationIssue[];
}

/** The `--output json` report. */
export interface ValidateJsonReport {
  files: number;
  documents: number;
  skipped: number;
  valid: number;
  invalid: number;
  results: ValidateJsonResult[];
}

/** Expands the arguments into files: directories recursively (.yaml/.yml/.json), `-` for stdin. */
async function collectFiles(ctx: CommandContext, args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    if (arg === "-") {
      out.push("-");
      continue;
    }
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(resolvePath(ctx.io, arg));
    } catch (cause) {
      throw new CliError(
        "ERR_CLI_INPUT_UNREADABLE",
        `cannot read ${arg}: no such file or directory`,
        {
          cause,
        },
      );
    }
    if (info.isDirectory()) out.push(...(await walk(ctx, arg)));
    else out.push(arg);
  }
  return out;
}

async function walk(ctx: CommandContext, dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(resolvePath(ctx.io, dir), { withFileTypes: true });
  } catch (cause) {
    throw new CliError("ERR_CLI_INPUT_UNREADABLE", `cannot read directory ${dir}`, { cause });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (!e.name.startsWith(".") && e.name !== "node_modules")
        out.push(...(await walk(ctx, path)));
    } else if (e.isFile() && EXTENSIONS.some((x) => e.name.endsWith(x))) {
      out.push(path);
    }
  }
  return out;
}

/** How many files are read ahead of the one being validated: reads overlap, memory stays bounded. */
const READ_AHEAD = 8;

/**
 * The files' text in order, read a few ahead and decoded strictly as UTF-8 (invalid bytes become
 * an issue, not U+FFFD); the bytes are dropped as soon as they are decoded.
 */
async function* readEach(
  ctx: CommandContext,
  files: readonly string[],
): AsyncGenerator<[string, ReturnType<typeof decodeYamlBytes>], void, undefined> {
  const pending: Array<Promise<Uint8Array>> = [];
  let next = 0;
  for (const file of files) {
    while (next < files.length && pending.length < READ_AHEAD) {
      const read = readInputBytes(ctx.io, files[next++] as string);
      // Awaited in order below; until then a failure must not count as unhandled.
      read.catch(() => undefined);
      pending.push(read);
    }
    yield [file, decodeYamlBytes(await (pending.shift() as Promise<Uint8Array>))];
  }
}

function displayName(file: string): string {
  return file === "-" ? "<stdin>" : file;
}

/** ` (Kind/name)` of a document, or "" when it has no kind (a syntax error, not a manifest). */
function label(d: { kind?: string | null; name?: string | null }): string {
  return d.kind === undefined || d.kind === null ? "" : ` (${d.kind}/${d.name ?? "?"})`;
}

// GitHub Actions workflow commands: data escapes %, CR, LF; property values also `:` and `,`.
function ghData(s: string): string {
  return s.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}
function ghProperty(s: string): string {
  return ghData(s).replaceAll(":", "%3A").replaceAll(",", "%2C");
}

/**
 * `::error file=…,line=…,col=…,title=…::message` (`::warning` for warnings): GitHub Actions shows
 * each as an annotation on the file's line in the run and the pull request.
 */
function githubCommand(
  file: string,
  line: number,
  d: { kind?: string | null; name?: string | null },
  i: ValidationIssue,
): string {
  const props = [
    ...(file === "-" ? [] : [`file=${ghProperty(file)}`]),
    `line=${i.line ?? line}`,
    `col=${i.column ?? 1}`,
    `title=${ghProperty(`${i.code}${label(d)}`)}`,
  ];
  return `::${i.severity} ${props.join(",")}::${ghData(i.message)}\n`;
}

function sarif(results: ValidateJsonResult[]): unknown {
  const rules = new Map<string, string>();
  const sarifResults: unknown[] = [];
  for (const r of results) {
    for (const issue of r.issues) {
      if (!rules.has(issue.code)) rules.set(issue.code, ruleDescription(issue.code));
      sarifResults.push({
        ruleId: issue.code,
        level: issue.severity === "error" ? "error" : "warning",
        message: { text: `${issue.message}${label(r)}` },
        locations: [
          {
            physicalLocation: {
              artifactLocation: { uri: r.file === "-" ? "stdin" : r.file.split("\\").join("/") },
              region: { startLine: issue.line ?? r.line, startColumn: issue.column ?? 1 },
            },
            logicalLocations: issue.path === "" ? [] : [{ fullyQualifiedName: issue.path }],
          },
        ],
      });
    }
  }
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "ambientkit validate",
            rules: [...rules].map(([id, text]) => ({ id, shortDescription: { text } })),
          },
        },
        results: sarifResults,
      },
    ],
  };
}

function ruleDescription(code: string): string {
  if (code.startsWith("schema/")) return `OpenAPI schema: ${code.slice(7)}`;
  const known: Record<string, string> = {
    "yaml/syntax": "YAML or JSON syntax error",
    "yaml/encoding": "file is not valid UTF-8",
    "document/too-deep": "document nested too deeply",
    "document/too-large": "document larger than the API server accepts",
    "document/not-object": "document is not a mapping",
    "document/missing-type": "document lacks apiVersion or kind",
    "kind/unknown": "kind not known for this group",
    "version/unknown": "apiVersion not defined by the CRD",
    "version/unserved": "apiVersion not served by the CRD",
    "version/deprecated": "apiVersion is deprecated",
    "unknown-field": "field not declared in the schema",
    "list-type/duplicate": "duplicate item in a set or map list",
    "cel/rule": "x-kubernetes-validations rule failed",
    "cel/error": "x-kubernetes-validations rule could not be evaluated",
    IST0106: "Istio schema validation error",
    IST0133: "Istio schema validation warning",
  };
  return known[code] ?? (code.startsWith("metadata/") ? `metadata: ${code.slice(9)}` : code);
}

/** Registers `ambientkit validate`. */
export function registerValidate(program: Command, ctx: CommandContext): void {
  program
    .command("validate")
    .description(
      "validate Istio and Gateway API manifests offline as the API server and Istio's webhook would",
    )
    .argument("[paths...]", "YAML/JSON files, directories (recursive), or - for stdin")
    .option(
      "--strict",
      "report kinds that are not Istio or Gateway API as errors instead of skipping them",
    )
    .addOption(
      new Option("--istio <version>", "Istio CRD set").choices(["1.30", "master"]).default("1.30"),
    )
    .addOption(
      new Option("--gateway-api <channel>", "Gateway API channel")
        .choices(["standard", "experimental"])
        .default("experimental"),
    )
    .addOption(outputOption(["text", "json", "sarif", "github"]))
    .action(async (paths: string[], flags: ValidateFlags) => {
      if (paths.length === 0) {
        ctx.io.stderr("ambientkit validate: give files, directories or - (stdin) to validate\n");
        ctx.setExit(EXIT_USAGE);
        return;
      }
      const files = await collectFiles(ctx, paths);
      const options = {
        istio: flags.istio,
        gatewayApi: flags.gatewayApi,
        strict: flags.strict === true,
      };
      // Documents are validated one at a time and only what the output needs is kept: counts
      // for text and github (issue lines are printed as they are found), results for json and sarif.
      const keep = flags.output === "json" || flags.output === "sarif";
      const results: ValidateJsonResult[] = [];
      let documents = 0;
      let skipped = 0;
      let invalid = 0;
      for await (const [file, decoded] of readEach(ctx, files)) {
        const name = displayName(file);
        const docs: Iterable<DocumentResult> =
          decoded.issue === undefined
            ? validateYamlDocuments(decoded.text, options)
            : [
                {
                  index: 0,
                  line: decoded.issue.line ?? 1,
                  ok: false,
                  skipped: false,
                  issues: [decoded.issue],
                },
              ];
        for (const d of docs) {
          documents++;
          if (d.skipped) skipped++;
          if (!d.ok) invalid++;
          if (keep) {
            results.push({
              file: name,
              line: d.line,
              apiVersion: d.apiVersion ?? null,
              kind: d.kind ?? null,
              name: d.name ?? null,
              namespace: d.namespace ?? null,
              valid: d.ok,
              skipped: d.skipped,
              issues: d.issues,
            });
          } else if (flags.output === "github") {
            for (const i of d.issues) ctx.io.stdout(githubCommand(file, d.line, d, i));
          } else {
            for (const i of d.issues) {
              ctx.io.stdout(
                `${name}:${i.line ?? d.line}:${i.column ?? 1}: ${i.severity} ${i.code} ${i.message}${label(d)}\n`,
              );
            }
          }
        }
      }
      const report: ValidateJsonReport = {
        files: files.length,
        documents,
        skipped,
        valid: documents - skipped - invalid,
        invalid,
        results,
      };
      if (flags.output === "json") {
        ctx.io.stdout(`${JSON.stringify(report, null, 2)}\n`);
      } else if (flags.output === "sarif") {
        ctx.io.stdout(`${JSON.stringify(sarif(results), null, 2)}\n`);
      } else {
        ctx.io.stdout(
          `${report.files} file(s), ${report.documents} document(s): ${report.valid} valid, ${report.invalid} invalid, ${report.skipped} skipped\n`,
        );
      }
      ctx.setExit(invalid > 0 ? EXIT_FAILURE_FOUND : EXIT_OK);
    });
}
