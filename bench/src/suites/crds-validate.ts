// crds validation throughput on the manifest corpus (packages/crds/testdata/corpus), side by side with
// @kubernetes-models/istio's own validation (ajv, no CEL, unknown fields accepted) and raw ajv on
// the CRD's openAPIV3Schema; plus the CLI on 1,000 generated files.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { validate } from "@ambientkit/crds";
import * as k8sIstio from "@kubernetes-models/istio";
import { Ajv, type ValidateFunction } from "ajv";
import { parseAllDocuments, stringify } from "yaml";
import type { BenchGroup, BenchSuite } from "../harness.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const corpusRoot = join(repo, "packages", "crds", "testdata", "corpus");

interface Doc {
  doc: Record<string, unknown>;
  family: string;
  kind: string;
  apiVersion: string;
}

function loadCorpus(): Doc[] {
  const lines = readFileSync(join(corpusRoot, "index.jsonl"), "utf8").trim().split("\n");
  const files = new Map<string, unknown[]>();
  const out: Doc[] = [];
  for (const line of lines) {
    const e = JSON.parse(line) as {
      file: string;
      docIndex: number;
      expect: string;
      family: string;
    };
    if (e.expect === "analyzer-input") continue;
    let docs = files.get(e.file);
    if (docs === undefined) {
      docs = parseAllDocuments(readFileSync(join(corpusRoot, e.file), "utf8")).map((d) => d.toJS());
      files.set(e.file, docs);
    }
    const raw = docs[e.docIndex] as Record<string, unknown>;
    const { _err: _ignored, ...doc } = raw;
    out.push({ doc, family: e.family, kind: String(doc.kind), apiVersion: String(doc.apiVersion) });
  }
  return out;
}

type ModelCtor = new (data: unknown) => { validate(): void };

/** The @kubernetes-models/istio class for a doc (networking v1 → the identical v1beta1 schema). */
function peerModel(d: Doc): { Model: ModelCtor; data: unknown } | undefined {
  const [group, version] = d.apiVersion.split("/") as [string, string];
  const ns = group.replace(/\.(\w)/g, (_m, c: string) => c.toUpperCase()).replace(/\.$/, "");
  const groupMod = (
    k8sIstio as unknown as Record<string, Record<string, Record<string, ModelCtor>>>
  )[ns];
  if (groupMod === undefined) return undefined;
  for (const v of [version, "v1beta1", "v1alpha3", "v1alpha1"]) {
    const Model = groupMod[v]?.[d.kind];
    if (Model !== undefined) return { Model, data: { ...d.doc, apiVersion: `${group}/${v}` } };
  }
  return undefined;
}

/**
 * Raw ajv on each CRD's openAPIV3Schema as published: no defaults, unknown fields accepted, no list
 * types, no CEL, no metadata checks. `allErrors` as ambientkit reports every error (ambientkit
 * validates first with a stop-at-first-error validator and re-runs the all-errors one on failure).
 */
function rawAjvValidators(allErrors: boolean): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors });
  for (const f of ["int32", "int64", "double", "byte", "date-time", "ipv4", "ipv6"])
    ajv.addFormat(f, true);
  const out = new Map<string, ValidateFunction>();
  const crdFile = join(
    repo,
    "packages",
    "crds",
    "crds",
    "istio",
    "1.30",
    "customresourcedefinitions.gen.yaml",
  );
  for (const d of parseAllDocuments(readFileSync(crdFile, "utf8"))) {
    const crd = d.toJS() as {
      spec: {
        group: string;
        names: { kind: string };
        versions: Array<{ name: string; schema: { openAPIV3Schema: object } }>;
      };
    };
    for (const v of crd.spec.versions) {
      out.set(
        `${crd.spec.group}/${v.name}/${crd.spec.names.kind}`,
        ajv.compile(v.schema.openAPIV3Schema),
      );
    }
  }
  return out;
}

/** One call validates every item once: ops = items (see BenchCase.batch). */
function each<T>(items: T[], fn: (item: T) => unknown): { fn: () => unknown; batch: number } {
  return {
    batch: items.length,
    fn: () => {
      let last: unknown;
      for (const item of items) last = fn(item);
      return last;
    },
  };
}

const suite: BenchSuite = {
  package: "crds",
  async groups(): Promise<BenchGroup[]> {
    const corpus = loadCorpus();
    const istio = corpus.filter((d) => d.family === "istio");
    const withPeer = istio
      .map((d) => ({ d, peer: peerModel(d) }))
      .filter(
        (x): x is { d: Doc; peer: { Model: ModelCtor; data: unknown } } => x.peer !== undefined,
      );
    const raw = rawAjvValidators(true);
    const rawFirst = rawAjvValidators(false);
    const withRaw = istio.filter((d) => raw.has(`${d.apiVersion}/${d.kind}`));
    // Warm every lazily compiled schema and CEL program once, outside the timed runs.
    for (const d of corpus) validate(d.doc, { istio: "master" });
    for (const d of corpus) validate(d.doc);
    for (const { peer } of withPeer) {
      try {
        new peer.Model(peer.data).validate();
      } catch {
        // invalid documents throw; only the time counts here
      }
    }
    return [
      {
        name: "crds/validate-corpus",
        target: "≥ 10,000 docs/s full validation (schema + CEL + semantic), ops = documents",
        cases: [
          {
            name: `ambientkit validate, full (${corpus.length} corpus docs, Istio + Gateway API)`,
            ...each(corpus, (d) => validate(d.doc)),
          },
          {
            name: `ambientkit validate, full (${istio.length} Istio docs)`,
            ...each(istio, (d) => validate(d.doc)),
          },
          {
            name: `ambientkit validate, full (${corpus.length - istio.length} Gateway API docs)`,
            ...each(
              corpus.filter((d) => d.family !== "istio"),
              (d) => validate(d.doc),
            ),
          },
        ],
      },
      {
        name: "crds/validate-istio-vs-kubernetes-models",
        target:
          "full validation vs @kubernetes-models/istio .validate() (no CEL, accepts unknown fields)",
        ratio: {
          ours: `ambientkit validate, full (${withPeer.length} Istio docs)`,
          peer: "@kubernetes-models/istio .validate() (peer)",
        },
        cases: [
          {
            name: `ambientkit validate, full (${withPeer.length} Istio docs)`,
            ...each(withPeer, ({ d }) => validate(d.doc)),
          },
          {
            name: "@kubernetes-models/istio .validate() (peer)",
            peer: true,
            ...each(withPeer, ({ peer }) => {
              try {
                new peer.Model(peer.data).validate();
                return true;
              } catch {
                return false;
              }
            }),
          },
        ],
      },
      {
        name: "crds/validate-schema-vs-raw-ajv",
        // This ratio is a target: cases alternate in short slices so drift hits both alike.
        timeMs: 4000,
        interleave: true,
        target:
          "schema-only step (defaults, schema, unknown fields, list types, metadata) no slower than raw ajv (all errors) on the CRD schema",
        ratio: {
          ours: `ambientkit validate, schema only (${withRaw.length} Istio docs)`,
          peer: "raw ajv allErrors on openAPIV3Schema (peer)",
        },
        cases: [
          {
            name: `ambientkit validate, schema only (${withRaw.length} Istio docs)`,
            ...each(withRaw, (d) => validate(d.doc, { cel: false, semantic: false })),
          },
          {
            name: "raw ajv allErrors on openAPIV3Schema (peer)",
            peer: true,
            ...each(withRaw, (d) => raw.get(`${d.apiVersion}/${d.kind}`)?.(d.doc)),
          },
          {
            name: "raw ajv first error only on openAPIV3Schema (peer)",
            peer: true,
            ...each(withRaw, (d) => rawFirst.get(`${d.apiVersion}/${d.kind}`)?.(d.doc)),
          },
        ],
      },
      {
        name: "crds/validate-cli-1000-files",
        target: "ambientkit validate on 1,000 files in under 3 s (process start included)",
        cases: [],
        measure: async () => {
          const dir = mkdtempSync(join(tmpdir(), "ambientkit-bench-validate-"));
          try {
            const valid = corpus.filter((d) => validate(d.doc).ok);
            mkdirSync(join(dir, "m"));
            for (let i = 0; i < 1000; i++) {
              const d = valid[i % valid.length] as Doc;
              writeFileSync(
                join(dir, "m", `doc-${String(i).padStart(4, "0")}.yaml`),
                stringify(d.doc),
              );
            }
            const files = readdirSync(join(dir, "m")).length;
            const bin = join(repo, "packages", "cli", "dist", "bin.js");
            const t0 = performance.now();
            const r = spawnSync(process.execPath, [bin, "validate", "m"], {
              cwd: dir,
              encoding: "utf8",
            });
            const seconds = (performance.now() - t0) / 1000;
            if (r.status !== 0)
              throw new Error(
                `ambientkit validate exited ${r.status}: ${r.stdout.slice(-500)}${r.stderr}`,
              );
            return [
              {
                name: `ambientkit validate, ${files} files (one document each)`,
                value: Number(seconds.toFixed(2)),
                unit: "s",
              },
            ];
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      },
    ];
  },
};

export default suite;
