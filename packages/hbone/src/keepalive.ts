import type http2 from "node:http2";
import { HboneError } from "./errors.js";
import { toHboneError } from "./node-error.js";

/**
 * ztunnel's PING liveness: a PING every `intervalMs`; a PING unanswered for `timeoutMs` declares the
 * connection dead (`onDead` then tears it down). Returns a stop function. 0 disables.
 */
export function startKeepalive(
  session: http2.Http2Session,
  intervalMs: number,
  timeoutMs: number,
  onDead: (error: HboneError) => void,
): () => void {
  if (intervalMs <= 0) return () => {};
  let outstanding: NodeJS.Timeout | undefined;
  let stopped = false;
  const interval = setInterval(() => {
    if (outstanding !== undefined || session.destroyed || stopped) return;
    outstanding = setTimeout(() => {
      outstanding = undefined;
      if (stopped) return;
      onDead(
        new HboneError(
          "ERR_HBONE_PING_TIMEOUT",
          `the HBONE peer did not answer a PING within ${timeoutMs} ms; the connection is dead`,
        ),
      );
    }, timeoutMs);
    outstanding.unref();
    let sent = false;
    try {
      sent = session.ping((err) => {
        if (outstanding) clearTimeout(outstanding);
        outstanding = undefined;
        if (err && !session.destroyed && !stopped) onDead(toHboneError(err, "HBONE PING"));
      });
    } catch {
      sent = false;
    }
    if (!sent && outstanding) {
      clearTimeout(outstanding);
      outstanding = undefined;
    }
  }, intervalMs);
  interval.unref();
  const stop = (): void => {
    stopped = true;
    clearInterval(interval);
    if (outstanding) clearTimeout(outstanding);
    outstanding = undefined;
  };
  session.once("close", stop);
  return stop;
}
