// The messages of the open room: rendering, edits, deletions, reactions, mentions
// and "seen by". Every change arrives as an absolute state (the new text, the new
// count), so applying one twice, or after history that has it, changes nothing.

import { button, element, fullTime, timeElement } from "./dom.js";
import { namesViewer, userLabel, viewerId } from "./people.js";

export const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
const MAX_TEXT_CHARS = 4000;
const FOUND_SHOWN_MS = 2_500;
// @handle or @id, not inside a word or an address; trailing dots and dashes end the
// sentence (as the server reads them: chatd/store/mentions.py).
const MENTION = /(?<![\p{L}\p{N}_@.+-])@([\p{L}\p{N}_][\p{L}\p{N}_.+-]{0,63})/gu;

/** Text nodes, with each @mention in a span ("mention me" when it names the viewer). */
export function textWithMentions(text) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const match of text.matchAll(MENTION)) {
    const token = match[1].replace(/[.-]+$/, "");
    if (!token) continue;
    fragment.append(text.slice(at, match.index));
    fragment.append(element("span", namesViewer(token) ? "mention me" : "mention", `@${token}`));
    at = match.index + 1 + token.length;
  }
  fragment.append(text.slice(at));
  return fragment;
}

export class MessageList {
  /**
   * `list` is the <ol>; `canModerate()` says whether the viewer may delete anyone's
   * messages (room admin or owner); `onError(err)` shows a failed action.
   */
  constructor(api, list, { roomId, canModerate, onError }) {
    this.api = api;
    this.list = list;
    this.roomId = roomId;
    this.canModerate = canModerate;
    this.onError = onError;
    this.records = new Map(); // message id -> {message, li, meta, body, chips, picker, seen, ...}
    this.readers = []; // [{user_id, last_read_id}], the viewer left out
  }

  has(id) {
    return this.records.has(id);
  }

  /** The newest message id shown, 0 if none. */
  get newestId() {
    let newest = 0;
    for (const id of this.records.keys()) if (id > newest) newest = id;
    return newest;
  }

  /** Show a message (from history or live); false if it is shown already. */
  show(message) {
    if (this.records.has(message.id)) return false;
    const rec = {
      message: { ...message, reactions: [...(message.reactions ?? [])] },
      li: element("li"),
      meta: element("div", "meta"),
      body: element("div", "text"),
      chips: element("div", "reactions"),
      picker: element("div", "picker"),
      seen: element("p", "seen-by"),
      editing: false,
      confirming: false,
      picking: false,
    };
    rec.li.dataset.id = String(message.id);
    rec.li.append(rec.meta, rec.body, rec.chips, rec.picker, rec.seen);
    this.records.set(message.id, rec);
    this.render(rec);
    // Ids grow; insert after the last shown message with a smaller one.
    let after = this.list.lastElementChild;
    while (after && Number(after.dataset.id) > message.id) after = after.previousElementSibling;
    if (after) after.after(rec.li);
    else this.list.prepend(rec.li);
    if (this.readers.length) this.renderSeen();
    return true;
  }

  // -- live changes

  applyEdit({ message_id: id, text, edited_at: editedAt, mentions }) {
    const rec = this.records.get(id);
    if (!rec || rec.message.deleted) return;
    Object.assign(rec.message, { text, edited_at: editedAt, mentions: mentions ?? [] });
    this.renderMeta(rec);
    if (!rec.editing) this.renderBody(rec);
    this.renderClasses(rec);
  }

  applyDelete({ message_id: id }) {
    const rec = this.records.get(id);
    if (!rec) return;
    Object.assign(rec.message, { deleted: true, text: "", mentions: [], reactions: [] });
    Object.assign(rec, { editing: false, confirming: false, picking: false });
    this.render(rec);
  }

  /** A `room_purged` frame: an administrator deleted every message up to this id. */
  purge(upTo) {
    for (const [id, rec] of this.records) {
      if (id > upTo) continue;
      rec.li.remove();
      this.records.delete(id);
    }
  }

  /** A `reaction` frame: the absolute count; `me` changes only when the viewer did it. */
  applyReaction({ message_id: id, emoji, count, user_id: userId, action }) {
    const rec = this.records.get(id);
    if (!rec) return;
    const old = rec.message.reactions.find((r) => r.emoji === emoji);
    const me = userId === viewerId() ? action === "added" : (old?.me ?? false);
    this.setReaction(rec, emoji, count, me);
  }

  setReaction(rec, emoji, count, me) {
    const reactions = rec.message.reactions;
    const at = reactions.findIndex((r) => r.emoji === emoji);
    if (count > 0 && at >= 0) reactions[at] = { emoji, count, me };
    else if (count > 0) reactions.push({ emoji, count, me });
    else if (at >= 0) reactions.splice(at, 1);
    this.renderReactions(rec);
  }

  /** Role changed: who may delete what. */
  refreshActions() {
    for (const rec of this.records.values()) this.renderMeta(rec);
  }

  /** Scroll to a message (a search result) and mark it for a moment. */
  reveal(id) {
    const rec = this.records.get(id);
    if (!rec) return false;
    rec.li.scrollIntoView({ block: "center" });
    rec.li.classList.add("found");
    setTimeout(() => rec.li.classList.remove("found"), FOUND_SHOWN_MS);
    return true;
  }

  // -- seen by

  /** `readers`: [{user_id, last_read_id}] of the other members; [] hides "seen by". */
  setReaders(readers) {
    this.readers = readers;
    this.renderSeen();
  }

  /** Under each message, the members whose watermark is there (or past it, before the next). */
  renderSeen() {
    const ids = [...this.records.keys()].sort((a, b) => a - b);
    const at = new Map(); // message id -> [labels]
    for (const { user_id: userId, last_read_id: upTo } of this.readers) {
      let target = null;
      for (const id of ids) {
        if (id > upTo) break;
        target = id;
      }
      if (target === null) continue;
      if (!at.has(target)) at.set(target, []);
      at.get(target).push(userLabel(userId));
    }
    for (const [id, rec] of this.records) {
      const names = at.get(id);
      rec.seen.textContent = names ? `Seen by ${names.sort().join(", ")}` : "";
    }
  }

  // -- rendering

  render(rec) {
    this.renderClasses(rec);
    this.renderMeta(rec);
    this.renderBody(rec);
    this.renderReactions(rec);
  }

  renderClasses(rec) {
    const m = rec.message;
    rec.li.className = "message";
    rec.li.classList.toggle("mine", m.user_id === viewerId());
    rec.li.classList.toggle("deleted", Boolean(m.deleted));
    rec.li.classList.toggle("mentions-me", (m.mentions ?? []).includes(viewerId()));
  }

  renderMeta(rec) {
    const m = rec.message;
    const parts = [element("span", "sender", userLabel(m.user_id)), " ", timeElement(m.created_at)];
    if (m.edited_at && !m.deleted) {
      const edited = element("span", "edited", "(edited)");
      edited.title = `Edited ${fullTime(m.edited_at)}`;
      parts.push(" ", edited);
    }
    const actions = element("span", "msg-actions");
    if (rec.confirming) {
      actions.append(
        element("span", "confirm", "Delete this message?"),
        button("Yes, delete", "link danger", () => this.remove(rec)),
        button("Cancel", "link", () => {
          rec.confirming = false;
          this.renderMeta(rec);
        }),
      );
    } else if (!m.deleted) {
      const react = button("React", "link", () => {
        rec.picking = !rec.picking;
        this.renderMeta(rec);
        this.renderPicker(rec);
      });
      react.setAttribute("aria-expanded", String(rec.picking));
      actions.append(react);
      if (m.user_id === viewerId() && !rec.editing) {
        actions.append(button("Edit", "link", () => this.startEdit(rec)));
      }
      if (m.user_id === viewerId() || this.canModerate()) {
        actions.append(
          button("Delete", "link", () => {
            rec.confirming = true;
            this.renderMeta(rec);
          }),
        );
      }
    }
    parts.push(actions);
    rec.meta.replaceChildren(...parts);
    this.renderPicker(rec);
  }

  renderBody(rec) {
    const m = rec.message;
    if (m.deleted) {
      const tombstone = element("div", "text tombstone", "message deleted");
      rec.body.replaceWith(tombstone);
      rec.body = tombstone;
      return;
    }
    if (rec.editing) {
      const form = this.editForm(rec);
      rec.body.replaceWith(form);
      rec.body = form;
      form.querySelector("textarea").focus();
      return;
    }
    const text = element("div", "text");
    text.append(textWithMentions(m.text));
    rec.body.replaceWith(text);
    rec.body = text;
  }

  renderReactions(rec) {
    const chips = rec.message.reactions.map(({ emoji, count, me }) => {
      const chip = button(`${emoji} ${count}`, "chip", () => this.toggle(rec, emoji));
      chip.setAttribute("aria-pressed", String(Boolean(me)));
      chip.title = me ? `You reacted ${emoji}: click to take it back` : `React ${emoji}`;
      return chip;
    });
    rec.chips.replaceChildren(...chips);
    rec.chips.hidden = chips.length === 0;
  }

  renderPicker(rec) {
    rec.picker.hidden = !rec.picking || Boolean(rec.message.deleted);
    if (rec.picker.hidden) return rec.picker.replaceChildren();
    rec.picker.replaceChildren(
      ...QUICK_EMOJI.map((emoji) => {
        const choice = button(emoji, "emoji", async () => {
          rec.picking = false;
          this.renderMeta(rec);
          const old = rec.message.reactions.find((r) => r.emoji === emoji);
          if (!old?.me) await this.toggle(rec, emoji);
        });
        choice.title = `React ${emoji}`;
        choice.setAttribute("aria-label", `React ${emoji}`);
        return choice;
      }),
    );
  }

  // -- actions (REST; the live frames that follow change nothing more)

  async toggle(rec, emoji) {
    const on = !rec.message.reactions.find((r) => r.emoji === emoji)?.me;
    try {
      const reply = await this.api.react(this.roomId, rec.message.id, emoji, on);
      this.setReaction(rec, emoji, reply.count, reply.me);
    } catch (err) {
      this.onError(err);
    }
  }

  async remove(rec) {
    try {
      await this.api.deleteMessage(this.roomId, rec.message.id);
      this.applyDelete({ message_id: rec.message.id });
    } catch (err) {
      rec.confirming = false;
      this.renderMeta(rec);
      this.onError(err);
    }
  }

  startEdit(rec) {
    rec.editing = true;
    rec.picking = false;
    this.renderMeta(rec);
    this.renderBody(rec);
  }

  stopEdit(rec) {
    rec.editing = false;
    this.renderMeta(rec);
    this.renderBody(rec);
  }

  editForm(rec) {
    const form = element("form", "edit");
    const id = `edit-${rec.message.id}`;
    const label = element("label", "visually-hidden", "Edit message");
    label.htmlFor = id;
    const box = element("textarea");
    box.id = id;
    box.maxLength = MAX_TEXT_CHARS;
    box.value = rec.message.text;
    box.rows = Math.min(6, Math.max(1, box.value.split("\n").length));
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        this.stopEdit(rec);
      }
    });
    const save = element("button", null, "Save");
    save.type = "submit";
    const row = element("div", "edit-actions");
    row.append(save, button("Cancel", "secondary", () => this.stopEdit(rec)));
    form.append(label, box, row);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = box.value;
      if (text === rec.message.text) return this.stopEdit(rec);
      if (!text.trim()) {
        this.onError(new Error("A message cannot be empty: delete it instead."));
        return;
      }
      save.disabled = true;
      try {
        const edited = await this.api.editMessage(this.roomId, rec.message.id, text);
        rec.editing = false;
        this.applyEdit({ ...edited, message_id: rec.message.id });
      } catch (err) {
        save.disabled = false;
        this.onError(err);
      }
    });
    return form;
  }
}
