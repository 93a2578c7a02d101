// PEM (RFC 7468) and base64 (RFC 4648 §4) codecs. Universal: no node: imports, no Buffer.
import { IdentityError } from "./errors.js";

/** One decoded PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and the DER bytes. */
export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

/** Labels accepted as a private key by {@link decodePemPrivateKey}. */
export type PemPrivateKeyLabel = "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_REVERSE: Int16Array = (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < B64.length; i++) table[B64.charCodeAt(i)] = i;
  return table;
})();

/** Standard base64 with padding (what PEM and JWK `x5c` use). */
export function base64Encode(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n =
      ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out += B64[n >>> 18] + (B64[(n >>> 12) & 63] as string) + B64[(n >>> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = (bytes[i] as number) << 16;
    out += `${B64[n >>> 18]}${B64[(n >>> 12) & 63]}==`;
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8);
    out += `${B64[n >>> 18]}${B64[(n >>> 12) & 63]}${B64[(n >>> 6) & 63]}=`;
  }
  return out;
}

/**
 * Strict standard base64 decode. ASCII whitespace is skipped (PEM wraps lines); any other
 * character outside the alphabet, bad padding or a truncated quantum is an
 * `ERR_IDENTITY_PEM` error; padding is required.
 */
export function base64Decode(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4) + 3);
  let len = 0;
  let acc = 0;
  let bits = 0;
  let pad = 0;
  let sextets = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (c === 0x3d /* = */) {
      pad++;
      continue;
    }
    const v = c < 128 ? (B64_REVERSE[c] as number) : -1;
    if (v < 0) throw pemError(`invalid base64 character ${JSON.stringify(text[i])}`);
    if (pad > 0) throw pemError("base64 data continues after '=' padding");
    sextets++;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[len++] = (acc >>> bits) & 0xff;
    }
  }
  if (sextets % 4 === 1) throw pemError("truncated base64 data");
  if (pad > 2 || (sextets + pad) % 4 !== 0) throw pemError("bad base64 padding");
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw pemError("non-canonical base64 data");
  return out.slice(0, len);
}

const BEGIN =
  /-----BEGIN ([\x21-\x2c\x2e-\x7e](?:[\x21-\x2c\x2e-\x7e ]*[\x21-\x2c\x2e-\x7e])?)?-----/g;

/**
 * Decodes every PEM block in `text` (explanatory text around blocks is allowed, as RFC 7468
 * says). Throws `ERR_IDENTITY_PEM` when there is no block, a block is unterminated, its END
 * label differs, it carries RFC 1421 headers (legacy encrypted keys) or its base64 is invalid.
 */
export function decodePem(text: string): PemBlock[] {
  if (typeof text !== "string") throw pemError("PEM input must be a string");
  const blocks: PemBlock[] = [];
  BEGIN.lastIndex = 0;
  let m = BEGIN.exec(text);
  while (m !== null) {
    const label = m[1] ?? "";
    const bodyStart = m.index + m[0].length;
    const endMarker = "-----END ";
    const end = text.indexOf(endMarker, bodyStart);
    if (end < 0) throw pemError(`PEM block "${label}" has no END line`);
    const endLabelEnd = text.indexOf("-----", end + endMarker.length);
    if (endLabelEnd < 0) throw pemError(`PEM block "${label}" has a malformed END line`);
    const endLabel = text.slice(end + endMarker.length, endLabelEnd);
    if (endLabel !== label) {
      throw pemError(`PEM block "BEGIN ${label}" is closed by "END ${endLabel}"`);
    }
    const body = text.slice(bodyStart, end);
    if (body.includes(":")) {
      throw pemError(
        `PEM block "${label}" has headers (e.g. Proc-Type); encrypted legacy PEM is not supported — convert it to unencrypted PKCS#8 with \`openssl pkcs8 -topk8 -nocrypt\``,
      );
    }
    if (body.includes("-----")) throw pemError(`PEM block "${label}" contains a nested marker`);
    let der: Uint8Array;
    try {
      der = base64Decode(body);
    } catch (cause) {
      throw pemError(`PEM block "${label}": ${(cause as Error).message}`, cause);
    }
    if (der.length === 0) throw pemError(`PEM block "${label}" is empty`);
    blocks.push({ label, der });
    BEGIN.lastIndex = endLabelEnd + 5;
    m = BEGIN.exec(text);
  }
  if (blocks.length === 0) {
    throw pemError("no PEM block found (expected -----BEGIN …----- / -----END …----- lines)");
  }
  return blocks;
}

/** Encodes DER bytes as one PEM block with 64-column base64 lines and a trailing newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = base64Encode(der);
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
  return `${out}-----END ${label}-----\n`;
}

/**
 * Decodes a PEM certificate or certificate chain (order kept: for an SVID, leaf first).
 * Blocks that are not `CERTIFICATE` are an error unless `allowOtherBlocks` is set, in which
 * case they are skipped (combined key+cert files).
 */
export function decodePemCertificates(
  text: string,
  options: { allowOtherBlocks?: boolean } = {},
): Uint8Array[] {
  const certs: Uint8Array[] = [];
  for (const block of decodePem(text)) {
    if (block.label === "CERTIFICATE") certs.push(block.der);
    else if (!options.allowOtherBlocks) {
      throw pemError(`expected only CERTIFICATE blocks, found "${block.label}"`);
    }
  }
  if (certs.length === 0) throw pemError("no CERTIFICATE block found");
  return certs;
}

/** Encodes DER certificates as concatenated PEM `CERTIFICATE` blocks, in the given order. */
export function encodePemCertificates(ders: readonly Uint8Array[]): string {
  return ders.map((der) => encodePem("CERTIFICATE", der)).join("");
}

/**
 * Decodes exactly one private key block: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC 1) or
 * `RSA PRIVATE KEY` (PKCS#1). Certificates in the same text are skipped; `ENCRYPTED PRIVATE KEY`
 * and several keys are errors.
 */
export function decodePemPrivateKey(text: string): { label: PemPrivateKeyLabel; der: Uint8Array } {
  const keys: { label: PemPrivateKeyLabel; der: Uint8Array }[] = [];
  for (const block of decodePem(text)) {
    if (
      block.label === "PRIVATE KEY" ||
      block.label === "EC PRIVATE KEY" ||
      block.label === "RSA PRIVATE KEY"
    ) {
      keys.push({ label: block.label, der: block.der });
    } else if (block.label === "ENCRYPTED PRIVATE KEY") {
      throw pemError(
        "encrypted private keys are not supported — decrypt it with `openssl pkcs8 -topk8 -nocrypt`",
      );
    } else if (block.label !== "CERTIFICATE") {
      throw pemError(`expected a private key, found "${block.label}"`);
    }
  }
  const [first, ...rest] = keys;
  if (first === undefined) throw pemError("no PRIVATE KEY block found");
  if (rest.length > 0) throw pemError(`expected one private key, found ${keys.length}`);
  return first;
}

/** Decodes exactly one PKCS#10 request (`CERTIFICATE REQUEST` or the legacy `NEW CERTIFICATE REQUEST`). */
export function decodePemCsr(text: string): Uint8Array {
  const blocks = decodePem(text);
  const csrs = blocks.filter(
    (b) => b.label === "CERTIFICATE REQUEST" || b.label === "NEW CERTIFICATE REQUEST",
  );
  const [first, ...rest] = csrs;
  if (first === undefined) {
    throw pemError(
      `expected a CERTIFICATE REQUEST block, found ${blocks.map((b) => `"${b.label}"`).join(", ")}`,
    );
  }
  if (rest.length > 0) throw pemError(`expected one certificate request, found ${csrs.length}`);
  return first.der;
}

function pemError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_PEM",
    `${message}`,
    cause === undefined ? undefined : { cause },
  );
}
