// The chatd web client: log in, pick or create a room, chat.
//
// Views follow the URL hash: "#/" is the room list, "#/rooms/12" a room, so a
// reload comes back to the same room. Message text is only ever set with
// textContent: it may contain HTML.

import { Api } from "./api.js";
import { LiveRoom } from "./live.js";

const HISTORY_PAGE = 50;
const LOAD_OLDER_WITHIN_PX = 80;
const STICK_TO_BOTTOM_WITHIN_PX = 120;
const TYPING_SHOWN_MS = 5_000;
const MAX_TEXT_CHARS = 4000;

const $ = (id) => document.getElementById(id);

const api = new Api();
let me = null; // {id, email}
let room = null; // the open RoomView
let roomsNext = null;

// ---- helpers ------------------------------------------------------------------

function userLabel(userId) {
  return me && userId === me.id ? me.email : `user ${userId}`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function shortTime(date) {
  const today = new Date().toDateString() === date.toDateString();
  return (today ? timeFormat : dateTimeFormat).format(date);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(id, err) {
  $(id).textContent = err ? err.message || String(err) : "";
}

function setView(view) {
  document.body.dataset.view = view;
  $("loading").hidden = view !== "loading";
  $("auth-view").hidden = view !== "auth";
  $("chat-view").hidden = view !== "rooms" && view !== "room";
  $("account").hidden = view === "auth" || view === "loading";
}

// ---- log in -------------------------------------------------------------------

function showAuth(notice = "") {
  closeRoom();
  me = null;
  $("auth-notice").textContent = notice;
  setView("auth");
  $("auth-email").focus();
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const registering = event.submitter?.value === "register";
  const email = $("auth-email").value.trim();
  const password = $("auth-password").value;
  showError("auth-error", null);
  if (!email || !password) {
    showError("auth-error", new Error("Enter your email and a password."));
    return;
  }
  const buttons = [$("login-button"), $("register-button")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    if (registering) await api.register(email, password);
    await api.login(email, password);
    $("auth-password").value = "";
    $("auth-notice").textContent = "";
    await enter();
  } catch (err) {
    showError("auth-error", err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

/** Logged in: learn who we are, then show what the URL asks for. */
async function enter() {
  try {
    me = await api.me();
  } catch (err) {
    if (err.status === 401) return showAuth("Please log in again.");
    setView("auth");
    showError("auth-error", err);
    return;
  }
  $("whoami").textContent = me.email;
  await loadRooms();
  route();
}

// ---- rooms --------------------------------------------------------------------

async function loadRooms(more = false) {
  showError("rooms-error", null);
  try {
    const page = await api.rooms(more ? roomsNext : null);
    if (!more) $("room-list").replaceChildren();
    for (const item of page.items) addRoomToList(item);
    roomsNext = page.next;
  } catch (err) {
    showError("rooms-error", err);
  }
  $("more-rooms").hidden = !roomsNext;
  $("rooms-empty").hidden = $("room-list").children.length > 0;
  markCurrentRoom();
}

function addRoomToList(item) {
  const li = element("li");
  li.dataset.roomId = String(item.id);
  const link = element("a", "room-link");
  link.href = `#/rooms/${item.id}`;
  link.append(element("span", "room-name", item.name));
  if (item.visibility === "private") link.append(element("span", "badge", "private"));
  link.append(element("span", "room-id", `#${item.id}`));
  li.append(link);
  $("room-list").append(li);
}

function markCurrentRoom() {
  for (const li of $("room-list").children) {
    const link = li.querySelector("a");
    if (room && li.dataset.roomId === String(room.roomId)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function onNewRoom(event) {
  event.preventDefault();
  showError("new-room-error", null);
  const name = $("room-name").value.trim();
  if (!name) {
    showError("new-room-error", new Error("Give the room a name."));
    return;
  }
  try {
    const created = await api.createRoom(name, $("room-visibility").value);
    $("room-name").value = "";
    addRoomToList(created);
    $("rooms-empty").hidden = true;
    window.location.hash = `#/rooms/${created.id}`;
  } catch (err) {
    showError("new-room-error", err);
  }
}

// ---- routing ------------------------------------------------------------------

function route() {
  if (!me) return;
  const match = /^#\/rooms\/(\d+)$/.exec(window.location.hash);
  if (!match) {
    if (room) loadRooms(); // back to the list: show rooms created meanwhile
    closeRoom();
    setView("rooms");
    return;
  }
  const roomId = Number(match[1]);
  setView("room");
  if (room?.roomId !== roomId) openRoom(roomId);
}

function closeRoom() {
  room?.close();
  document.title = "chatd";
  room = null;
  $("room-open").hidden = true;
  $("room-none").hidden = false;
  markCurrentRoom();
}

function openRoom(roomId) {
  closeRoom();
  room = new RoomView(roomId);
  markCurrentRoom();
  room.open();
}

// ---- one open room ------------------------------------------------------------

class RoomView {
  constructor(roomId) {
    this.roomId = roomId;
    this.shown = new Map(); // message id -> <li>
    this.pendingShown = new Map(); // client_id -> <li>
    this.olderBefore = null; // `before` for the next older page; null when at the start
    this.loadingOlder = false;
    this.typing = new Map(); // user id -> timeout
    this.online = new Set();
    this.live = null;
    this.closed = false;
  }

  async open() {
    $("room-none").hidden = true;
    $("room-open").hidden = false;
    $("room-title").textContent = `Room ${this.roomId}`;
    $("room-visibility-badge").textContent = "";
    $("messages").replaceChildren();
    $("pending").replaceChildren();
    $("presence").hidden = true;
    $("typing").textContent = "";
    $("older").hidden = true;
    $("history-start").hidden = true;
    showError("room-error", null);
    this.setStatus({ state: "connecting" });
    let info;
    let page;
    try {
      [info, page] = await Promise.all([
        api.room(this.roomId),
        api.messages(this.roomId, { limit: HISTORY_PAGE }),
      ]);
    } catch (err) {
      if (this.closed) return;
      this.setStatus({ state: "closed", reason: err.message });
      showError("room-error", err);
      return;
    }
    if (this.closed) return;
    $("room-title").textContent = info.name;
    document.title = `${info.name} · chatd`;
    $("room-visibility-badge").textContent = info.visibility;
    this.addPage(page);
    this.scrollToBottom();
    const lastId = page.items.length ? page.items[page.items.length - 1].id : 0;
    this.startLive(lastId);
    $("message-text").focus();
  }

  startLive(lastId) {
    const live = new LiveRoom(api, this.roomId, me.id, lastId);
    this.live = live;
    live.addEventListener("state", (e) => this.setStatus(e.detail));
    live.addEventListener("message", (e) => this.onMessage(e.detail.message));
    live.addEventListener("pending", (e) => this.showPending(e.detail.send));
    live.addEventListener("acked", (e) => this.removePending(e.detail.send.client_id));
    live.addEventListener("error", (e) => showError("room-error", e.detail));
    live.addEventListener("presence", (e) => this.onPresence(e.detail));
    live.addEventListener("typing", (e) => this.onTyping(e.detail.user_id));
    live.start();
  }

  close() {
    this.closed = true;
    this.live?.stop();
    for (const timer of this.typing.values()) clearTimeout(timer);
  }

  // -- history

  addPage(page) {
    for (const message of page.items) this.showMessage(message);
    this.olderBefore = page.next;
    $("older").hidden = page.next === null;
    $("history-start").hidden = page.next !== null;
  }

  async loadOlder() {
    if (this.loadingOlder || this.olderBefore === null) return;
    this.loadingOlder = true;
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    try {
      const page = await api.messages(this.roomId, { before: this.olderBefore, limit: HISTORY_PAGE });
      if (this.closed) return;
      this.addPage(page);
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep what was on screen
    } catch (err) {
      showError("room-error", err);
    } finally {
      this.loadingOlder = false;
    }
  }

  // -- messages

  onMessage(message) {
    const stick = this.nearBottom();
    this.showMessage(message);
    this.stopTyping(message.user_id);
    if (stick || message.user_id === me.id) this.scrollToBottom();
  }

  showMessage(message) {
    if (this.shown.has(message.id)) return; // a replay or a resend's echo
    const li = element("li", message.user_id === me.id ? "message mine" : "message");
    li.dataset.id = String(message.id);
    const meta = element("div", "meta");
    meta.append(element("span", "sender", userLabel(message.user_id)), " ");
    const created = new Date(message.created_at);
    const time = element("time", "time", shortTime(created));
    time.dateTime = message.created_at;
    time.title = fullFormat.format(created);
    meta.append(time);
    li.append(meta, element("div", "text", message.text));
    this.shown.set(message.id, li);
    // Ids grow; insert before the first shown message with a larger one.
    const list = $("messages");
    let after = list.lastElementChild;
    while (after && Number(after.dataset.id) > message.id) after = after.previousElementSibling;
    if (after) after.after(li);
    else list.prepend(li);
  }

  showPending(item) {
    let li = this.pendingShown.get(item.client_id);
    if (item.state === "discarded") {
      li?.remove();
      this.pendingShown.delete(item.client_id);
      return;
    }
    if (!li) {
      li = element("li", "message mine pending");
      this.pendingShown.set(item.client_id, li);
      $("pending").append(li);
    }
    const meta = element("div", "meta");
    meta.append(element("span", "sender", userLabel(me.id)), " ");
    const text = element("div", "text", item.text);
    if (item.state === "failed") {
      li.classList.add("failed");
      const retry = element("button", "link", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => this.live.retrySend(item.client_id));
      const discard = element("button", "link", "Discard");
      discard.type = "button";
      discard.addEventListener("click", () => this.live.discard(item.client_id));
      meta.append(element("span", "send-state", `Not sent: ${item.error}`), " ", retry, " ", discard);
    } else {
      li.classList.remove("failed");
      const waiting = this.live?.state === "live" ? "Sending…" : "Waiting for the connection…";
      meta.append(element("span", "send-state", waiting));
    }
    li.replaceChildren(meta, text);
    this.scrollToBottom();
  }

  removePending(clientId) {
    this.pendingShown.get(clientId)?.remove();
    this.pendingShown.delete(clientId);
  }

  send(text) {
    if (!this.live) return;
    this.live.send(text);
  }

  // -- presence and typing (shown only if the server sends them)

  onPresence({ user_id: userId, status }) {
    if (status === "online") this.online.add(userId);
    else this.online.delete(userId);
    const names = [...this.online].map(userLabel);
    $("presence").hidden = false;
    $("presence").textContent = names.length ? `Online: ${names.join(", ")}` : "Nobody else is online";
  }

  onTyping(userId) {
    clearTimeout(this.typing.get(userId));
    this.typing.set(userId, setTimeout(() => this.stopTyping(userId), TYPING_SHOWN_MS));
    this.showTyping();
  }

  stopTyping(userId) {
    if (!this.typing.has(userId)) return;
    clearTimeout(this.typing.get(userId));
    this.typing.delete(userId);
    this.showTyping();
  }

  showTyping() {
    const names = [...this.typing.keys()].map(userLabel);
    const text =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
    $("typing").textContent = text;
  }

  // -- connection state

  setStatus({ state, delay_ms: delayMs, reason }) {
    const status = $("conn-status");
    status.dataset.state = state;
    const text = {
      idle: "",
      connecting: "Connecting…",
      live: "Live",
      waiting: `Offline, retrying in ${Math.ceil((delayMs ?? 0) / 1000)} s`,
      closed: `Disconnected: ${reason ?? ""}`,
    }[state];
    status.textContent = text;
    $("reconnect").hidden = state !== "waiting";
    $("send-button").disabled = state === "closed";
    if (state === "closed") showError("room-error", new Error(reason));
    if (state === "live") {
      showError("room-error", null);
      // Each connection is told afresh who is online: forget the old list.
      this.online.clear();
      $("presence").hidden = true;
    }
    // Pending sends say whether they wait for the connection.
    if (this.live) for (const item of this.live.pending.values()) this.showPending(item);
  }

  // -- scrolling

  nearBottom() {
    const s = $("scroller");
    return s.scrollHeight - s.scrollTop - s.clientHeight < STICK_TO_BOTTOM_WITHIN_PX;
  }

  scrollToBottom() {
    const s = $("scroller");
    s.scrollTop = s.scrollHeight;
  }
}

// ---- the message box ------------------------------------------------------------

function onComposerSubmit(event) {
  event.preventDefault();
  const box = $("message-text");
  const text = box.value;
  if (!text.trim() || !room) return;
  if (text.length > MAX_TEXT_CHARS) {
    showError("room-error", new Error(`A message is at most ${MAX_TEXT_CHARS} characters.`));
    return;
  }
  showError("room-error", null);
  room.send(text);
  box.value = "";
  fitComposer();
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}

function onComposerInput() {
  fitComposer();
  if ($("message-text").value.trim()) room?.live?.typing();
}

function fitComposer() {
  const box = $("message-text");
  box.rows = Math.min(6, Math.max(1, box.value.split("\n").length));
}

// ---- start --------------------------------------------------------------------

function main() {
  $("auth-form").addEventListener("submit", onAuthSubmit);
  $("new-room").addEventListener("submit", onNewRoom);
  $("more-rooms").addEventListener("click", () => loadRooms(true));
  $("refresh-rooms").addEventListener("click", () => loadRooms());
  $("logout").addEventListener("click", () => api.logout());
  $("composer").addEventListener("submit", onComposerSubmit);
  $("message-text").addEventListener("keydown", onComposerKey);
  $("message-text").addEventListener("input", onComposerInput);
  $("older").addEventListener("click", () => room?.loadOlder());
  $("reconnect").addEventListener("click", () => room?.live?.reconnectNow());
  $("scroller").addEventListener("scroll", () => {
    if ($("scroller").scrollTop < LOAD_OLDER_WITHIN_PX) room?.loadOlder();
  });
  window.addEventListener("hashchange", route);
  api.addEventListener("logout", (e) => showAuth(e.detail));
  if (api.loggedIn) enter();
  else showAuth();
}

main();
