// REST calls to chatd, and the tokens this tab keeps in sessionStorage.
//
// The access token is refreshed a minute before it expires (and on a 401).
// Refresh tokens are single use and the server revokes the whole session when
// one is replayed, so at most one refresh is ever in flight.

const SESSION_KEY = "chatd.session";
const REFRESH_MARGIN_MS = 60_000;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0 when the server could not be reached
    this.code = code;
  }
}

export class Api extends EventTarget {
  constructor(storage = window.sessionStorage) {
    super();
    this.storage = storage;
    this.session = readSession(storage); // {access_token, refresh_token, expires_at}
    this.refreshing = null;
    this.refreshTimer = null;
    this.scheduleRefresh();
  }

  get loggedIn() {
    return this.session !== null;
  }

  register(email, password) {
    return this.call("POST", "/api/v1/auth/register", { email, password }, { auth: false });
  }

  async login(email, password) {
    const pair = await this.call("POST", "/api/v1/auth/login", { email, password }, { auth: false });
    this.keep(pair);
  }

  /** Forget the tokens and end the login on the server; `reason` is shown on the login
   * screen when set. */
  logout(reason = "") {
    const token = this.session?.refresh_token;
    if (token) {
      // Revoked server-side, a copy of the refresh token left anywhere is useless. Not
      // awaited: the tab forgets its tokens now, whatever the network does.
      fetch("/api/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
        keepalive: true,
      }).catch(() => {});
    }
    this.session = null;
    this.storage.removeItem(SESSION_KEY);
    clearTimeout(this.refreshTimer);
    this.dispatchEvent(new CustomEvent("logout", { detail: reason }));
  }

  me() {
    return this.call("GET", "/api/v1/users/me");
  }

  /** A page of rooms: `kind` "room" or "dm", `joined` only the caller's. */
  rooms({ kind = null, joined = false, cursor = null, limit = 100 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (kind) query.set("kind", kind);
    if (joined) query.set("joined", "true");
    if (cursor) query.set("cursor", cursor);
    return this.call("GET", `/api/v1/rooms?${query}`);
  }

  room(roomId) {
    return this.call("GET", `/api/v1/rooms/${roomId}`);
  }

  createRoom(name, visibility) {
    return this.call("POST", "/api/v1/rooms", { name, visibility });
  }

  joinRoom(roomId) {
    return this.call("POST", `/api/v1/rooms/${roomId}/join`);
  }

  leaveRoom(roomId) {
    return this.call("POST", `/api/v1/rooms/${roomId}/leave`);
  }

  members(roomId) {
    return this.call("GET", `/api/v1/rooms/${roomId}/members`);
  }

  addMember(roomId, userId) {
    return this.call("PUT", `/api/v1/rooms/${roomId}/members/${userId}`);
  }

  /** `{items: [{user_id, last_read_id}], seen_by}`. */
  reads(roomId) {
    return this.call("GET", `/api/v1/rooms/${roomId}/reads`);
  }

  /** Moves the caller's watermark forward: `{last_read_id, unread, mentions}`. */
  markRead(roomId, messageId) {
    return this.call("POST", `/api/v1/rooms/${roomId}/read`, { message_id: messageId });
  }

  /** Up to 20 `{id, handle}` whose handle starts with `prefix`. */
  findUsers(prefix) {
    return this.call("GET", `/api/v1/users?${new URLSearchParams({ handle: prefix })}`);
  }

  /** The one DM with that user (201 the first time, 200 after). */
  openDm(userId) {
    return this.call("POST", "/api/v1/dms", { user_id: userId });
  }

  invites() {
    return this.call("GET", "/api/v1/users/me/invites");
  }

  acceptInvite(roomId) {
    return this.call("POST", `/api/v1/users/me/invites/${roomId}/accept`);
  }

  declineInvite(roomId) {
    return this.call("DELETE", `/api/v1/users/me/invites/${roomId}`);
  }

  invite(roomId, userId) {
    return this.call("POST", `/api/v1/rooms/${roomId}/invites`, { user_id: userId });
  }

  editMessage(roomId, messageId, text) {
    return this.call("PATCH", `/api/v1/rooms/${roomId}/messages/${messageId}`, { text });
  }

  deleteMessage(roomId, messageId) {
    return this.call("DELETE", `/api/v1/rooms/${roomId}/messages/${messageId}`);
  }

  /** Add (`on`) or remove the caller's reaction: `{message_id, emoji, count, me}`. */
  react(roomId, messageId, emoji, on) {
    const path = `/api/v1/rooms/${roomId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`;
    return this.call(on ? "PUT" : "DELETE", path);
  }

  /** `{items, next, unread_count}`: the caller's notifications, newest first. */
  notifications({ limit = 10 } = {}) {
    return this.call("GET", `/api/v1/notifications?${new URLSearchParams({ limit: String(limit) })}`);
  }

  /** Marks read every notification up to that id: `{unread_count}`. */
  markNotificationsRead(upTo) {
    return this.call("POST", "/api/v1/notifications/read", { up_to: upTo });
  }

  /** `{items: [{message, highlight}], next}`, newest first; everywhere unless `roomId`. */
  search(q, { roomId = null, cursor = null, limit = 20 } = {}) {
    const query = new URLSearchParams({ q, limit: String(limit) });
    if (roomId !== null) query.set("room_id", String(roomId));
    if (cursor) query.set("cursor", cursor);
    return this.call("GET", `/api/v1/search?${query}`);
  }

  /** A page of history, oldest first; `next` is the `before` for the page older than it. */
  messages(roomId, { before = null, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== null) query.set("before", String(before));
    return this.call("GET", `/api/v1/rooms/${roomId}/messages?${query}`);
  }

  /** A current access token, refreshed first if it is about to expire. */
  async accessToken() {
    if (!this.session) throw new ApiError(401, "unauthorized", "You are not logged in.");
    if (Date.now() > this.session.expires_at - REFRESH_MARGIN_MS) await this.refresh();
    return this.session.access_token;
  }

  refresh() {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async refreshOnce() {
    const token = this.session?.refresh_token;
    if (!token) throw new ApiError(401, "unauthorized", "You are not logged in.");
    let pair;
    try {
      pair = await this.call("POST", "/api/v1/auth/refresh", { refresh_token: token }, { auth: false });
    } catch (err) {
      if (err.status === 401 || err.status === 422) {
        this.logout("Your session has expired. Please log in again.");
      }
      throw err;
    }
    if (this.session?.refresh_token === token) this.keep(pair); // not logged out meanwhile
  }

  keep(pair) {
    this.session = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      expires_at: Date.now() + pair.expires_in * 1000,
    };
    this.storage.setItem(SESSION_KEY, JSON.stringify(this.session));
    this.scheduleRefresh();
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (!this.session) return;
    const wait = Math.max(0, this.session.expires_at - REFRESH_MARGIN_MS - Date.now());
    // A failure here is retried by the next call that needs a token.
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  async call(method, path, body, { auth = true, retried = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth) headers.Authorization = `Bearer ${await this.accessToken()}`;
    let reply;
    try {
      reply = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
    }
    if (reply.status === 401 && auth && !retried) {
      // The token was refused before its time (a server restart, say): refresh once.
      await this.refresh();
      return this.call(method, path, body, { auth, retried: true });
    }
    if (reply.status === 204) return null;
    let data = null;
    try {
      data = await reply.json();
    } catch {
      // an empty or non-JSON body: described below by its status
    }
    if (!reply.ok) {
      const error = data?.error;
      throw new ApiError(
        reply.status,
        error?.code ?? `http_${reply.status}`,
        error?.message ?? `The server answered ${reply.status} ${reply.statusText}.`,
      );
    }
    return data;
  }
}

function readSession(storage) {
  try {
    const session = JSON.parse(storage.getItem(SESSION_KEY) ?? "null");
    return session?.access_token && session?.refresh_token ? session : null;
  } catch {
    return null;
  }
}
