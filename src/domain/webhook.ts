/**
 * Webhook deliveries, the pure parts: the signature a receiver checks and what an answer means.
 *
 * Signature: `Snapvisor-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
 * `Snapvisor-Timestamp` (unix seconds, the time of this attempt): a receiver recomputes it over the
 * raw body, compares in constant time and refuses a timestamp outside its replay window.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_EVENTS = ['job.failed', 'policy.run', 'drift.changed'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** What a receiver should accept: a timestamp at most this far from its own clock. */
export const REPLAY_WINDOW_SEC = 300;

export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

/** The receiver's check (also the README's example): signature over timestamp and raw body, inside the window. */
export function verifyWebhookSignature(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  nowSec: number,
  windowSec = REPLAY_WINDOW_SEC,
): boolean {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSec - ts) > windowSec || headers.signature === undefined) return false;
  const expected = Buffer.from(webhookSignature(secret, ts, body));
  const given = Buffer.from(headers.signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'give-up';

/**
 * 2xx delivered; 408, 429 and 5xx retried; any other answer (4xx: the receiver refuses it, 3xx:
 * redirects are not followed) given up at once. Network errors and timeouts are retried.
 */
export function classifyAnswer(status: number): DeliveryOutcome {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'give-up';
}
