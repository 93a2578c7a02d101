import type http2 from "node:http2";
import { HboneError } from "./errors.js";
import { toHboneError } from "./node-error.js";

/**
 * ztunnel's PING liveness: a PING every `intervalMs`; a PING unanswered for `timeoutMs` declares the
 * connection dead (`onDead` then tears it down). Returns a stop function. 0 disables.
 *
 * Our own event loop can be late: when it was blocked, the deadline timer runs before the poll
 * phase has read the ACK that is already waiting in the socket. So a deadline that fired late by
 * more than half the timeout is re-armed (the peer gets a full timeout while we are responsive),
 * and with `activity` (a counter of bytes read from the peer) a peer that sent anything since the
 * PING counts as alive, as Hyper's and Go's data-aware keepalives do.
 */
export function startKeepalive(
  session: http2.Http2Session,
  intervalMs: number,
  timeoutMs: number,
  onDead: (error: HboneError) => void,
  activity?: () => number,
): () => void {
  if (intervalMs <= 0) return () => {};
  let outstanding: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (seen: number | undefined): void => {
    const due = Date.now() + timeoutMs;
    outstanding = setTimeout(() => {
      outstanding = undefined;
      if (stopped) return;
      const late = Date.now() - due;
      const now = activity?.();
      if (late > timeoutMs / 2 || (now !== undefined && now !== seen)) {
        arm(now);
        return;
      }
      onDead(
        new HboneError(
          "ERR_HBONE_PING_TIMEOUT",
          `the HBONE peer did not answer a PING within ${timeoutMs} ms; the connection is dead`,
        ),
      );
    }, timeoutMs);
    outstanding.unref();
  };
  const interval = setInterval(() => {
    if (outstanding !== undefined || session.destroyed || stopped) return;
    arm(activity?.());
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
