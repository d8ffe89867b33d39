// Message search: everywhere, or in the open room. Highlight pieces come as
// [{text, match}] and become text nodes and <mark> elements, never markup.

import { $, button, element, showError, timeElement } from "./dom.js";
import { userLabel } from "./people.js";

const PAGE = 20;

/** The highlight pieces as a fragment: matched pieces in <mark>. */
export function highlighted(pieces) {
  const fragment = document.createDocumentFragment();
  for (const piece of pieces ?? []) {
    const text = String(piece?.text ?? "");
    fragment.append(piece?.match ? element("mark", null, text) : text);
  }
  return fragment;
}

export class Search {
  /**
   * `currentRoomId()`: the open room or null; `roomTitle(id)`: what to call a room;
   * `onOpen(message)`: a result was picked.
   */
  constructor(api, { currentRoomId, roomTitle, onOpen }) {
    this.api = api;
    this.currentRoomId = currentRoomId;
    this.roomTitle = roomTitle;
    this.onOpen = onOpen;
    this.query = null; // {q, roomId}
    this.next = null;
    this.asked = 0;
  }

  attach() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    $("search-clear").addEventListener("click", () => this.clear());
    $("search-more").addEventListener("click", () => this.more());
    $("search-q").addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.clear();
    });
  }

  /** A room opened or closed: offer "only this room" while one is open. */
  roomChanged() {
    const open = this.currentRoomId() !== null;
    $("search-here-row").hidden = !open;
    if (!open) $("search-here").checked = false;
  }

  async run() {
    const q = $("search-q").value.trim();
    if (!q) return this.clear();
    const here = $("search-here").checked ? this.currentRoomId() : null;
    this.query = { q, roomId: here };
    this.next = null;
    $("search-list").replaceChildren();
    await this.fetch();
  }

  async more() {
    if (this.query && this.next) await this.fetch();
  }

  async fetch() {
    const asked = ++this.asked;
    const { q, roomId } = this.query;
    $("search-results").hidden = false;
    $("search-status").textContent = "Searching…";
    showError("search-error", null);
    try {
      const page = await this.api.search(q, { roomId, cursor: this.next, limit: PAGE });
      if (asked !== this.asked) return;
      for (const item of page.items ?? []) $("search-list").append(this.result(item));
      this.next = page.next ?? null;
      const count = $("search-list").children.length;
      const where = roomId === null ? "" : ` in ${this.roomTitle(roomId)}`;
      $("search-status").textContent = count
        ? `${count}${this.next ? "+" : ""} found for "${q}"${where}`
        : `Nothing found for "${q}"${where}.`;
    } catch (err) {
      if (asked !== this.asked) return;
      $("search-status").textContent = "";
      showError("search-error", err);
    }
    $("search-more").hidden = !this.next;
  }

  result({ message, highlight }) {
    const li = element("li", "result");
    const open = button("", "result-open", () => this.onOpen(message));
    const meta = element("span", "result-meta");
    meta.append(
      element("span", "result-room", this.roomTitle(message.room_id)),
      " · ",
      element("span", "sender", userLabel(message.user_id)),
      " ",
      timeElement(message.created_at),
    );
    const text = element("span", "result-text");
    text.append(highlighted(highlight ?? [{ text: message.text, match: false }]));
    open.append(meta, text);
    li.append(open);
    return li;
  }

  clear() {
    this.asked++;
    this.query = null;
    this.next = null;
    $("search-q").value = "";
    $("search-list").replaceChildren();
    $("search-results").hidden = true;
    showError("search-error", null);
  }
}
