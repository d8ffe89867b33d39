// One open room: its history and live stream, members with roles, join / leave /
// invite, presence and typing, "seen by", and telling the server what was read.

import { $, element, showError } from "./dom.js";
import { LiveRoom } from "./live.js";
import { MessageList } from "./messages.js";
import { learn, userLabel, viewerId } from "./people.js";

const HISTORY_PAGE = 50;
const STICK_TO_BOTTOM_WITHIN_PX = 120;
const TYPING_SHOWN_MS = 5_000;
const READ_EVERY_MS = 1_000; // POST /read at most this often
const REFETCH_AFTER_MS = 300; // member frames come in bursts: refetch once after them
const REVEAL_PAGES = 10; // a search result: load up to this many older pages to find it
const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };

export class RoomView {
  /** `rooms` is the RoomList (titles, badges); `reveal` a message id to scroll to;
   * `onNotification(n)` gets the caller's notifications the socket brings. */
  constructor(api, roomId, { rooms, reveal = null, onNotification = () => {} }) {
    this.api = api;
    this.roomId = roomId;
    this.rooms = rooms;
    this.onNotification = onNotification;
    this.revealId = reveal;
    this.info = null; // the room, with the caller's role
    this.members = []; // [{user_id, handle, role, joined_at}]
    this.reads = null; // user id -> last read id; null when the room has no "seen by"
    this.messages = new MessageList(api, $("messages"), {
      roomId,
      canModerate: () => this.info?.role === "owner" || this.info?.role === "admin",
      onError: (err) => showError("room-error", err),
    });
    this.pendingShown = new Map(); // client_id -> <li>
    this.olderBefore = null; // `before` for the next older page; null when at the start
    this.loadingOlder = false;
    this.typing = new Map(); // user id -> timeout
    this.online = new Set();
    this.live = null;
    this.closed = false;
    this.connectedBefore = false;
    this.readPosted = 0;
    this.readAt = 0;
    this.readTimer = null;
    this.refetchTimer = null;
    this.onAttention = () => this.scheduleRead();
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
    $("members-panel").hidden = true;
    $("members-toggle").setAttribute("aria-expanded", "false");
    $("members-notice").textContent = "";
    showError("room-error", null);
    this.showHeader();
    this.setStatus({ state: "connecting" });
    window.addEventListener("focus", this.onAttention);
    document.addEventListener("visibilitychange", this.onAttention);
    let info;
    let page;
    let members;
    let reads;
    try {
      [info, page, members, reads] = await Promise.all([
        this.api.room(this.roomId),
        this.api.messages(this.roomId, { limit: HISTORY_PAGE }),
        this.api.members(this.roomId).catch(() => null),
        this.api.reads(this.roomId).catch(() => null),
      ]);
    } catch (err) {
      if (this.closed) return;
      this.setStatus({ state: "closed", reason: err.message });
      showError("room-error", err);
      return;
    }
    if (this.closed) return;
    this.readPosted = info.last_read_id ?? 0;
    if (members) this.setMembers(members.items);
    this.setInfo(info);
    this.addPage(page);
    if (reads) this.setReads(reads);
    this.scrollToBottom();
    const lastId = page.items.length ? page.items[page.items.length - 1].id : 0;
    this.startLive(lastId);
    if (this.revealId !== null) await this.reveal(this.revealId);
    this.scheduleRead();
    $("message-text").focus();
  }

  startLive(lastId) {
    const live = new LiveRoom(this.api, this.roomId, viewerId(), lastId);
    this.live = live;
    const on = (type, handler) => live.addEventListener(type, (e) => handler(e.detail));
    on("state", (d) => this.setStatus(d));
    on("message", (d) => this.onMessage(d.message));
    on("message_edited", (d) => this.messages.applyEdit(d.payload));
    on("message_deleted", (d) => this.messages.applyDelete(d.payload));
    on("reaction", (d) => this.messages.applyReaction(d.payload));
    on("read", (d) => this.onRead(d.payload));
    on("member", (d) => this.onMember(d.payload));
    on("room", (d) => this.setInfo({ ...this.info, ...d.payload }));
    on("room_purged", (d) => this.messages.purge(d.payload.up_to)); // by an administrator
    on("pending", (d) => this.showPending(d.send));
    on("acked", (d) => this.removePending(d.send.client_id));
    on("error", (d) => showError("room-error", d));
    on("presence", (d) => this.onPresence(d));
    on("typing", (d) => this.onTyping(d.user_id));
    on("notification", (d) => this.onNotification(d));
    live.start();
  }

  close() {
    this.closed = true;
    this.live?.stop();
    for (const timer of this.typing.values()) clearTimeout(timer);
    clearTimeout(this.readTimer);
    clearTimeout(this.refetchTimer);
    window.removeEventListener("focus", this.onAttention);
    document.removeEventListener("visibilitychange", this.onAttention);
  }

  // -- the room and its members

  setInfo(info) {
    this.info = info;
    const title = this.rooms.title(info);
    $("room-title").textContent = title;
    document.title = `${title} · chatd`;
    $("room-visibility-badge").textContent = info.kind === "dm" ? "direct" : info.visibility;
    this.rooms.update(info);
    this.showHeader();
    this.messages.refreshActions();
  }

  /** Which of Join, Leave, Invite fit the caller's place in the room. */
  showHeader() {
    const info = this.info;
    const role = info?.role ?? null;
    const dm = info?.kind === "dm";
    $("join-room").hidden = !info || dm || role !== null || info.visibility !== "public";
    const oneToOne = dm && (info.member_ids?.length ?? 2) <= 2;
    $("leave-room").hidden = !info || role === null || role === "owner" || oneToOne;
    const canInvite = !dm && role !== null && info?.visibility === "invite";
    const canAdd = !dm && info?.visibility === "private" && (role === "owner" || role === "admin");
    $("invite-open").hidden = !canInvite;
    $("people-form").hidden = !canInvite && !canAdd;
    $("people-label").textContent = canInvite ? "Invite by handle" : "Add a member by handle";
    this.addsBy = canInvite ? "invite" : canAdd ? "add" : null;
  }

  setMembers(items) {
    this.members = [...items].sort(
      (a, b) =>
        (ROLE_ORDER[a.role] ?? 3) - (ROLE_ORDER[b.role] ?? 3) ||
        String(a.handle).localeCompare(String(b.handle)),
    );
    for (const m of items) learn(m.user_id, m.handle);
    $("member-list").replaceChildren(
      ...this.members.map((m) => {
        const li = element("li", "member");
        li.append(element("span", "member-handle", userLabel(m.user_id)));
        if (m.role) li.append(" ", element("span", `badge role role-${m.role}`, m.role));
        if (m.user_id === viewerId()) li.append(" ", element("span", "hint", "(you)"));
        return li;
      }),
    );
    $("members-count").textContent = String(this.members.length);
    this.messages.refreshActions(); // senders' handles may be known now
    if (this.reads) this.showSeen();
    if (this.info) this.setInfo(this.info); // a DM's title
  }

  toggleMembers(open = $("members-panel").hidden) {
    $("members-panel").hidden = !open;
    $("members-toggle").setAttribute("aria-expanded", String(open));
  }

  async refetch() {
    try {
      const [info, members, reads] = await Promise.all([
        this.api.room(this.roomId),
        this.api.members(this.roomId),
        this.api.reads(this.roomId).catch(() => null),
      ]);
      if (this.closed) return;
      this.setMembers(members.items);
      this.setInfo(info);
      if (reads) this.setReads(reads);
    } catch (err) {
      if (!this.closed && err.status !== 403 && err.status !== 404) showError("room-error", err);
    }
  }

  refetchSoon() {
    clearTimeout(this.refetchTimer);
    this.refetchTimer = setTimeout(() => this.refetch(), REFETCH_AFTER_MS);
  }

  onMember(payload) {
    this.refetchSoon();
    if (payload.user_id === viewerId()) this.rooms.refresh({ withPublic: false });
  }

  async join() {
    try {
      this.setInfo(await this.api.joinRoom(this.roomId));
      await this.rooms.refresh();
      this.refetchSoon();
    } catch (err) {
      showError("room-error", err);
    }
  }

  async leave() {
    try {
      await this.api.leaveRoom(this.roomId);
      window.location.hash = "#/";
      await this.rooms.refresh();
    } catch (err) {
      showError("room-error", err);
    }
  }

  /** From the people picker: invite (invite rooms) or add (private rooms). */
  async addPerson(user) {
    if (this.addsBy === "invite") {
      await this.api.invite(this.roomId, user.id);
      $("members-notice").textContent = `Invited ${user.handle}.`;
    } else if (this.addsBy === "add") {
      await this.api.addMember(this.roomId, user.id);
      $("members-notice").textContent = `Added ${user.handle}.`;
      this.refetchSoon();
    }
  }

  // -- seen by (DMs and small rooms)

  setReads({ items, seen_by: seenBy }) {
    if (!seenBy) {
      this.reads = null;
      this.messages.setReaders([]);
      return;
    }
    this.reads = new Map();
    for (const { user_id: userId, last_read_id: at } of items ?? []) this.reads.set(userId, at ?? 0);
    this.showSeen();
  }

  onRead({ user_id: userId, message_id: at }) {
    if (!this.reads || typeof at !== "number") return;
    if (at > (this.reads.get(userId) ?? 0)) {
      this.reads.set(userId, at);
      this.showSeen();
    }
  }

  showSeen() {
    const readers = [...this.reads]
      .filter(([userId]) => userId !== viewerId())
      .map(([userId, at]) => ({ user_id: userId, last_read_id: at }));
    this.messages.setReaders(readers);
  }

  // -- reading: the newest message, once a second at most, while the tab has focus

  attentive() {
    return document.visibilityState === "visible" && document.hasFocus();
  }

  scheduleRead() {
    if (this.closed || this.readTimer || !this.info || this.info.role === null) return;
    if (!this.attentive() || this.messages.newestId <= this.readPosted) return;
    const wait = Math.max(0, this.readAt + READ_EVERY_MS - Date.now());
    this.readTimer = setTimeout(() => this.postRead(), wait);
  }

  async postRead() {
    this.readTimer = null;
    const newest = this.messages.newestId;
    if (this.closed || newest <= this.readPosted || !this.attentive()) return;
    const before = this.readPosted;
    this.readPosted = newest;
    this.readAt = Date.now();
    try {
      const counts = await this.api.markRead(this.roomId, newest);
      this.rooms.setRead(this.roomId, counts);
    } catch (err) {
      this.readPosted = before;
      if (err.status !== 403 && err.status !== 404) showError("room-error", err);
    }
  }

  // -- history

  addPage(page) {
    for (const message of page.items) this.messages.show(message);
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
      const page = await this.api.messages(this.roomId, {
        before: this.olderBefore,
        limit: HISTORY_PAGE,
      });
      if (this.closed) return;
      this.addPage(page);
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep what was on screen
    } catch (err) {
      showError("room-error", err);
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Scroll to a message, loading older pages to reach it. */
  async reveal(messageId) {
    this.revealId = null;
    for (let i = 0; i < REVEAL_PAGES && !this.messages.has(messageId); i++) {
      if (this.olderBefore === null || this.closed) break;
      await this.loadOlder();
    }
    if (!this.closed) this.messages.reveal(messageId);
  }

  // -- messages

  onMessage(message) {
    const stick = this.nearBottom();
    this.messages.show(message);
    this.stopTyping(message.user_id);
    // Sending moves the sender's watermark to their message.
    this.onRead({ user_id: message.user_id, message_id: message.id });
    if (stick || message.user_id === viewerId()) this.scrollToBottom();
    if (message.user_id === viewerId()) this.readPosted = Math.max(this.readPosted, message.id);
    else this.scheduleRead();
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
    meta.append(element("span", "sender", userLabel(viewerId())), " ");
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
    if (state === "closed") {
      showError("room-error", new Error(reason));
      this.rooms.refresh({ withPublic: false }); // access lost, say: the lists change too
    }
    if (state === "live") {
      showError("room-error", null);
      // Each connection is told afresh who is online: forget the old list.
      this.online.clear();
      $("presence").hidden = true;
      // Members, roles and reads are not replayed: refetch them after a reconnect.
      if (this.connectedBefore) this.refetchSoon();
      this.connectedBefore = true;
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
