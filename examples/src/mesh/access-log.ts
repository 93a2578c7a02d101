// A structured access log sink: ztunnel's JSON lines (via @ambientkit/telemetry's record shapes),
// kept in memory for the demo and tests and optionally written out.
import type { AccessLogger } from "@ambientkit/telemetry";

export interface LogEntry {
  readonly time: string;
  readonly level: "debug" | "info" | "warn" | "error";
  readonly scope: string;
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** An AccessLogger that keeps the last `limit` entries and passes each JSON line to `write`. */
export class MemoryLog implements AccessLogger {
  readonly entries: LogEntry[] = [];
  readonly #limit: number;
  readonly #write: ((line: string) => void) | undefined;
  readonly #scope: string;

  constructor(options: { limit?: number; write?: (line: string) => void; scope?: string } = {}) {
    this.#limit = options.limit ?? 1000;
    this.#write = options.write;
    this.#scope = options.scope ?? "access";
  }

  #push(level: LogEntry["level"], fields: object, message: string): void {
    const entry: LogEntry = {
      time: new Date().toISOString(),
      level,
      scope: this.#scope,
      message,
      fields: { ...(fields as Record<string, unknown>) },
    };
    this.entries.push(entry);
    if (this.entries.length > this.#limit) this.entries.shift();
    if (this.#write) {
      this.#write(
        JSON.stringify({ level, time: entry.time, scope: entry.scope, message, ...entry.fields }),
      );
    }
  }

  info(fields: object, message: string): void {
    this.#push("info", fields, message);
  }
  warn(fields: object, message: string): void {
    this.#push("warn", fields, message);
  }
  error(fields: object, message: string): void {
    this.#push("error", fields, message);
  }

  /** Entries whose message or fields match `pred`. */
  find(pred: (e: LogEntry) => boolean): LogEntry[] {
    return this.entries.filter(pred);
  }
}
