// The agent console's page: read the token, render the server's event stream, post accept/dismiss.
"use strict";

// The token arrives in the address's fragment (`coach console token` prints such an address): a
// fragment is never sent to a server nor put in a Referer. The page keeps it in this tab's
// sessionStorage, removes it from the address bar and history, and sends it only as
// `Authorization: Bearer` (no cookie, so no request can carry it without this script).
const TOKEN_KEY = "coachflow-console-token";
const root = document.getElementById("conversations");
const statusEl = document.getElementById("status");
const notice = document.getElementById("notice");
let mayJudge = false;
let stopped = false;

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();
// A new address with a token pasted into this tab: start again with it.
window.addEventListener("hashchange", () => location.reload());

class Refused extends Error {}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  statusEl.className = "status " + (state === "live" ? "on" : state);
}

// Stop for good: a refused, expired or missing token (reconnecting would not help).
function stop(state, text, message) {
  stopped = true;
  sessionStorage.removeItem(TOKEN_KEY);
  setStatus(state, text);
  notice.textContent = message;
  notice.hidden = false;
}

const MINT = "run `coach console token --agent YOUR_ID` and open the address it prints.";

async function api(path, options = {}) {
  const headers = {...(options.headers || {}), Authorization: "Bearer " + token};
  const resp = await fetch(path, {...options, headers, cache: "no-store", credentials: "omit"});
  if (resp.status === 401 || (resp.status === 403 && path !== "/api/feedback" && path !== "/api/card-feedback")) {
    const body = await resp.json().catch(() => ({}));
    const reason = body.reason || "refused";
    stop("refused", `refused (${reason})`, `The console refused this token (${reason}): ${MINT}`);
    throw new Refused(reason);
  }
  return resp;
}

function conversationCard(conv) {
  let card = document.querySelector(`.conversation[data-conversation-id="${CSS.escape(conv.conversation_id)}"]`);
  if (!card) {
    document.getElementById("empty")?.remove();
    card = el("section", {class: "conversation", "data-conversation-id": conv.conversation_id},
      el("h2", {}, conv.conversation_id, " ", el("span", {class: "muted"}, "customer " + (conv.customer_id || "?"))),
      el("ul", {class: "alerts"}),
      el("div", {class: "columns"},
        el("ol", {class: "suggestions"}),
        el("ol", {class: "cards", "aria-label": "knowledge cards"})));
    root.prepend(card);
  }
  return card;
}

function showVerdict(li, verdict) {
  if (!verdict) return;
  li.dataset.verdict = verdict;
  li.classList.add(verdict);
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  li.querySelector(".verdict").textContent = verdict;
}

function showCounted(li, acceptance) {
  // What the job counted, per mode: data-counted-click / data-counted-inferred = the outcome.
  if (!acceptance) return;
  const mode = acceptance.mode;
  li.dataset["counted" + mode[0].toUpperCase() + mode.slice(1)] = acceptance.outcome;
  const span = li.querySelector(".counted");
  const parts = [];
  for (const m of ["click", "inferred"]) {
    const outcome = li.dataset["counted" + m[0].toUpperCase() + m.slice(1)];
    if (outcome) parts.push(`${m}: ${outcome}`);
  }
  span.textContent = "counted (" + parts.join(", ") + ")";
}

async function sendFeedback(li, s, event) {
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  li.querySelector(".verdict").textContent = "sending…";
  try {
    const resp = await api("/api/feedback", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({suggestion_id: s.suggestion_id, event}),
    });
    const text = await resp.text();
    if (!resp.ok) {
      let reason = text;
      try { reason = JSON.parse(text).reason || text; } catch { /* a plain-text error */ }
      throw new Error(reason);
    }
    const fb = JSON.parse(text);
    li.dataset.feedbackId = fb.feedback_id;
    showVerdict(li, event);
  } catch (err) {
    if (err instanceof Refused) return;
    li.querySelector(".verdict").textContent = "failed: " + err.message;
    for (const b of li.querySelectorAll("button")) b.disabled = false;
  }
}

function addSuggestion(s) {
  const card = conversationCard(s);
  if (card.querySelector(`.suggestion[data-suggestion-id="${CSS.escape(s.suggestion_id)}"]`)) return;
  // A supervisor's view is read-only: no buttons (the server refuses their feedback anyway).
  const buttons = [];
  if (mayJudge) {
    buttons.push(el("button", {class: "accept", type: "button", textContent: "Accept"}),
                 el("button", {class: "dismiss", type: "button", textContent: "Dismiss"}));
  }
  const li = el("li", {class: "suggestion", "data-suggestion-id": s.suggestion_id, "data-action": s.action,
                       "data-agent-id": s.agent_id},
    el("div", {class: "text"}, s.text),
    el("div", {class: "meta muted"},
      `${s.action} · ${Math.round(s.confidence * 100)}% · ${s.channel} · after ${s.event_id}` +
      (mayJudge ? "" : ` · agent ${s.agent_id}`)),
    el("div", {class: "controls"}, ...buttons, el("span", {class: "verdict"}), el("span", {class: "counted"})));
  if (mayJudge) {
    buttons[0].addEventListener("click", () => sendFeedback(li, s, "accepted"));
    buttons[1].addEventListener("click", () => sendFeedback(li, s, "dismissed"));
  }
  card.querySelector(".suggestions").prepend(li);
  showVerdict(li, s.verdict);
  for (const acc of Object.values(s.counted || {})) showCounted(li, acc);
}

async function sendCardFeedback(li, c, event) {
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  li.querySelector(".verdict").textContent = "sending…";
  try {
    const resp = await api("/api/card-feedback", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({card_id: c.card_id, event}),
    });
    const text = await resp.text();
    if (!resp.ok) {
      let reason = text;
      try { reason = JSON.parse(text).reason || text; } catch { /* a plain-text error */ }
      throw new Error(reason);
    }
    li.dataset.feedbackId = JSON.parse(text).feedback_id;
    showVerdict(li, event);
  } catch (err) {
    if (err instanceof Refused) return;
    li.querySelector(".verdict").textContent = "failed: " + err.message;
    for (const b of li.querySelectorAll("button")) b.disabled = false;
  }
}

// A knowledge card: the passage, and where it is (article, version, offsets, KB version).
function addCard(c) {
  const card = conversationCard(c);
  if (card.querySelector(`.card[data-card-id="${CSS.escape(c.card_id)}"]`)) return;
  const buttons = [];
  if (mayJudge) {
    buttons.push(el("button", {class: "accept", type: "button", textContent: "Accept"}),
                 el("button", {class: "dismiss", type: "button", textContent: "Dismiss"}));
  }
  const cite = c.citation;
  // Only web addresses become links (a knowledge base's URL is not trusted to be one).
  const source = /^https?:\/\//i.test(cite.source_url || "")
    ? el("a", {href: cite.source_url, rel: "noopener noreferrer", target: "_blank"}, c.title)
    : el("strong", {}, c.title);
  const li = el("li", {class: "card", "data-card-id": c.card_id, "data-article-id": c.article_id,
                       "data-agent-id": c.agent_id},
    el("div", {class: "title"}, source, cite.heading ? el("span", {class: "muted"}, " › " + cite.heading) : ""),
    el("div", {class: "passage"}, c.passage),
    el("div", {class: "citation muted"},
      `${c.article_id} v${cite.article_version} · chars ${cite.start}–${cite.end} · ${cite.kb_version} · ` +
      `${Math.round(c.score * 100)}% · after ${c.event_id}` + (mayJudge ? "" : ` · agent ${c.agent_id}`)),
    el("div", {class: "controls"}, ...buttons, el("span", {class: "verdict"})));
  if (mayJudge) {
    buttons[0].addEventListener("click", () => sendCardFeedback(li, c, "accepted"));
    buttons[1].addEventListener("click", () => sendCardFeedback(li, c, "dismissed"));
  }
  card.querySelector(".cards").prepend(li);
  showVerdict(li, c.verdict);
}

function addAlert(a) {
  const card = conversationCard(a);
  if (card.querySelector(`.alert[data-alert-id="${CSS.escape(a.alert_id)}"]`)) return;
  card.querySelector(".alerts").prepend(
    el("li", {class: "alert " + a.severity, "data-alert-id": a.alert_id, "data-kind": a.kind},
      el("strong", {}, a.kind.replaceAll("_", " ")), " ", a.message));
}

function suggestionItem(id) {
  return document.querySelector(`.suggestion[data-suggestion-id="${CSS.escape(id)}"]`);
}

const handlers = {
  snapshot(data) {
    mayJudge = data.may_judge;
    document.body.dataset.role = data.role;
    document.getElementById("role").textContent = data.role === "supervisor" ? "Supervisor" : "Agent";
    document.getElementById("agent").textContent = data.agent;
    for (const conv of data.conversations) {
      conversationCard(conv);
      for (const a of conv.alerts) addAlert(a);
      for (const s of conv.suggestions) addSuggestion(s);
      for (const c of conv.cards || []) addCard(c);
    }
    setStatus("live", "live");
  },
  suggestion: addSuggestion,
  alert: addAlert,
  card: addCard,
  card_feedback(fb) {
    const li = document.querySelector(`.card[data-card-id="${CSS.escape(fb.card_id)}"]`);
    if (li) showVerdict(li, fb.event);
  },
  feedback(fb) {
    const li = suggestionItem(fb.suggestion_id);
    if (li) showVerdict(li, fb.event);
  },
  acceptance(acc) {
    const li = suggestionItem(acc.suggestion_id);
    if (li) showCounted(li, acc);
  },
  expired() {
    stop("expired", "session expired", "Your token expired: " + MINT);
  },
};

// One server-sent event ("event: KIND" and "data: JSON" lines); comments are keep-alives.
function dispatch(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") kind = value;
    else if (name === "data") data.push(value);
  }
  if (data.length && handlers[kind]) handlers[kind](JSON.parse(data.join("\n")));
}

// EventSource cannot send an Authorization header, so the stream is read with fetch.
async function connect() {
  if (!token) {
    stop("signed-out", "signed out", "No token: " + MINT);
    return;
  }
  while (!stopped) {
    try {
      const resp = await api("/events", {headers: {Accept: "text/event-stream"}});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      if (err instanceof Refused) return;
    }
    if (stopped) return;
    setStatus("reconnecting", "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

connect();
