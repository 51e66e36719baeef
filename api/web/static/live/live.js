// The example client of ECE's live API: REST for history, /ws for what comes next,
// Web Push for when the page is closed. No framework, no build step, no inline script.
"use strict";

const API = "/api/v1";
const MAX_TICKER = 20;
const state = { access: null, refresh: null, maxSeq: 0, ws: null, attempt: 0, timer: null };
const $ = (id) => document.getElementById(id);

// --- REST --------------------------------------------------------------------------

async function api(path, options = {}, retried = false) {
  const headers = { "Content-Type": "application/json" };
  if (state.access) headers.Authorization = `Bearer ${state.access}`;
  const response = await fetch(API + path, { ...options, headers });
  if (response.status === 401 && state.refresh && !retried && (await refreshTokens())) {
    return api(path, options, true);
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${path}: HTTP ${response.status}`);
  }
  return response.status === 204 ? null : response.json();
}

function keepTokens(body) {
  state.access = body.access_token;
  state.refresh = body.refresh_token;
  sessionStorage.setItem("ece.refresh", state.refresh);
}

async function refreshTokens() {
  const response = await fetch(`${API}/auth/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: state.refresh }),
  });
  if (!response.ok) { signOut(); return false; }
  keepTokens(await response.json());
  return true;
}

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch(`${API}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ login: $("login").value, password: $("password").value }),
  });
  if (!response.ok) { $("login-error").textContent = "sign-in failed"; return; }
  keepTokens(await response.json());
  await start();
}

function signOut() {
  state.access = state.refresh = null;
  sessionStorage.removeItem("ece.refresh");
  if (state.ws) state.ws.close();
  $("app").hidden = true;
  $("login-form").hidden = false;
  setStatus("signed out");
}

// --- notifications -----------------------------------------------------------------

function setStatus(text) { $("status").textContent = text; }

function render(notification) {
  if (document.querySelector(`li[data-id="${notification.id}"]`)) return;  // shown already
  const li = document.createElement("li");
  li.dataset.id = notification.id;
  li.dataset.seq = notification.seq;
  li.className = notification.read_at ? "read" : "unread";
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = notification.payload.title || notification.kind.replaceAll("_", " ");
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `#${notification.seq} ${notification.kind} · ${notification.created_at}`;
  li.append(title, meta);
  if (!notification.read_at) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "mark-read";
    button.textContent = "Mark read";
    button.addEventListener("click", () => markRead(notification.id, li, button));
    li.append(button);
  }
  // Newest first: insert before the first item with a smaller seq.
  const list = $("notifications");
  const after = [...list.children].find((item) => Number(item.dataset.seq) < notification.seq);
  list.insertBefore(li, after || null);
  state.maxSeq = Math.max(state.maxSeq, notification.seq);
}

async function refreshUnread() {
  const body = await api("/notifications/unread-count");
  $("unread").textContent = String(body.unread);
}

async function markRead(id, li, button) {
  await api(`/notifications/${id}/read`, { method: "POST" });
  li.className = "read";
  button.remove();
  await refreshUnread();
}

async function markAllRead() {
  await api("/notifications/read-all", { method: "POST" });
  document.querySelectorAll("#notifications li.unread").forEach((li) => {
    li.className = "read";
    li.querySelector("button.mark-read")?.remove();
  });
  await refreshUnread();
}

// --- the socket --------------------------------------------------------------------

function connect() {
  clearTimeout(state.timer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({
    token: state.access, after_seq: String(state.maxSeq), channels: "notifications,market",
  });
  const ws = new WebSocket(`${scheme}//${location.host}${API}/ws?${query}`);
  state.ws = ws;
  ws.addEventListener("open", () => { state.attempt = 0; setStatus("live"); });
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "notification") {
      render(message.data);
      refreshUnread();
    } else if (message.type === "market") {
      tick(message.data);
    } else if (message.type === "ping") {
      setStatus(`live · ${message.at}`);
    }
  });
  ws.addEventListener("close", async (event) => {
    if (state.ws !== ws || !state.refresh) return;  // replaced, or signed out
    if (event.code === 4401 && !(await refreshTokens())) return;
    // Back off (0.5 s doubling to 30 s, jittered) and resume after the highest seq seen.
    const delay = Math.min(30000, 500 * 2 ** state.attempt++) * (0.8 + Math.random() * 0.4);
    setStatus(`reconnecting (${event.code})`);
    state.timer = setTimeout(connect, delay);
  });
}

function tick(event) {
  const li = document.createElement("li");
  const price = event.price_cents == null ? "" : ` $${(event.price_cents / 100).toFixed(2)}`;
  li.textContent = `${event.at} ${event.type}${price} ${event.set_name || ""} ${event.rarity || ""}`;
  const list = $("ticker");
  list.prepend(li);
  while (list.children.length > MAX_TICKER) list.lastChild.remove();
}

// --- Web Push ----------------------------------------------------------------------

function base64UrlBytes(text) {
  const padded = (text + "=".repeat((4 - (text.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function enablePush() {
  const status = $("push-status");
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    status.textContent = "push is not supported by this browser";
    return;
  }
  try {
    const registration = await navigator.serviceWorker.register("/live/sw.js", { scope: "/live/" });
    await navigator.serviceWorker.ready;
    const { public_key: key } = await api("/push/vapid-public-key");
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: base64UrlBytes(key),
    });
    await api("/me/push-subscriptions", { method: "POST", body: JSON.stringify(subscription.toJSON()) });
    status.textContent = "push enabled";
  } catch (error) {
    status.textContent = `push failed: ${error.message}`;
  }
}

// --- start -------------------------------------------------------------------------

async function start() {
  $("login-form").hidden = true;
  $("app").hidden = false;
  $("notifications").replaceChildren();
  state.maxSeq = 0;
  const page = await api("/notifications?limit=50");
  page.items.forEach(render);
  await refreshUnread();
  connect();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", signIn);
  $("read-all").addEventListener("click", markAllRead);
  $("enable-push").addEventListener("click", enablePush);
  state.refresh = sessionStorage.getItem("ece.refresh");
  if (state.refresh && (await refreshTokens())) await start();
});
