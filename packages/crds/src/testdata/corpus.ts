// Loads the manifest corpus (packages/crds/testdata/corpus: index.jsonl + YAML files, origin
// and licences in its SOURCE.md) for the corpus tests and the benchmark.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadYamlDocuments } from "../yaml.js";

export const corpusRoot: string = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "testdata",
  "corpus",
);

export interface CorpusEntry {
  file: string;
  docIndex: number;
  family: "istio" | "gateway-api";
  apiVersion: string;
  kind: string;
  name?: string;
  expect: "valid" | "invalid" | "analyzer-input";
  expectedError?: string;
  results?: Record<string, { ok: boolean; errors?: string[] }>;
}

export interface CorpusDoc extends CorpusEntry {
  /** The parsed document with the test-only `_err` key removed. */
  doc: Record<string, unknown>;
  /** Istio CRD set the expectation is about: istio/istio files are from master, the rest 1.30. */
  istio: "1.30" | "master";
  key: string;
}

export function loadCorpus(): CorpusDoc[] {
  const entries = readFileSync(join(corpusRoot, "index.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as CorpusEntry);
  const files = new Map<string, unknown[]>();
  const out: CorpusDoc[] = [];
  for (const e of entries) {
    let docs = files.get(e.file);
    if (docs === undefined) {
      docs = loadYamlDocuments(readFileSync(join(corpusRoot, e.file), "utf8"));
      files.set(e.file, docs);
    }
    const raw = docs[e.docIndex] as Record<string, unknown> | undefined;
    if (raw === undefined || raw.kind !== e.kind)
      throw new Error(`corpus doc not found: ${e.file}#${e.docIndex}`);
    const { _err: _ignored, ...doc } = raw;
    const needsMaster =
      e.expect === "valid"
        ? e.results?.["istio-1.30.3"]?.ok === false && e.results?.["istio-master"]?.ok === true
        : e.file.includes("/istio-istio/");
    out.push({ ...e, doc, istio: needsMaster ? "master" : "1.30", key: `${e.file}#${e.docIndex}` });
  }
  return out;
}
