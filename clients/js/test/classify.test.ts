import { describe, expect, it } from "vitest";
import { errorCode, isDefinitive, judge } from "../src/classify";
import { KEYTURN, SIMPLEJWT } from "../src/endpoints";

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

  it("token_revoked or token_invalid for the current token ends the session", () => {
    expect(judge(401, "token_revoked", "A", "A", KEYTURN, true)).toBe("end");
    expect(judge(401, "token_invalid", "A", "A", KEYTURN, true)).toBe("end");
  });

  it("other 401s, and any 401 once the session is gone, go to the application", () => {
    expect(judge(401, "invalid_credentials", "A", "A", KEYTURN, true)).toBe("done");
    expect(judge(401, undefined, "A", "A", KEYTURN, true)).toBe("done");
    expect(judge(401, "token_expired", "A", undefined, KEYTURN, true)).toBe("done");
  });

  it("network errors, 429 and 5xx are retried only when the request may be sent again", () => {
    for (const status of [0, 429, 500, 502, 503, 504]) {
      expect(judge(status, undefined, "A", "A", KEYTURN, true)).toBe("retry");
      expect(judge(status, undefined, "A", "A", KEYTURN, false)).toBe("done");
    }
    for (const status of [200, 204, 400, 403, 404, 409]) expect(judge(status, undefined, "A", "A", KEYTURN, true)).toBe("done");
  });

  it("simplejwt's token_not_valid on a request means refresh and resend, never the end", () => {
    expect(judge(401, "token_not_valid", "A", "A", SIMPLEJWT, true)).toBe("refresh");
    expect(judge(401, "token_invalid", "A", "A", SIMPLEJWT, true)).toBe("done");
  });
});
