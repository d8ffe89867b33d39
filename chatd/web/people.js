// Who is who: handles learnt from member lists and user searches (there is no
// lookup by id), and the "find a person by handle" picker used by New DM, Invite
// and Add member.

import { button, debounce, element } from "./dom.js";

const handles = new Map(); // user id -> handle
let viewer = null; // {id, email, handle}

/** The signed-in user; an older server without `handle` gets the email's local part. */
export function setViewer(me) {
  viewer = me;
  if (!me) return;
  me.handle ??= String(me.email ?? "").split("@")[0];
  handles.set(me.id, me.handle);
}

export function viewerId() {
  return viewer?.id ?? null;
}

export function learn(userId, handle) {
  if (typeof userId === "number" && handle) handles.set(userId, handle);
}

export function knows(userId) {
  return handles.has(userId);
}

export function userLabel(userId) {
  return handles.get(userId) ?? `user ${userId}`;
}

/** Whether an @token in a text names the viewer (by handle or id). */
export function namesViewer(token) {
  if (!viewer) return false;
  return token.toLowerCase() === viewer.handle.toLowerCase() || token === String(viewer.id);
}

const PICK_DELAY_MS = 200;

/**
 * Wire a form (an input and a <ul> for candidates) to `GET /users?handle=`: typing
 * lists matching people as buttons, a click (or Enter on an exact handle) picks one.
 * `onPick({id, handle})` may throw or reject: its message shows in `error`.
 */
export function attachPicker(api, { form, input, list, error, onPick, excludeViewer = true }) {
  let candidates = [];
  let asked = "";

  const show = (items) => {
    candidates = items;
    list.replaceChildren(
      ...items.map((user) => {
        const li = element("li");
        li.append(button(`@${user.handle}`, "secondary pick", () => pick(user)));
        return li;
      }),
    );
    list.hidden = items.length === 0;
  };

  const pick = async (user) => {
    error.textContent = "";
    try {
      await onPick(user);
      input.value = "";
      show([]);
    } catch (err) {
      error.textContent = err.message || String(err);
    }
  };

  const lookup = async () => {
    const prefix = input.value.trim().replace(/^@/, "");
    asked = prefix;
    if (!prefix) return show([]);
    try {
      const page = await api.findUsers(prefix);
      if (asked !== prefix) return; // typed on meanwhile
      const items = (page.items ?? []).filter((u) => !excludeViewer || u.id !== viewerId());
      for (const user of items) learn(user.id, user.handle);
      error.textContent = items.length ? "" : `Nobody's handle starts with "${prefix}".`;
      show(items);
    } catch (err) {
      error.textContent = err.message || String(err);
    }
  };
  const later = debounce(lookup, PICK_DELAY_MS);

  input.addEventListener("input", later);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    later.cancel();
    await lookup();
    const wanted = input.value.trim().replace(/^@/, "").toLowerCase();
    const exact = candidates.find((u) => u.handle.toLowerCase() === wanted);
    if (exact) await pick(exact);
    else if (candidates.length === 1) await pick(candidates[0]);
  });
  return {
    reset() {
      input.value = "";
      error.textContent = "";
      show([]);
    },
  };
}
