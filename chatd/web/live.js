// One room over a WebSocket that survives network blips.
//
// Every connection asks for `?since=<last id seen>`, so the server replays
// what was missed. Sequenced frames (message, message_edited, message_deleted,
// reaction) each take the room's next id: all of them count as seen, and one
// whose id was seen already (a replay) is dropped. Every send carries a client_id and stays pending until its
// echo comes back; pending sends are sent again after a reconnect, and the
// server stores a repeated client_id only once. Reconnects back off
// exponentially with jitter.
//
// Events: "state" {state, delay_ms?, reason?}, "message" {message},
// "message_edited" / "message_deleted" / "reaction" {payload},
// "read" / "member" / "room" {payload} (not sequenced: refetch after a reconnect),
// "pending" {send} (added or changed), "acked" {send, message},
// "error" {code, message}, "presence" {user_id, status}, "typing" {user_id},
// "notification" {id, kind, room_id, message_id, …} (the caller's, of any room).

import { CLOSE_CODES } from "./close-codes.js"; // the server's table (chatd/closecodes.py)

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const PING_EVERY_MS = 20_000;
const SILENT_FOR_MS = 45_000; // no frame (not even a pong) for this long: the socket is dead
const TYPING_EVERY_MS = 3_000;
// After a close that says back_off (this client misbehaved), wait as if this many tries failed.
const BACK_OFF_ATTEMPTS = 4;
const SEEN_IDS_KEPT = 2_000; // ids remembered for de-duplication
const SEQUENCED = new Set(["message", "message_edited", "message_deleted", "reaction"]);
const STATE_FRAMES = new Set(["read", "member", "room", "room_purged"]);

/** Up to BACKOFF_FIRST_MS * 2^attempt (capped), of which a random half. */
export function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** A random id; crypto.randomUUID() exists only on https or localhost pages. */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class LiveRoom extends EventTarget {
  constructor(api, roomId, userId, lastId) {
    super();
    this.api = api;
    this.roomId = roomId;
    this.userId = userId;
    this.lastId = lastId; // the newest sequenced id this client has: `?since=` resumes after it
    this.startId = lastId; // ids up to here came with the history already
    this.seenIds = new Set(); // sequenced ids received since, for de-duplication
    this.pending = new Map(); // client_id -> {client_id, text, state: "sending" | "failed", error}
    this.state = "idle";
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.typingSupported = true;
    this.typingSentAt = 0;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    };
  }

  start() {
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "leaving the room");
  }

  /** Queue a message; it is sent now if connected, else on the next connection. */
  send(text) {
    const item = { client_id: newClientId(), text, state: "sending", error: "" };
    this.pending.set(item.client_id, item);
    this.emit("pending", { send: item });
    if (this.state === "live") this.transmit(item);
    return item;
  }

  retrySend(clientId) {
    const item = this.pending.get(clientId);
    if (!item) return;
    item.state = "sending";
    item.error = "";
    this.emit("pending", { send: item });
    if (this.state === "live") this.transmit(item);
  }

  discard(clientId) {
    const item = this.pending.get(clientId);
    if (!item) return;
    this.pending.delete(clientId);
    item.state = "discarded";
    this.emit("pending", { send: item });
  }

  /** Call on every keystroke: tells the room at most every 3 s, if the server knows typing. */
  typing() {
    const now = Date.now();
    if (this.state !== "live" || !this.typingSupported || now - this.typingSentAt < TYPING_EVERY_MS) {
      return;
    }
    this.typingSentAt = now;
    this.ws.send(JSON.stringify({ type: "typing" }));
  }

  /** Skip the rest of a backoff wait (the network is back, the tab is visible again). */
  reconnectNow() {
    if (this.stopped || this.state !== "waiting") return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.setState("connecting");
    let token;
    try {
      token = await this.api.accessToken();
    } catch (err) {
      if (err.status === 401) return this.fail(err.message);
      return this.retry();
    }
    if (this.stopped) return;
    const url = new URL(`/ws/rooms/${this.roomId}`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    url.searchParams.set("since", String(this.lastId));
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.attempt = 0;
      this.typingSupported = true; // a new server may know it; it says so with an error if not
      this.lastFrameAt = Date.now();
      this.setState("live");
      this.pingTimer = setInterval(() => this.heartbeat(ws), PING_EVERY_MS);
      for (const item of this.pending.values()) {
        if (item.state === "sending") this.transmit(item);
      }
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this.receive(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.dropped(event.code, opened);
    };
  }

  heartbeat(ws) {
    if (Date.now() - this.lastFrameAt > SILENT_FOR_MS) {
      // Half-open (a laptop woke up, a phone changed networks): give up on it.
      ws.close();
      this.dropped(1006, true);
      return;
    }
    ws.send(JSON.stringify({ type: "ping" }));
  }

  async dropped(code, opened) {
    this.ws = null;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    const close = CLOSE_CODES[code];
    if (close?.then === "stop") return this.fail(close.message);
    if (close?.then === "back_off") this.attempt = Math.max(this.attempt, BACK_OFF_ATTEMPTS);
    if (!opened) {
      // A browser hides the HTTP status of a refused handshake; REST tells why.
      try {
        await this.api.room(this.roomId);
      } catch (err) {
        if (err.status === 403 || err.status === 404 || err.status === 401) {
          return this.fail(err.message);
        }
      }
    }
    this.retry();
  }

  retry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.setState("waiting", { delay_ms: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  fail(reason) {
    this.setState("closed", { reason });
    this.stop();
  }

  transmit(item) {
    const frame = { type: "message", payload: { text: item.text, client_id: item.client_id } };
    this.ws.send(JSON.stringify(frame));
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    this.lastFrameAt = Date.now();
    const payload = frame?.payload ?? {};
    if (SEQUENCED.has(frame?.type)) {
      this.sequenced(frame.type, payload);
      return;
    }
    if (STATE_FRAMES.has(frame?.type)) {
      this.emit(frame.type, { payload });
      return;
    }
    switch (frame?.type) {
      case "error":
        this.serverError(payload);
        break;
      case "presence":
        if (payload.user_id !== undefined) this.emit("presence", payload);
        break;
      case "typing":
        if (payload.user_id !== undefined && payload.user_id !== this.userId) {
          this.emit("typing", payload);
        }
        break;
      case "notification": // the caller's, from any room (the notifications role)
        if (payload.id !== undefined) this.emit("notification", payload);
        break;
      default:
        break; // pong, and frame types newer than this client
    }
  }

  /** A frame with the room's next id: remembered as seen, applied once. */
  sequenced(type, payload) {
    const id = payload.id;
    if (typeof id !== "number") return;
    const repeat = id <= this.startId || this.seenIds.has(id);
    if (!repeat) this.remember(id);
    if (id > this.lastId) this.lastId = id;
    if (type === "message") {
      // A repeated echo still settles its send (it may be the only echo this tab sees).
      const mine = payload.user_id === this.userId ? this.pending.get(payload.client_id) : undefined;
      if (mine) {
        this.pending.delete(mine.client_id);
        mine.state = "acked";
        this.emit("acked", { send: mine, message: payload });
      }
      if (!repeat) this.emit("message", { message: payload });
      return;
    }
    if (!repeat) this.emit(type, { payload });
  }

  remember(id) {
    this.seenIds.add(id);
    if (this.seenIds.size <= SEEN_IDS_KEPT) return;
    // Ids arrive in order, so the first inserted are the oldest: forget a tenth of them.
    let drop = SEEN_IDS_KEPT / 10;
    for (const old of this.seenIds) {
      if (drop-- <= 0) break;
      this.seenIds.delete(old);
      if (old > this.startId) this.startId = old;
    }
  }

  serverError(error) {
    if (error.code === "unknown_type") {
      // We send only message, ping and typing, and the first two are known:
      // this server has no typing indicator. Stop offering it on this connection.
      this.typingSupported = false;
      return;
    }
    const item = error.client_id ? this.pending.get(error.client_id) : undefined;
    if (item) {
      item.state = "failed";
      item.error = error.message || error.code;
      this.emit("pending", { send: item });
      return;
    }
    this.emit("error", { code: error.code, message: error.message || error.code });
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit("state", { state, ...detail });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
