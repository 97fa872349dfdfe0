// The agent console's page: render the server's SSE stream, post accept/dismiss feedback.
"use strict";

const params = new URLSearchParams(location.search);
const agentParam = params.get("agent");
const root = document.getElementById("conversations");
const statusEl = document.getElementById("status");

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
  statusEl.className = "status " + (state === "live" ? "on" : "off");
}

function conversationCard(conv) {
  let card = document.querySelector(`.conversation[data-conversation-id="${CSS.escape(conv.conversation_id)}"]`);
  if (!card) {
    document.getElementById("empty")?.remove();
    card = el("section", {class: "conversation", "data-conversation-id": conv.conversation_id},
      el("h2", {}, conv.conversation_id, " ", el("span", {class: "muted"}, "customer " + (conv.customer_id || "?"))),
      el("ul", {class: "alerts"}),
      el("ol", {class: "suggestions"}));
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
    const q = agentParam ? "?agent=" + encodeURIComponent(agentParam) : "";
    const resp = await fetch("/api/feedback" + q, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({suggestion_id: s.suggestion_id, event}),
    });
    if (!resp.ok) throw new Error(await resp.text());
    const fb = await resp.json();
    li.dataset.feedbackId = fb.feedback_id;
    showVerdict(li, event);
  } catch (err) {
    li.querySelector(".verdict").textContent = "failed: " + err.message;
    for (const b of li.querySelectorAll("button")) b.disabled = false;
  }
}

function addSuggestion(s) {
  const card = conversationCard(s);
  if (card.querySelector(`.suggestion[data-suggestion-id="${CSS.escape(s.suggestion_id)}"]`)) return;
  const accept = el("button", {class: "accept", type: "button", textContent: "Accept"});
  const dismiss = el("button", {class: "dismiss", type: "button", textContent: "Dismiss"});
  const li = el("li", {class: "suggestion", "data-suggestion-id": s.suggestion_id, "data-action": s.action},
    el("div", {class: "text"}, s.text),
    el("div", {class: "meta muted"},
      `${s.action} · ${Math.round(s.confidence * 100)}% · ${s.channel} · after ${s.event_id}`),
    el("div", {class: "controls"}, accept, dismiss, el("span", {class: "verdict"}), el("span", {class: "counted"})));
  accept.addEventListener("click", () => sendFeedback(li, s, "accepted"));
  dismiss.addEventListener("click", () => sendFeedback(li, s, "dismissed"));
  card.querySelector(".suggestions").prepend(li);
  showVerdict(li, s.verdict);
  for (const acc of Object.values(s.counted || {})) showCounted(li, acc);
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

function connect() {
  const q = agentParam ? "?agent=" + encodeURIComponent(agentParam) : "";
  const source = new EventSource("/events" + q);
  source.addEventListener("open", () => setStatus("live", "live"));
  source.addEventListener("error", () => setStatus("reconnecting", "reconnecting…"));
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    document.getElementById("agent").textContent = data.agent || "(any)";
    for (const conv of data.conversations) {
      conversationCard(conv);
      for (const a of conv.alerts) addAlert(a);
      for (const s of conv.suggestions) addSuggestion(s);
    }
    setStatus("live", "live");
  });
  source.addEventListener("suggestion", (e) => addSuggestion(JSON.parse(e.data)));
  source.addEventListener("alert", (e) => addAlert(JSON.parse(e.data)));
  source.addEventListener("feedback", (e) => {
    const fb = JSON.parse(e.data);
    const li = suggestionItem(fb.suggestion_id);
    if (li) showVerdict(li, fb.event);
  });
  source.addEventListener("acceptance", (e) => {
    const acc = JSON.parse(e.data);
    const li = suggestionItem(acc.suggestion_id);
    if (li) showCounted(li, acc);
  });
}

connect();
