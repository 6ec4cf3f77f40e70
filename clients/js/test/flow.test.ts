import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { backoff, retryAfter } from "../src/backoff";
import { KEYTURN, SIMPLEJWT } from "../src/endpoints";
import { decideRefresh, decideRequest, errorCode, mayRetry, refreshDelay } from "../src/flow";

/** `end` when the refresh endpoint's answer ends the session (what `isDefinitive` said before the flow). */
const isDefinitive = (status: number, code: string | undefined, e = KEYTURN) => decideRefresh(status, code, e) == "end";

/** The flow's decision on a 401 or another answer, as `judge` took it before the flow. */
function judge(status: number, code: string | undefined, sent: string, current: string, e = KEYTURN, retry = true, afterRefresh = false) {
  return decideRequest(status, code, sent == current ? "current" : "older", afterRefresh, retry, e);
}

const DEFINITIVE = [
  "refresh_token_reused",
  "session_revoked",
  "session_expired",
  "refresh_token_expired",
  "token_invalid",
  "token_revoked",
  "invalid_request",
];

describe("refresh answers", () => {
  it.each(DEFINITIVE)("%s on a 401 (or 400) ends the session", (code) => {
    expect(isDefinitive(code == "invalid_request" ? 400 : 401, code, KEYTURN)).toBe(true);
    expect(isDefinitive(403, code, KEYTURN)).toBe(true);
  });

  it.each([
    [500, "server_error"],
    [503, "server_error"],
    [429, "rate_limited"],
    [401, "token_expired"],
    [401, "invalid_credentials"],
    [401, undefined],
    [404, "invalid_request"],
    [502, "session_revoked"],
  ])("HTTP %i %s is temporary", (status, code) => {
    expect(isDefinitive(status, code, KEYTURN)).toBe(false);
  });

  it("follows the shape: simplejwt's token_not_valid ends the session, Keyturn's codes do not", () => {
    expect(isDefinitive(401, "token_not_valid", SIMPLEJWT)).toBe(true);
    expect(isDefinitive(401, "session_revoked", SIMPLEJWT)).toBe(false);
    expect(isDefinitive(401, "token_not_valid", KEYTURN)).toBe(false);
  });

  it("can be configured per shape", () => {
    expect(isDefinitive(401, "gone", { ...KEYTURN, definitive: ["gone"] })).toBe(true);
  });
});

describe("error codes", () => {
  const challenge = 'Bearer realm="keyturn", error="invalid_token", error_description="token_expired: The access token has expired."';

  it("come from the body's error field", () => {
    expect(errorCode({ error: "token_revoked" }, null, "error")).toBe("token_revoked");
  });

  it("come from WWW-Authenticate when the body has none", () => {
    expect(errorCode(null, challenge, "error")).toBe("token_expired");
    expect(errorCode("<html>", challenge, "error")).toBe("token_expired");
  });

  it("prefer the body to the header", () => {
    expect(errorCode({ error: "token_revoked" }, challenge, "error")).toBe("token_revoked");
  });

  it("are absent when neither says", () => {
    expect(errorCode({}, 'Bearer realm="keyturn"', "error")).toBeUndefined();
    expect(errorCode(undefined, undefined, "error")).toBeUndefined();
  });

  it("follow the shape's field (simplejwt: code)", () => {
    expect(errorCode({ detail: "Token is invalid", code: "token_not_valid" }, null, SIMPLEJWT.errorField)).toBe("token_not_valid");
  });
});

describe("answers to requests", () => {
  it("token_expired for the current token: refresh, then resend", () => {
    expect(judge(401, "token_expired", "A", "A", KEYTURN, true)).toBe("refresh");
    expect(judge(401, "token_expired", "A", "A", KEYTURN, false)).toBe("refresh");
  });

  it("any 401 for an older token: resend with the current one", () => {
    expect(judge(401, "token_expired", "old", "A", KEYTURN, false)).toBe("resend");
    expect(judge(401, "token_revoked", "old", "A", KEYTURN, false)).toBe("resend");
  });

  it("token_revoked or token_invalid for the current token: one refresh and one resend first, then the end", () => {
    expect(judge(401, "token_revoked", "A", "A", KEYTURN, true)).toBe("refresh");
    expect(judge(401, "token_invalid", "A", "A", KEYTURN, true)).toBe("refresh");
    expect(judge(401, "token_revoked", "A", "A", KEYTURN, true, true)).toBe("end");
    expect(judge(401, "token_invalid", "A", "A", KEYTURN, true, true)).toBe("end");
  });

  it("token_expired again after a refresh goes to the application: never a loop", () => {
    expect(judge(401, "token_expired", "A", "A", KEYTURN, true, true)).toBe("done");
  });

  it("other 401s go to the application", () => {
    expect(judge(401, "invalid_credentials", "A", "A", KEYTURN, true)).toBe("done");
    expect(judge(401, undefined, "A", "A", KEYTURN, true)).toBe("done");
  });

  it("no answer, 429, 502, 503 and 504 are retried only when the request may be sent again; a 500 is the application's", () => {
    for (const status of [0, 429, 502, 503, 504]) {
      expect(judge(status, undefined, "A", "A", KEYTURN, true)).toBe("retry");
      expect(judge(status, undefined, "A", "A", KEYTURN, false)).toBe("done");
    }
    for (const status of [200, 204, 400, 403, 404, 409, 500, 501]) expect(judge(status, undefined, "A", "A", KEYTURN, true)).toBe("done");
  });

  it("simplejwt's token_not_valid on a request means refresh and resend, never the end", () => {
    expect(judge(401, "token_not_valid", "A", "A", SIMPLEJWT, true)).toBe("refresh");
    expect(judge(401, "token_not_valid", "A", "A", SIMPLEJWT, true, true)).toBe("done");
    expect(judge(401, "token_invalid", "A", "A", SIMPLEJWT, true)).toBe("done");
  });
});

describe("the refresh's backoff", () => {
  it("is kept short for a while after an answer that may have been lost, then grows", () => {
    expect(refreshDelay(8, () => 1, undefined, 1000)).toBe(2000);
    expect(refreshDelay(8, () => 1, undefined, 30_000)).toBe(30_000);
    expect(refreshDelay(8, () => 1, undefined, Infinity)).toBe(30_000);
  });
});

// -- the scenario table both clients' tests read ---------------------------------------------------

interface Row {
  name: string;
  shape: "keyturn" | "simplejwt";
  status: number;
  code: string | null;
  decision: string;
  retry_after?: number;
  wait?: number;
  method?: string;
  retry_safe?: boolean;
  sent?: "current" | "expired" | "older";
  after_refresh?: boolean;
}

const TABLE = new URL("../../../tests/scenarios/client_decisions.json", import.meta.url);
const scenarios = JSON.parse(readFileSync(TABLE, "utf8")) as { refresh: Row[]; request: Row[] };
const SHAPES = { keyturn: KEYTURN, simplejwt: SIMPLEJWT };

/** A `Retry-After` of the row's seconds gives the row's wait (ms), the backoff obeying it. */
function waitOf(row: Row): number | undefined {
  if (row.retry_after === undefined) return undefined;
  return backoff(1, () => 0.5, retryAfter(String(row.retry_after), 0));
}

describe("the shared scenario table (tests/scenarios/client_decisions.json)", () => {
  it("has rows of both kinds", () => {
    expect(scenarios.refresh.length).toBeGreaterThan(10);
    expect(scenarios.request.length).toBeGreaterThan(10);
  });

  it.each(scenarios.refresh.map((row) => [row.name, row] as const))("refresh answer: %s", (_, row) => {
    expect(decideRefresh(row.status, row.code ?? undefined, SHAPES[row.shape])).toBe(row.decision);
    if (row.wait !== undefined) expect(waitOf(row)).toBe(row.wait * 1000);
  });

  it.each(scenarios.request.map((row) => [row.name, row] as const))("answer to a request: %s", (_, row) => {
    const retry = mayRetry(row.method!, !!row.retry_safe);
    const decision = decideRequest(row.status, row.code ?? undefined, row.sent!, row.after_refresh!, retry, SHAPES[row.shape]);
    expect(decision).toBe(row.decision);
    if (row.wait !== undefined) expect(waitOf(row)).toBe(row.wait * 1000);
  });
});
