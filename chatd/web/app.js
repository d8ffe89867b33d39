// The chatd web client: log in, pick a room or a DM, chat.
//
// Views follow the URL hash: "#/" is the conversation list, "#/rooms/12" a room,
// so a reload comes back to the same room. Message text is only ever set as text
// (textContent, text nodes): it may contain HTML.
//
// Modules: api.js (REST), live.js (one room's socket), rooms.js (the lists),
// invites.js, notifications.js, roomview.js (the open room), messages.js, search.js,
// people.js.

import { Api } from "./api.js";
import { $, showError } from "./dom.js";
import { Invitations } from "./invites.js";
import { Notifications } from "./notifications.js";
import { attachPicker, learn, setViewer } from "./people.js";
import { RoomList } from "./rooms.js";
import { RoomView } from "./roomview.js";
import { Search } from "./search.js";

const LOAD_OLDER_WITHIN_PX = 80;
const POLL_EVERY_MS = 15_000; // unread badges and invitations: no live channel across rooms
const MAX_TEXT_CHARS = 4000;

const api = new Api();
let me = null; // {id, email, handle}
let room = null; // the open RoomView
let revealNext = null; // a message to scroll to in the room about to open
let pollTimer = null;

const rooms = new RoomList(api, { currentRoomId: () => room?.roomId ?? null });
const invitations = new Invitations(api, {
  onAccepted: async (accepted) => {
    rooms.update(accepted);
    window.location.hash = `#/rooms/${accepted.id}`;
    await rooms.refresh();
  },
});
function roomTitle(id) {
  const known = rooms.known.get(id);
  return known ? rooms.title(known) : `Room ${id}`;
}

/** Open the message's room, scrolled to it. */
function openMessage(roomId, messageId) {
  if (room?.roomId === roomId) {
    room.reveal(messageId);
    setView("room");
    return;
  }
  revealNext = messageId;
  window.location.hash = `#/rooms/${roomId}`;
}

const search = new Search(api, {
  currentRoomId: () => room?.roomId ?? null,
  roomTitle,
  onOpen: (message) => openMessage(message.room_id, message.id),
});
const notifications = new Notifications(api, {
  roomTitle,
  onOpen: (notification) => openMessage(notification.room_id, notification.message_id),
});

function setView(view) {
  document.body.dataset.view = view;
  $("loading").hidden = view !== "loading";
  $("auth-view").hidden = view !== "auth";
  $("chat-view").hidden = view !== "rooms" && view !== "room";
  $("account").hidden = view === "auth" || view === "loading";
}

/** Everything the lists show, refetched. */
function refreshLists({ withPublic = true } = {}) {
  return Promise.all([
    rooms.refresh({ withPublic }),
    invitations.refresh(),
    notifications.refresh(),
  ]);
}

function poll() {
  if (me && document.visibilityState === "visible") refreshLists({ withPublic: false });
}

function startPolling() {
  clearInterval(pollTimer);
  pollTimer = setInterval(poll, POLL_EVERY_MS);
}

// ---- log in -------------------------------------------------------------------

function showAuth(notice = "") {
  closeRoom();
  clearInterval(pollTimer);
  me = null;
  setViewer(null);
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
  setViewer(me);
  $("whoami").textContent = me.email;
  $("whoami").title = `@${me.handle}`;
  await refreshLists();
  startPolling();
  route();
}

// ---- creating rooms and DMs ---------------------------------------------------------

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
    rooms.update(created);
    window.location.hash = `#/rooms/${created.id}`;
    await rooms.refresh();
  } catch (err) {
    showError("new-room-error", err);
  }
}

async function openDm(user) {
  const dm = await api.openDm(user.id);
  learn(user.id, user.handle);
  rooms.update(dm);
  window.location.hash = `#/rooms/${dm.id}`;
  await rooms.refresh({ withPublic: false });
}

// ---- routing ------------------------------------------------------------------

function route() {
  if (!me) return;
  const match = /^#\/rooms\/(\d+)$/.exec(window.location.hash);
  if (!match) {
    if (room) refreshLists(); // back to the list: show what changed meanwhile
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
  $("conn-status").textContent = "";
  $("conn-status").dataset.state = "idle";
  $("room-open").hidden = true;
  $("room-none").hidden = false;
  rooms.markCurrent();
  search.roomChanged();
}

function openRoom(roomId) {
  closeRoom();
  room = new RoomView(api, roomId, {
    rooms,
    reveal: revealNext,
    onNotification: (notification) => notifications.pushed(notification),
  });
  revealNext = null;
  rooms.markCurrent();
  search.roomChanged();
  room.open();
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
  $("more-rooms").addEventListener("click", () => rooms.morePublic());
  $("refresh-rooms").addEventListener("click", () => refreshLists());
  $("logout").addEventListener("click", () => api.logout());
  $("composer").addEventListener("submit", onComposerSubmit);
  $("message-text").addEventListener("keydown", onComposerKey);
  $("message-text").addEventListener("input", onComposerInput);
  $("older").addEventListener("click", () => room?.loadOlder());
  $("reconnect").addEventListener("click", () => room?.live?.reconnectNow());
  $("scroller").addEventListener("scroll", () => {
    if ($("scroller").scrollTop < LOAD_OLDER_WITHIN_PX) room?.loadOlder();
  });
  $("join-room").addEventListener("click", () => room?.join());
  $("leave-room").addEventListener("click", () => room?.leave());
  $("members-toggle").addEventListener("click", () => room?.toggleMembers());
  $("invite-open").addEventListener("click", () => {
    room?.toggleMembers(true);
    $("people-handle").focus();
  });
  attachPicker(api, {
    form: $("new-dm"),
    input: $("dm-handle"),
    list: $("dm-candidates"),
    error: $("new-dm-error"),
    onPick: openDm,
  });
  attachPicker(api, {
    form: $("people-form"),
    input: $("people-handle"),
    list: $("people-candidates"),
    error: $("people-error"),
    onPick: (user) => room?.addPerson(user),
  });
  search.attach();
  notifications.attach();
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", poll); // back to the tab: fresh badges
  api.addEventListener("logout", (e) => showAuth(e.detail));
  if (api.loggedIn) enter();
  else showAuth();
}

main();
