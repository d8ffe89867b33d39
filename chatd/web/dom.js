// Small DOM helpers shared by the modules. Text from users only ever goes into the
// page as text nodes (textContent, append of strings): it may contain HTML.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(text, className, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  if (onClick) node.addEventListener("click", onClick);
  return node;
}

/** Show an error (or clear it with null) in the element with that id. */
export function showError(id, err) {
  $(id).textContent = err ? err.message || String(err) : "";
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** A <time> showing the hour (or the date and hour when not today), the full date on hover. */
export function timeElement(iso, className = "time") {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const node = element("time", className, (today ? timeFormat : dateTimeFormat).format(date));
  node.dateTime = iso;
  node.title = fullFormat.format(date);
  return node;
}

export function fullTime(iso) {
  return fullFormat.format(new Date(iso));
}

/**
 * Make `list`'s <li> children match `items`, reusing the <li> of an item already
 * shown (by key) so that focus and state survive a refresh; `render(li, item)` fills
 * one in. Only items out of place are moved.
 */
export function syncList(list, items, keyOf, render) {
  const old = new Map();
  for (const li of list.children) old.set(li.dataset.key, li);
  const wanted = items.map((item) => {
    const key = String(keyOf(item));
    let li = old.get(key);
    old.delete(key);
    if (!li) {
      li = document.createElement("li");
      li.dataset.key = key;
    }
    render(li, item);
    return li;
  });
  for (const li of old.values()) li.remove();
  let cursor = list.firstElementChild;
  for (const li of wanted) {
    if (li === cursor) cursor = cursor.nextElementSibling;
    else list.insertBefore(li, cursor);
  }
}

/** Call `fn` at most once per `ms`, with the latest arguments, after the calls stop. */
export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}
