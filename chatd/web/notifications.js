// The Notifications panel: mentions and DMs missed while offline, newest first, with
// a badge of the unread ones in the top bar. Filled over REST (at login, with the lists'
// poll) and live from the open room's socket, where the server pushes new ones
// ({"type": "notification"}: any room's, not only that room's). "Mark all read" marks
// every one up to the newest shown. A server without the notifications role answers
// 404: the panel and the badge then stay hidden.

import { $, button, element, showError, syncList, timeElement } from "./dom.js";
import { userLabel } from "./people.js";

const SHOWN = 10;

export class Notifications {
  /** `roomTitle(id)` names a room; `onOpen({room_id, message_id})` shows a message. */
  constructor(api, { roomTitle, onOpen }) {
    this.api = api;
    this.roomTitle = roomTitle;
    this.onOpen = onOpen;
    this.items = [];
    this.unread = 0;
    this.served = true;
  }

  attach() {
    $("notifications-read").addEventListener("click", () => this.markAllRead());
  }

  async refresh() {
    if (!this.served) return;
    try {
      const page = await this.api.notifications({ limit: SHOWN });
      this.items = page.items ?? [];
      this.unread = page.unread_count ?? 0;
      showError("notifications-error", null);
    } catch (err) {
      if (err.status === 404) this.served = false; // no notifications role behind this URL
      else showError("notifications-error", err);
    }
    this.render();
  }

  /** A notification the server pushed: shown at once, counted once. */
  pushed(notification) {
    if (this.items.some((n) => n.id === notification.id)) return;
    this.items = [notification, ...this.items].slice(0, SHOWN);
    if (!notification.read) this.unread += 1;
    this.render();
  }

  async markAllRead() {
    if (!this.items.length) return;
    showError("notifications-error", null);
    try {
      const reply = await this.api.markNotificationsRead(this.items[0].id);
      this.unread = reply.unread_count;
      this.items = this.items.map((n) => ({ ...n, read: true }));
    } catch (err) {
      showError("notifications-error", err);
    }
    this.render();
  }

  render() {
    syncList($("notification-list"), this.items, (n) => n.id, (li, n) => this.row(li, n));
    const shown = this.served && (this.items.length > 0 || !!$("notifications-error").textContent);
    $("notifications").hidden = !shown;
    $("notifications-count").textContent = this.unread ? String(this.unread) : "";
    $("notifications-read").hidden = this.unread === 0;
    const bell = $("bell");
    bell.hidden = !this.served || this.unread === 0;
    bell.textContent = `${this.unread} new`;
    bell.setAttribute("aria-label", `${this.unread} unread notifications`);
  }

  row(li, notification) {
    li.className = notification.read ? "notification" : "notification unread-note";
    const open = button("", "result-open", () => this.onOpen(notification));
    const meta = element("span", "result-meta");
    const what = notification.kind === "mention" ? "mentioned you in" : "wrote to you in";
    meta.append(
      element("span", "result-room", userLabel(notification.sender_id)),
      ` ${what} ${this.roomTitle(notification.room_id)} · `,
      timeElement(notification.created_at),
    );
    open.append(meta, element("span", "result-text", notification.excerpt));
    li.replaceChildren(open);
  }
}
