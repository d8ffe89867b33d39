// The Invitations panel: the caller's pending invitations to invite-only rooms,
// to accept (the room opens) or decline.

import { $, button, element, showError, syncList } from "./dom.js";
import { userLabel } from "./people.js";

export class Invitations {
  /** `onAccepted(room)` runs after an accepted invitation made the caller a member. */
  constructor(api, { onAccepted }) {
    this.api = api;
    this.onAccepted = onAccepted;
    this.items = [];
  }

  async refresh() {
    try {
      const page = await this.api.invites();
      this.items = page.items ?? [];
      showError("invites-error", null);
    } catch (err) {
      showError("invites-error", err);
    }
    this.render();
  }

  render() {
    syncList($("invite-list"), this.items, (i) => i.room_id, (li, i) => this.row(li, i));
    $("invites").hidden = this.items.length === 0 && !$("invites-error").textContent;
    $("invites-count").textContent = this.items.length ? String(this.items.length) : "";
  }

  row(li, invite) {
    li.className = "invite";
    const what = element("span", "invite-what");
    what.append(element("span", "room-name", invite.room_name ?? `Room ${invite.room_id}`));
    what.append(element("span", "invite-from", `from ${userLabel(invite.invited_by)}`));
    const accept = button("Accept", "small", () => this.answer(invite, true, [accept, decline]));
    accept.setAttribute("aria-label", `Accept the invitation to ${invite.room_name}`);
    const decline = button("Decline", "secondary small", () =>
      this.answer(invite, false, [accept, decline]),
    );
    decline.setAttribute("aria-label", `Decline the invitation to ${invite.room_name}`);
    const actions = element("span", "invite-actions");
    actions.append(accept, decline);
    li.replaceChildren(what, actions);
  }

  async answer(invite, accepting, controls) {
    controls.forEach((c) => (c.disabled = true));
    showError("invites-error", null);
    try {
      let room = null;
      if (accepting) room = await this.api.acceptInvite(invite.room_id);
      else await this.api.declineInvite(invite.room_id);
      this.items = this.items.filter((i) => i.room_id !== invite.room_id);
      this.render();
      if (room) await this.onAccepted(room);
    } catch (err) {
      controls.forEach((c) => (c.disabled = false));
      showError("invites-error", err);
      if (err.status === 404 || err.status === 409) this.refresh(); // withdrawn meanwhile
    }
  }
}
