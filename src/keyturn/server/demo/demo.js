// The demo page: Keyturn's browser client (keyturn.js, built from clients/js) in cookie mode, shown live;
// `/demo/?dpop` binds the session to a DPoP key (dpop.js, the client's `@keyturn/client/dpop` entry).
// Everything the buttons do goes through a fetch wrapper, so "offline" and "tamper" affect only this tab.
import { createSession } from "./dpop.js";

const $ = (id) => document.getElementById(id);
const ENDED = {
  logout: "You logged out.",
  session_revoked: "This session was ended elsewhere (logged out everywhere, or revoked).",
  refresh_token_reused: "A refresh token was used twice: the session was ended to protect you.",
  refresh_token_expired: "The session was idle too long.",
  session_expired: "The session reached its maximum age.",
  token_invalid: "A token was rejected as invalid.",
  token_revoked: "The session was revoked.",
};

const knobs = { offline: false, tamper: false };
let lifetime = 1; // ms, as the last refresh gave it: for the expiry bar
let ok = 0;
let failed = 0;

// The network as this tab sees it: off when "offline", and a tampered access token on the next call.
async function demoFetch(input, init = {}) {
  if (knobs.offline) throw new TypeError("Failed to fetch (the demo is offline)");
  if (knobs.tamper && init.headers) {
    const headers = new Headers(init.headers);
    const auth = headers.get("Authorization");
    if (auth) {
      knobs.tamper = false;
      const [scheme, token] = auth.split(" ");
      const i = token.lastIndexOf(".") + 5;
      const flipped = token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
      headers.set("Authorization", `${scheme} ${flipped}`);
      init = { ...init, headers };
      note("failed", "sending a tampered access token");
    }
  }
  return fetch(input, init);
}

const dpop = new URLSearchParams(location.search).has("dpop");
const session = createSession({ mode: "cookie", fetch: demoFetch, name: "keyturn-demo", dpop });

function note(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, text);
  $("timeline").prepend(item);
  while ($("timeline").children.length > 200) $("timeline").lastChild.remove();
}

// What went wrong, in words a person reads: the browser's own texts ("TypeError: Failed to fetch") say
// little, and the demo's timeline is read by people.
function friendly(reason) {
  const text = String(reason);
  if (/TypeError|Failed to fetch|NetworkError|Load failed/.test(text)) {
    return knobs.offline ? "this tab is offline" : "the token service could not be reached";
  }
  if (/AbortError|aborted/.test(text)) return "the token service did not answer in time";
  const http = /HTTP (\d{3}) ?([\w.-]*)/.exec(text);
  if (http) return `the token service answered ${http[1]}${http[2] ? ` (${http[2]})` : ""}`;
  return text.replace(/^keyturn: /, "");
}

function seconds(ms) {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  return `${Math.max(0, ms / 1000).toFixed(1)} s`;
}

function render() {
  const state = session.state;
  const signedIn = state === "active" || state === "degraded";
  $("login").hidden = signedIn;
  $("live").hidden = !signedIn;
  $("state").textContent = state;
  $("state").className = `badge ${state}`;
  const serverNow = Date.now() + session.clockOffset;
  const expires = session.expiresAt;
  $("expires").textContent = seconds(expires && expires - serverNow);
  $("next").textContent = seconds(session.nextRefreshAt && session.nextRefreshAt - serverNow);
  $("offset").textContent = `${(session.clockOffset / 1000).toFixed(2).replace(/^-(0\.00)$/, "$1")} s`;
  $("generation").textContent = String(session.generation);
  $("expires-bar").style.width = expires ? `${Math.max(0, Math.min(100, ((expires - serverNow) / lifetime) * 100))}%` : "0";
  $("ok").textContent = String(ok);
  $("failed").textContent = String(failed);
}

async function callApi() {
  try {
    const response = await session.fetch("/auth/me");
    if (response.ok) {
      ok += 1;
      const me = await response.json();
      $("who").textContent = `signed in as ${me.subject}`;
    } else {
      failed += 1;
      const body = await response.json().catch(() => ({}));
      note("failed", `API call answered ${response.status} ${body.error ?? ""}`);
    }
  } catch (error) {
    failed += 1;
    const why = error.name === "TypeError" ? (knobs.offline ? "this tab is offline" : "the API could not be reached") : friendly(error.message);
    note("failed", `API call failed: ${why}`);
  }
  render();
}

session.on("refreshed", (e) => {
  lifetime = Math.max(1, e.expiresAt - (Date.now() + session.clockOffset));
  // With long-lived tokens (15 minutes by default) nothing visible happens for minutes: say how to shorten them.
  $("short-tokens").hidden = lifetime <= 60_000;
  $("lifetime").textContent = lifetime >= 120_000 ? `${Math.round(lifetime / 60_000)} minutes` : `${Math.round(lifetime / 1000)} s`;
});
session.on("refreshed", (e) => note("refreshed", `new access token (refresh #${e.generation}${e.remote ? ", from another tab" : ""})`));
session.on("degraded", (e) => note("degraded", `refresh failed: ${friendly(e.reason)}; retrying in ${(e.retryIn / 1000).toFixed(1)} s`));
session.on("session_ended", (reason) => {
  note("session_ended", `session ended: ${reason}`);
  $("ended").textContent = ENDED[reason] ?? `The session ended (${reason}).`;
  $("ended").hidden = false;
  $("ended").dataset.reason = reason;
  stopAuto();
});
session.on("state", () => render());

let auto;
function stopAuto() {
  clearInterval(auto);
  auto = undefined;
  $("auto").setAttribute("aria-pressed", "false");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  $("login-error").hidden = true;
  try {
    await session.login(String(form.get("username")), String(form.get("password")));
    $("ended").hidden = true;
    note("refreshed", "signed in");
    await callApi();
  } catch (error) {
    $("login-error").textContent = error.code === "invalid_credentials" ? "Wrong username or password." : `Sign-in failed: ${friendly(error.message)}.`;
    $("login-error").hidden = false;
  }
  render();
});
$("call").addEventListener("click", callApi);
$("auto").addEventListener("click", () => {
  if (auto) return stopAuto();
  auto = setInterval(callApi, 200);
  $("auto").setAttribute("aria-pressed", "true");
});
$("offline").addEventListener("click", () => {
  knobs.offline = !knobs.offline;
  $("offline").setAttribute("aria-pressed", String(knobs.offline));
  $("offline").textContent = knobs.offline ? "Back online" : "Go offline";
  note(knobs.offline ? "degraded" : "refreshed", knobs.offline ? "this tab went offline" : "this tab is back online");
  if (!knobs.offline) window.dispatchEvent(new Event("online"));
});
$("tamper").addEventListener("click", async () => {
  knobs.tamper = true;
  await callApi();
});
$("tab").addEventListener("click", () => window.open(location.href, "_blank"));
$("logout").addEventListener("click", () => session.logout());
$("logout-all").addEventListener("click", () => session.logout({ everywhere: true }));

setInterval(render, 200);
session.ready.then(render, render);
render();

// For the browser tests, and for the curious in the console.
window.keyturnDemo = { session, knobs, callApi, counts: () => ({ ok, failed }) };
