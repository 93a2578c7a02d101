// Decisions of one policy set, memoised on every input a decision can depend on. The inputs are
// looked up one level at a time (a Map per attribute) rather than joined into one key string:
// most of them (method, addresses, the caller's principal) are the same string objects request
// after request, whose hash V8 keeps, so a lookup hashes only the few strings that are new on each
// request (path, :authority) instead of building, flattening and hashing a long key every time.

type Level = Map<unknown, unknown>;

/** The inputs of the last lookup that found a decision, and that decision. */
interface Last<V> {
  method: string;
  destinationPort: number;
  destinationIp: string;
  sourceIp: string;
  principal: string | null;
  sni: string | undefined;
  authority: string;
  path: string;
  headers: string;
  jwt: string | null;
  value: V;
}

/** Bounded: a client cycling through paths or addresses costs a clear, never unbounded memory. */
export class DecisionMemo<V> {
  #root: Level = new Map();
  #size = 0;
  // A caller repeating its request (the common case on a busy route) is answered by comparing
  // the inputs to the last ones found, which is cheaper than hashing the new strings among them.
  #last: Last<V> | undefined;
  readonly #limit: number;

  constructor(limit = 10_000) {
    this.#limit = limit;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /**
   * The decision for these inputs: the request's method, destination port and address, source
   * address, caller principal, SNI, :authority, path, the headers policies read (joined, empty when
   * they read none) and the JWT payload as JSON (or null). Positional and unrolled: this runs on
   * every request, and an object or array of the keys would be allocated each time.
   */
  get(
    method: string,
    destinationPort: number,
    destinationIp: string,
    sourceIp: string,
    principal: string | null,
    sni: string | undefined,
    authority: string,
    path: string,
    headers: string,
    jwt: string | null,
  ): V | undefined {
    const last = this.#last;
    if (
      last !== undefined &&
      last.path === path &&
      last.authority === authority &&
      last.principal === principal &&
      last.method === method &&
      last.sourceIp === sourceIp &&
      last.destinationPort === destinationPort &&
      last.destinationIp === destinationIp &&
      last.sni === sni &&
      last.headers === headers &&
      last.jwt === jwt
    )
      return last.value;
    let m = this.#root.get(method) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(destinationPort) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(destinationIp) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(sourceIp) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(principal) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(sni) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(authority) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(path) as Level | undefined;
    if (m === undefined) return undefined;
    m = m.get(headers) as Level | undefined;
    if (m === undefined) return undefined;
    const value = m.get(jwt) as V | undefined;
    if (value !== undefined) {
      this.#last = {
        method,
        destinationPort,
        destinationIp,
        sourceIp,
        principal,
        sni,
        authority,
        path,
        headers,
        jwt,
        value,
      };
    }
    return value;
  }

  /** Memoises `value` for the inputs, given as to {@link get}. */
  set(
    value: V,
    ...key: [
      method: string,
      destinationPort: number,
      destinationIp: string,
      sourceIp: string,
      principal: string | null,
      sni: string | undefined,
      authority: string,
      path: string,
      headers: string,
      jwt: string | null,
    ]
  ): void {
    if (this.#size >= this.#limit) {
      this.#root = new Map();
      this.#size = 0;
      this.#last = undefined;
    }
    let m = this.#root;
    const jwt = key[9];
    for (let i = 0; i < 9; i++) {
      const part = key[i];
      let next = m.get(part) as Level | undefined;
      if (next === undefined) {
        next = new Map();
        m.set(part, next);
      }
      m = next;
    }
    if (!m.has(jwt)) this.#size++;
    m.set(jwt, value);
  }
}
