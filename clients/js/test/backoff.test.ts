import { describe, expect, it } from "vitest";
import { backoff, retryAfter } from "../src/backoff";

describe("backoff", () => {
  it("stays within [0, min(30 s, 0.5 s × 2^(n-1))]: full jitter over a doubling ceiling", () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** (attempt - 1));
      expect(backoff(attempt, () => 0)).toBe(0);
      expect(backoff(attempt, () => 0.999999)).toBeCloseTo(ceiling, -1);
      expect(backoff(attempt, () => 0.5)).toBe(ceiling / 2);
    }
  });

  it("never waits more than 30 s, however many failures", () => {
    expect(backoff(1000, () => 0.999999)).toBeLessThanOrEqual(30_000);
  });

  it("lets Retry-After win over the jittered delay", () => {
    expect(backoff(1, () => 0.5, 7000)).toBe(7000);
    expect(backoff(9, () => 0.5, 0)).toBe(0);
  });

  it("caps a Retry-After at two minutes, so a wrong header cannot park the session", () => {
    expect(backoff(1, () => 0.5, 86_400_000)).toBe(120_000);
    expect(backoff(1, () => 0.5, -5)).toBe(0);
  });
});

describe("Retry-After", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);

  it("reads delay-seconds", () => {
    expect(retryAfter("7", now)).toBe(7000);
    expect(retryAfter(" 120 ", now)).toBe(120_000);
  });

  it("reads an HTTP date, relative to the local clock", () => {
    expect(retryAfter("Thu, 01 Jan 2026 12:00:30 GMT", now)).toBe(30_000);
  });

  it("treats a date in the past as now", () => {
    expect(retryAfter("Thu, 01 Jan 2026 11:00:00 GMT", now)).toBe(0);
  });

  it("ignores a missing or unreadable header", () => {
    expect(retryAfter(null, now)).toBeUndefined();
    expect(retryAfter(undefined, now)).toBeUndefined();
    expect(retryAfter("soon", now)).toBeUndefined();
    expect(retryAfter("-3", now)).toBeUndefined();
  });
});
