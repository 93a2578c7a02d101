// Envoy's x-forwarded-client-cert: comma-separated elements (one per proxy hop, the last added by
// the proxy nearest to us), each `Key=Value` pairs separated by `;`, values optionally quoted with
// `\"` escapes. Only URI (the client certificate's URI SAN) and By (the proxy's own URI) matter here.
import { AuthzHttpError } from "./errors.js";

/** One XFCC element: the keys Envoy sets (By, Hash, Cert, Chain, Subject, URI, DNS), as sent. */
export interface XfccElement {
  readonly by?: string;
  readonly hash?: string;
  readonly subject?: string;
  /** Every URI= of the element (Envoy emits one per URI SAN). */
  readonly uris: readonly string[];
  readonly dns: readonly string[];
}

/** Splits `s` at `sep` outside double quotes; throws on an unterminated quote. */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (ch === "\\" && quoted) {
      cur += ch + (s[i + 1] ?? "");
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
      cur += ch;
    } else if (ch === sep && !quoted) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw new Error("unterminated quoted value");
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"'))
    return v.slice(1, -1).replace(/\\(.)/g, "$1");
  return v;
}

/**
 * Parses an XFCC header value (several header lines are joined with `,` first, as Envoy does).
 * Throws AuthzHttpError ERR_AUTHZ_HTTP_INVALID_XFCC when it is not the documented shape: the
 * caller denies, since a header it cannot read must not be read as "no identity claimed".
 */
export function parseXfcc(value: string | readonly string[]): XfccElement[] {
  const text = typeof value === "string" ? value : value.join(",");
  try {
    const elements: XfccElement[] = [];
    for (const raw of splitOutsideQuotes(text, ",")) {
      if (raw.trim() === "") throw new Error("empty element");
      let by: string | undefined;
      let hash: string | undefined;
      let subject: string | undefined;
      const uris: string[] = [];
      const dns: string[] = [];
      for (const pair of splitOutsideQuotes(raw, ";")) {
        const eq = pair.indexOf("=");
        if (eq <= 0) throw new Error(`"${pair.trim()}" is not Key=Value`);
        const key = pair.slice(0, eq).trim().toLowerCase();
        const val = unquote(pair.slice(eq + 1).trim());
        if (key === "by") by = val;
        else if (key === "hash") hash = val;
        else if (key === "subject") subject = val;
        else if (key === "uri") uris.push(val);
        else if (key === "dns") dns.push(val);
      }
      elements.push({
        ...(by !== undefined ? { by } : {}),
        ...(hash !== undefined ? { hash } : {}),
        ...(subject !== undefined ? { subject } : {}),
        uris,
        dns,
      });
    }
    return elements;
  } catch (cause) {
    throw new AuthzHttpError(
      "ERR_AUTHZ_HTTP_INVALID_XFCC",
      `x-forwarded-client-cert does not parse (${(cause as Error).message}); check the trusted proxy's forward_client_cert_details setting`,
      { cause },
    );
  }
}

// A proxy forwards the same few client certificates over and over: parse each text once. The
// last text is also kept, since comparing it to the next request's is cheaper than hashing it.
const memo = new Map<string, string | null>();
let lastText: string | undefined;
let lastPrincipal: string | null = null;

/** The client identity an XFCC header carries: the URI SAN of the nearest hop's element. */
export function xfccPrincipal(value: string | readonly string[]): string | null {
  const text = typeof value === "string" ? value : value.join(",");
  if (text === lastText) return lastPrincipal;
  const known = memo.get(text);
  if (known !== undefined) {
    lastText = text;
    lastPrincipal = known;
    return known;
  }
  const elements = parseXfcc(text);
  const last = elements.at(-1);
  const uri = last?.uris.find((u) => u.startsWith("spiffe://")) ?? null;
  if (memo.size >= 1024) memo.clear();
  memo.set(text, uri);
  lastText = text;
  lastPrincipal = uri;
  return uri;
}
