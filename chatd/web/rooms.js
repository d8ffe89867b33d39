// The conversation lists: joined rooms, DMs (named after the other members), public
// rooms to join, with unread badges and a mention marker. There is no live channel
// across rooms: app.js polls the lists, and they are refreshed after every action.

import { $, button, element, showError, syncList } from "./dom.js";
import { knows, learn, userLabel, viewerId } from "./people.js";

const PAGE = 100;
const MAX_PAGES = 5; // joined rooms and DMs: up to 500 of each

export class RoomList {
  /** `currentRoomId()` is the open room's id, or null. */
  constructor(api, { currentRoomId }) {
    this.api = api;
    this.currentRoomId = currentRoomId;
    this.known = new Map(); // room id -> the newest copy of the room seen
    this.joined = [];
    this.dms = [];
    this.publicRooms = [];
    this.publicNext = null;
    this.membersAsked = new Set(); // DMs whose members were fetched for their handles
    this.clock = 0; // orders refreshes against local read updates
    this.readAt = new Map(); // room id -> clock of the last local read update
    this.applied = 0; // the clock of the newest refresh shown
    this.publicApplied = 0;
  }

  /** Refetch the joined rooms and DMs (and the first page of public rooms). */
  async refresh({ withPublic = true } = {}) {
    const started = ++this.clock;
    try {
      const [joined, dms, pub] = await Promise.all([
        this.all({ kind: "room", joined: true }),
        this.all({ kind: "dm", joined: true }),
        withPublic ? this.api.rooms({ kind: "room", limit: PAGE }) : null,
      ]);
      // An answer overtaken by a newer one is dropped.
      if (started > this.applied) {
        this.applied = started;
        this.joined = joined.map((room) => this.keep(room, started));
        this.dms = dms.map((room) => this.keep(room, started));
      }
      if (pub && started > this.publicApplied) {
        this.publicApplied = started;
        this.publicRooms = pub.items.map((room) => this.keep(room, started));
        this.publicNext = pub.next;
      }
      showError("rooms-error", null);
      this.render();
    } catch (err) {
      showError("rooms-error", err);
    }
  }

  async morePublic() {
    if (!this.publicNext) return;
    try {
      const page = await this.api.rooms({ kind: "room", cursor: this.publicNext, limit: PAGE });
      this.publicRooms.push(...page.items.map((room) => this.keep(room, this.clock)));
      this.publicNext = page.next;
      this.render();
    } catch (err) {
      showError("rooms-error", err);
    }
  }

  async all(query) {
    const items = [];
    let cursor = null;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await this.api.rooms({ ...query, cursor, limit: PAGE });
      items.push(...page.items);
      cursor = page.next;
      if (!cursor) break;
    }
    return items;
  }

  /** Remember a room from a list; read counts updated here since the list was asked keep. */
  keep(room, started) {
    const old = this.known.get(room.id);
    const merged = { ...room };
    if (old && (this.readAt.get(room.id) ?? 0) > started) {
      merged.unread = old.unread;
      merged.mentions = old.mentions;
      merged.last_read_id = old.last_read_id;
    }
    this.known.set(room.id, merged);
    return merged;
  }

  /** A room changed (a `room` frame, a join): merge what is known and redraw. */
  update(room) {
    const merged = { ...this.known.get(room.id), ...room };
    this.known.set(room.id, merged);
    for (const list of [this.joined, this.dms, this.publicRooms]) {
      const at = list.findIndex((r) => r.id === room.id);
      if (at >= 0) list[at] = merged;
    }
    this.render();
  }

  /** The caller read a room: `{last_read_id, unread, mentions}` from POST /read. */
  setRead(roomId, counts) {
    this.readAt.set(roomId, ++this.clock);
    const room = this.known.get(roomId);
    if (room) this.update({ ...room, ...counts });
  }

  /** What to call a room: its name, or for a DM the other members' handles. */
  title(room) {
    if (room.kind !== "dm") return room.name ?? `Room ${room.id}`;
    const others = (room.member_ids ?? []).filter((id) => id !== viewerId());
    if (others.some((id) => !knows(id))) this.askMembers(room.id);
    return others.length ? others.map(userLabel).join(", ") : "just you";
  }

  async askMembers(roomId) {
    if (this.membersAsked.has(roomId)) return;
    this.membersAsked.add(roomId);
    try {
      const page = await this.api.members(roomId);
      for (const m of page.items) learn(m.user_id, m.handle);
      this.render();
    } catch {
      this.membersAsked.delete(roomId); // asked again on the next refresh
    }
  }

  // -- drawing

  render() {
    const byName = (a, b) => (a.name ?? "").localeCompare(b.name ?? "") || a.id - b.id;
    const byActivity = (a, b) => (b.last_message_id ?? 0) - (a.last_message_id ?? 0) || b.id - a.id;
    syncList($("room-list"), [...this.joined].sort(byName), (r) => r.id, (li, r) => this.row(li, r));
    syncList($("dm-list"), [...this.dms].sort(byActivity), (r) => r.id, (li, r) => this.row(li, r));
    const toJoin = this.publicRooms.filter((r) => r.role === null || r.role === undefined);
    syncList($("public-list"), toJoin, (r) => r.id, (li, r) => this.publicRow(li, r));
    $("rooms-empty").hidden = this.joined.length > 0;
    $("dms-empty").hidden = this.dms.length > 0;
    $("public-empty").hidden = toJoin.length > 0 || Boolean(this.publicNext);
    $("more-rooms").hidden = !this.publicNext;
    this.markCurrent();
  }

  row(li, room) {
    li.dataset.roomId = String(room.id);
    const link = li.querySelector("a") ?? li.appendChild(element("a", "room-link"));
    link.href = `#/rooms/${room.id}`;
    const parts = [element("span", "room-name", this.title(room))];
    if (room.kind !== "dm" && room.visibility !== "public") {
      parts.push(element("span", "badge", room.visibility));
    }
    const tail = element("span", "room-tail");
    if (room.mentions > 0) {
      const marker = element("span", "mention-marker", "@");
      marker.title = `${room.mentions} mentioning you`;
      tail.append(marker, element("span", "visually-hidden", " mentions you,"));
    }
    if (room.unread > 0) {
      tail.append(element("span", "unread", String(room.unread)));
      tail.append(element("span", "visually-hidden", " unread"));
    }
    if (room.kind !== "dm") tail.append(element("span", "room-id", `#${room.id}`));
    parts.push(tail);
    link.replaceChildren(...parts);
    li.classList.toggle("has-unread", room.unread > 0);
  }

  publicRow(li, room) {
    li.dataset.roomId = String(room.id);
    li.className = "public-room";
    const link = element("a", "room-link");
    link.href = `#/rooms/${room.id}`;
    link.append(element("span", "room-name", room.name), element("span", "room-id", `#${room.id}`));
    const join = button("Join", "secondary small", () => this.join(room.id, join));
    join.setAttribute("aria-label", `Join ${room.name}`);
    li.replaceChildren(link, join);
  }

  async join(roomId, control) {
    if (control) control.disabled = true;
    try {
      const room = await this.api.joinRoom(roomId);
      this.update(room);
      await this.refresh();
    } catch (err) {
      showError("rooms-error", err);
    } finally {
      if (control) control.disabled = false;
    }
  }

  markCurrent() {
    const current = this.currentRoomId();
    for (const list of [$("room-list"), $("dm-list"), $("public-list")]) {
      for (const li of list.children) {
        const link = li.querySelector("a");
        if (current !== null && li.dataset.roomId === String(current)) {
          link.setAttribute("aria-current", "page");
        } else {
          link.removeAttribute("aria-current");
        }
      }
    }
  }
}
