// The sealsync demo board: a task list shared, end-to-end encrypted, by everyone in a room.
// Plain ES module; the SDK is the wasm-pack package served at /pkg/.
import init, { Room } from "/pkg/index.js";

const COLLECTION = "tasks";
const $ = (id) => document.getElementById(id);

const joinView = $("join-view");
const boardView = $("board-view");
const joinForm = $("join-form");
const joinError = $("join-error");
const joinButton = $("join-button");
const list = $("tasks");
const template = $("task-template");

let room = null;
let shared = null; // { url?, room, secret } from a share link in the fragment
let statusTimer = null;
let lastPresence = null;
let me = { id: "", name: "" };
let viaLink = false; // joined with a share link's secret rather than a password
let rekeying = false; // a member changed the room's key: the rekey form is up until live again
let rotating = false; // this tab's room.rotate is under way
let rekeyBusy = false; // this tab's room.rekey is being checked

await init();

// ---------- join ----------

function readShareLink() {
  shared = location.hash.length > 1 ? Room.parseShareLink(location.hash) : null;
  $("password-row").hidden = !!shared;
  $("password").required = !shared;
  $("link-hint").hidden = !shared;
  if (shared) {
    $("room").value = shared.room;
    if (shared.url) $("relay").value = shared.url;
  }
}

$("forget-link").addEventListener("click", (e) => {
  e.preventDefault();
  history.replaceState(null, "", location.pathname + location.search);
  readShareLink();
});

function showJoinError(message) {
  joinError.textContent = message;
  joinError.hidden = !message;
}

function personId() {
  let id = localStorage.getItem("sealsync-demo-person");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("sealsync-demo-person", id);
  }
  return id;
}

joinForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  showJoinError("");
  const url = $("relay").value.trim();
  const roomName = $("room").value.trim();
  me = { id: personId(), name: $("name").value.trim() || "Someone" };
  localStorage.setItem("sealsync-demo-name", $("name").value.trim());
  localStorage.setItem("sealsync-demo-relay", url);
  joinButton.disabled = true;
  joinButton.textContent = "Joining…";
  const options = { url, room: roomName };
  if (shared) options.secret = shared.secret;
  else options.password = $("password").value;
  viaLink = !!shared;
  // Who is online: the others see this name and colour (sealed; the relay never does).
  options.profile = { name: me.name, color: colorOf(me.id), person: me.id };
  options.onProgress = (p) => {
    if (p.state === "deriving-key") joinButton.textContent = "Deriving key…";
    if (p.state === "key-ready") console.info(`sealsync: key derived in ${Math.round(p.ms)} ms (${p.inWorker ? "worker" : "main thread"})`);
  };
  try {
    room = await Room.join(options);
    window.sealsyncRoom = room; // for the console and the end-to-end tests
    enterBoard();
  } catch (err) {
    showJoinError(explain(err));
  } finally {
    joinButton.disabled = false;
    joinButton.textContent = "Join room";
  }
});

/** A stable colour per person (from their id). */
function colorOf(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 45%)`;
}

/** The avatars of who is online: one per person (several tabs of one person count once). */
function renderMembers(members) {
  const box = $("members");
  box.replaceChildren();
  const seen = new Set();
  for (const m of members) {
    const p = m.profile && typeof m.profile === "object" ? m.profile : {};
    const person = typeof p.person === "string" ? p.person : m.session;
    if (seen.has(person)) continue;
    seen.add(person);
    const name = typeof p.name === "string" && p.name ? p.name : "Someone";
    const dot = document.createElement("span");
    dot.className = "avatar";
    dot.dataset.testid = "member";
    dot.textContent = name.slice(0, 1).toUpperCase();
    dot.title = m.isSelf ? `${name} (you)` : name;
    dot.style.background = typeof p.color === "string" ? p.color : "#888";
    box.append(dot);
  }
}

function explain(err) {
  switch (err && err.code) {
    case "EMPTY_PASSWORD": return "Enter the room password.";
    case "INVALID_ROOM_ID": return "That room name can't be used: " + err.message;
    case "INVALID_SECRET": return "This share link is damaged or incomplete. Ask for a new one.";
    case "INVALID_OPTIONS": return err.message;
    default: return (err && err.message) || String(err);
  }
}

// ---------- board ----------

function enterBoard() {
  joinView.hidden = true;
  boardView.hidden = false;
  $("conn").hidden = false;
  $("room-title").textContent = room.roomId;
  rekeying = false;
  labelKeyControls();
  closeKeyForms();
  refreshKey();
  room.on("change", scheduleRender);
  room.on("status", showStatus);
  room.on("presence", (n) => {
    lastPresence = n;
    $("presence-count").textContent = String(n);
  });
  lastPresence = null;
  $("presence-count").textContent = "–";
  room.on("members", renderMembers);
  renderMembers(room.members);
  room.on("pending", showPending);
  room.on("warning", (w) => console.warn("sealsync warning", w.code, w.message));
  room.on("rejected", (r) => {
    console.warn("sealsync rejected", r.code, r.message, r.ops);
    showNotice(explainRejected(r));
  });
  showStatus(room.status);
  render();
  $("new-title").focus();
}

async function leaveBoard(message) {
  const r = room;
  room = null;
  clearInterval(statusTimer);
  rekeying = false;
  closeKeyForms();
  $("members").replaceChildren();
  if (r) await r.leave();
  boardView.hidden = true;
  joinView.hidden = false;
  $("conn").hidden = true;
  list.replaceChildren();
  showJoinError(message || "");
}

$("leave").addEventListener("click", () => leaveBoard());

// One transaction: the other members see every task turn done at once, or none of them.
$("mark-all-done").addEventListener("click", () => act(() => {
  room.transact(() => {
    for (const task of room.get(COLLECTION)) {
      if (!task.done) room.update(COLLECTION, task.id, { done: true });
    }
  });
}));

$("add-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("new-title");
  const title = input.value.trim();
  if (!title || !room) return;
  const tasks = room.get(COLLECTION);
  const last = tasks.length ? tasks[tasks.length - 1].sortOrder ?? null : null;
  if (act(() => room.create(COLLECTION, { title, done: false, sortOrder: Room.keyBetween(last, null) }))) {
    input.value = "";
  }
});

$("copy-link").addEventListener("click", async () => {
  const field = $("share-link");
  try {
    await navigator.clipboard.writeText(field.value);
    $("copy-link").textContent = "Copied";
  } catch {
    field.select();
    $("copy-link").textContent = "Press Ctrl+C";
  }
  setTimeout(() => { $("copy-link").textContent = "Copy"; }, 1500);
});

// ---------- the room's key: changing it here, taking a new one from another member ----------

/** The fingerprint and share link of the room's current key (both change with a rotation). */
function refreshKey() {
  if (!room) return;
  $("fingerprint").textContent = room.fingerprint();
  const link = room.shareLink(location.origin + location.pathname);
  $("share-link").value = link;
  // Joined through a link: the address bar keeps the working one (a reload joins with it).
  if (viaLink) {
    const hash = link.slice(link.indexOf("#"));
    const now = location.hash.length > 1 ? Room.parseShareLink(location.hash) : null;
    const next = Room.parseShareLink(hash);
    if (now && next && now.secret !== next.secret) {
      history.replaceState(null, "", location.pathname + location.search + hash);
      shared = next;
    }
  }
}

/** Password rooms change the password; link rooms get a fresh secret (a new share link). */
function labelKeyControls() {
  $("change-password").textContent = viaLink ? "New share link…" : "Change password…";
  $("rotate-title").textContent = viaLink ? "Replace the share link" : "Change the room password";
  $("rotate-hint").textContent = viaLink
    ? "Makes a new secret: the current link stops working, and everyone else is disconnected until they paste the new one (unless you hand it over below). Your board moves over as it is."
    : "Everyone else in the room is disconnected and has to enter the new password to go on syncing (unless you hand it over below). Your board moves over as it is.";
  $("rotate-fields").hidden = viaLink;
  $("rotate-submit").textContent = viaLink ? "Make a new link" : "Change password";
  $("rekey-title").textContent = viaLink ? "A member replaced the room's share link" : "A member changed the room password";
  $("rekey-hint").textContent = "Your tasks stay here, and your edits are kept. "
    + (viaLink ? "Paste the new share link to go on syncing." : "Enter the new password to go on syncing.");
  const input = $("rekey-password");
  input.type = viaLink ? "text" : "password";
  input.placeholder = viaLink ? "New share link" : "New room password";
  input.setAttribute("aria-label", input.placeholder);
}

/** A one-line message under a form; `bad` styles it as an error. Empty text hides it. */
function setLine(id, text, bad = false) {
  const el = $(id);
  el.textContent = text;
  el.hidden = !text;
  el.classList.toggle("bad", bad);
}

function closeKeyForms() {
  openRotateForm(false);
  $("rekey-form").hidden = true;
  $("change-password").hidden = false;
  setRekeyBusy(false);
}

function openRotateForm(open) {
  $("rotate-form").hidden = !open;
  $("change-password").setAttribute("aria-expanded", String(open));
  if (!open) return;
  $("rotate-password").value = "";
  $("rotate-confirm").value = "";
  $("rotate-handover").checked = false;
  setLine("rotate-status", "");
  (viaLink ? $("rotate-submit") : $("rotate-password")).focus();
}

function setRotating(busy) {
  rotating = busy;
  for (const id of ["rotate-password", "rotate-confirm", "rotate-handover", "rotate-submit", "rotate-cancel", "change-password"]) $(id).disabled = busy;
}

$("change-password").addEventListener("click", () => openRotateForm($("rotate-form").hidden));
$("rotate-cancel").addEventListener("click", () => openRotateForm(false));

$("rotate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!room || rotating) return;
  let key;
  if (viaLink) {
    key = { secret: Room.generateSecret() };
  } else {
    const password = $("rotate-password").value;
    if (!password) return setLine("rotate-status", "Enter the new password.", true);
    if (password !== $("rotate-confirm").value) return setLine("rotate-status", "The two passwords differ.", true);
    key = { password };
  }
  // Handed over, the members online go on under the new key without asking anyone; a
  // removal must not hand it over (the one removed may be online).
  const handOver = $("rotate-handover").checked;
  key.handOver = handOver;
  const r = room;
  setRotating(true);
  const doing = viaLink ? "Making a new link…" : "Changing password…";
  setLine("rotate-status", r.status.state === "live" ? doing : `${doing} (waits until the room is connected)`);
  try {
    await r.rotate(key);
    if (room !== r) return;
    openRotateForm(false);
    refreshKey();
    showNotice(handOver
      ? (viaLink
        ? "New share link made and handed to everyone online; anyone else needs the link below."
        : "Password changed and handed to everyone online; anyone else needs the new password.")
      : (viaLink
        ? "New share link made: the old one no longer works. Give the link below to everyone who should stay."
        : "Password changed. Everyone else must now use the new password."), { keep: true });
  } catch (err) {
    if (room !== r) return;
    setLine("rotate-status", `${(err && err.code) || "ERROR"}: ${(err && err.message) || String(err)}`, true);
  } finally {
    setRotating(false);
  }
});

function setRekeyBusy(busy) {
  rekeyBusy = busy;
  $("rekey-password").disabled = busy;
  $("rekey-submit").disabled = busy;
  if (!busy) setLine("rekey-status", "");
}

function showRekeyError(text) {
  setLine("rekey-error", text, true);
}

/** Status `rotated`: the board stays (local), and asks for the new password or link. */
function askForNewKey() {
  openRotateForm(false);
  $("change-password").hidden = true;
  $("rekey-form").hidden = false;
  $("rekey-password").value = "";
  setRekeyBusy(false);
  showRekeyError("");
}

/** Status `wrong-password` after a rekey: the form stays, with what went wrong. */
function newKeyRefused() {
  setRekeyBusy(false);
  showRekeyError(viaLink
    ? "That link's key doesn't match the room's new one. Ask for the current link."
    : "Wrong password: that is not the room's new password.");
  $("rekey-password").select();
}

$("rekey-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!room || rekeyBusy) return;
  const value = $("rekey-password").value;
  let key;
  if (viaLink) {
    const link = Room.parseShareLink(value.trim());
    if (!link) return showRekeyError("That is not a share link.");
    if (link.room.normalize("NFC") !== room.roomId) return showRekeyError(`That link is for another room (${link.room}).`);
    key = { secret: link.secret };
  } else {
    if (!value) return showRekeyError("Enter the new password.");
    key = { password: value };
  }
  const r = room;
  showRekeyError("");
  setRekeyBusy(true);
  setLine("rekey-status", viaLink ? "Checking the new link…" : "Checking the new password…");
  try {
    // Resolves once it is connecting again; `live` or `wrong-password` follows as a status.
    await r.rekey(key);
  } catch (err) {
    if (room !== r) return;
    setRekeyBusy(false);
    showRekeyError(`${(err && err.code) || "ERROR"}: ${(err && err.message) || String(err)}`);
  }
});

// ---------- status ----------

const STATUS_TEXT = {
  idle: "Starting…",
  connecting: "Connecting…",
  syncing: "Syncing…",
  pending: "Waiting to be let in…",
  live: "Live",
  offline: "Offline — edits are kept",
  forbidden: "Access refused",
  "wrong-password": "Wrong password",
  rotated: "Password changed by a member",
  closed: "Closed",
};
// A room joined through a share link has no password: its key is the link's secret.
const LINK_STATUS_TEXT = {
  "wrong-password": "Link no longer valid",
  rotated: "Share link replaced by a member",
};

function showStatus(s) {
  (window.statusLog ||= []).push(s.state === "reconnecting" ? `reconnecting(${s.inMs}ms,#${s.attempt})` : s.state);
  const pill = $("status");
  pill.dataset.state = s.state;
  // The count is only known while connected.
  $("presence").dataset.stale = String(s.state !== "live");
  $("presence-count").textContent = s.state === "live" && lastPresence !== null ? String(lastPresence) : "–";
  clearInterval(statusTimer);
  if (s.state === "reconnecting") {
    const at = Date.now() + s.inMs;
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      $("status-text").textContent = left > 0 ? `Reconnecting in ${left}s` : "Reconnecting…";
    };
    tick();
    statusTimer = setInterval(tick, 250);
  } else {
    $("status-text").textContent = (viaLink && LINK_STATUS_TEXT[s.state]) || STATUS_TEXT[s.state] || s.state;
  }
  if (s.state === "rotated") {
    rekeying = true;
    askForNewKey();
  } else if (s.state === "wrong-password" && rekeying) {
    newKeyRefused();
  } else if (s.state === "live") {
    refreshKey();
    if (rekeying) {
      rekeying = false;
      closeKeyForms();
      showNotice(viaLink ? "Back in sync with the new link." : "Back in sync with the new password.");
    }
  }
  if (s.state === "wrong-password" && !rekeying) {
    leaveBoard(shared
      ? "This share link's key doesn't match the room. Ask for a new link."
      : "Wrong password: this room exists with a different password.");
  } else if (s.state === "forbidden") {
    leaveBoard("The relay refused access to this room.");
  }
  showPending();
}

// ---------- refused changes ----------

let noticeTimer = null;
/** A line above the board, gone after 8 s (or, with `keep`, once dismissed). */
function showNotice(text, { keep = false } = {}) {
  $("notice-text").textContent = text;
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  if (!keep) noticeTimer = setTimeout(() => { $("notice").hidden = true; }, 8000);
}
$("notice-close").addEventListener("click", () => { $("notice").hidden = true; });

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

/** The relay refused changes already shown (they have been undone): say so in a line. */
function explainRejected(r) {
  const what = plural(r.ops.length, "change");
  switch (r.code) {
    case "READ_ONLY": return `You can view this room but not edit it: ${what} undone.`;
    case "TOO_LARGE": return `The relay refused ${what} as too large: undone.`;
    default: return `The relay refused ${what} (${r.code}): undone.`;
  }
}

/** Runs a change the user asked for; a refusal becomes a notice. Returns whether it ran. */
function act(change) {
  if (!room) return false;
  try {
    change();
    return true;
  } catch (err) {
    switch (err && err.code) {
      case "READ_ONLY": showNotice("You can view this room but not edit it."); break;
      case "BODY_TOO_LARGE": showNotice("That change is too large to send."); break;
      case "OUTBOX_FULL": showNotice("Too many changes are waiting to sync; reconnect first."); break;
      default: showNotice((err && err.message) || String(err));
    }
    return false;
  }
}

function showPending() {
  if (!room) return;
  const n = room.pendingChanges;
  $("pending").textContent = n ? `${n} change${n === 1 ? "" : "s"} waiting to sync` : "All changes synced";
  $("pending").dataset.count = String(n);
}

// ---------- rendering (keyed, keeps focus and the caret while typing) ----------

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  if (!room) return;
  const tasks = room.get(COLLECTION);
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  let cursor = list.firstElementChild;
  for (const task of tasks) {
    let li = existing.get(task.id);
    existing.delete(task.id);
    if (!li) li = makeItem(task.id);
    fillItem(li, task);
    if (li !== cursor) list.insertBefore(li, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const li of existing.values()) li.remove();
  $("empty").hidden = tasks.length > 0;
  $("mark-all-done").disabled = !tasks.some((t) => !t.done);
  showPending();
}

function fillItem(li, task) {
  const title = li.querySelector(".title");
  if (document.activeElement !== title && title.value !== (task.title ?? "")) title.value = task.title ?? "";
  li.querySelector(".done").checked = !!task.done;
  li.classList.toggle("is-done", !!task.done);
  const claimed = typeof task.claimedBy === "string" && task.claimedBy;
  const mine = claimed && task.claimedBy === me.id;
  const tag = li.querySelector(".claim-tag");
  tag.hidden = !claimed;
  tag.textContent = claimed ? (mine ? "You" : task.claimedByName || "Someone") : "";
  tag.classList.toggle("mine", !!mine);
  const btn = li.querySelector(".claim");
  btn.textContent = mine ? "Release" : claimed ? "Take over" : "Take it";
  li.dataset.sortOrder = task.sortOrder ?? "";
}

function makeItem(id) {
  const li = template.content.firstElementChild.cloneNode(true);
  li.dataset.id = id;
  li.dataset.testid = "task";
  const title = li.querySelector(".title");
  const commit = () => {
    const value = title.value.trim();
    const task = room && room.get(COLLECTION).find((t) => t.id === id);
    if (task && value && value !== task.title) act(() => room.update(COLLECTION, id, { title: value }));
  };
  title.addEventListener("change", commit);
  title.addEventListener("keydown", (e) => { if (e.key === "Enter") title.blur(); });
  li.querySelector(".done").addEventListener("change", (e) => {
    if (!act(() => room.update(COLLECTION, id, { done: e.target.checked }))) scheduleRender();
  });
  li.querySelector(".remove").addEventListener("click", () => act(() => room.delete(COLLECTION, id)));
  li.querySelector(".claim").addEventListener("click", () => act(() => {
    const task = room.get(COLLECTION).find((t) => t.id === id);
    if (task && task.claimedBy === me.id) room.claim(COLLECTION, id, null);
    else room.claim(COLLECTION, id, { claimedBy: me.id, claimedByName: me.name, claimedByAvatar: null });
  }));
  const handle = li.querySelector(".handle");
  handle.addEventListener("keydown", (e) => {
    if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      e.preventDefault();
      act(() => moveBy(id, e.key === "ArrowUp" ? -1 : 1));
      requestAnimationFrame(() => list.querySelector(`[data-id="${CSS.escape(id)}"] .handle`)?.focus());
    }
  });
  li.addEventListener("dragstart", (e) => {
    e.dataTransfer.setData("text/plain", id);
    e.dataTransfer.effectAllowed = "move";
    li.classList.add("dragging");
  });
  li.addEventListener("dragend", () => li.classList.remove("dragging"));
  return li;
}

// Drop target: the list decides whether the dragged task lands above or below the hovered one.
list.addEventListener("dragover", (e) => {
  e.preventDefault();
  const over = e.target.closest(".task");
  for (const li of list.children) li.classList.remove("drop-above", "drop-below");
  if (over && !over.classList.contains("dragging")) {
    const rect = over.getBoundingClientRect();
    over.classList.add(e.clientY < rect.top + rect.height / 2 ? "drop-above" : "drop-below");
  }
});
list.addEventListener("dragleave", (e) => {
  if (!list.contains(e.relatedTarget)) for (const li of list.children) li.classList.remove("drop-above", "drop-below");
});
list.addEventListener("drop", (e) => {
  e.preventDefault();
  const id = e.dataTransfer.getData("text/plain");
  const over = e.target.closest(".task");
  for (const li of list.children) li.classList.remove("drop-above", "drop-below");
  if (!id || !over || over.dataset.id === id) return;
  const rect = over.getBoundingClientRect();
  act(() => placeRelative(id, over.dataset.id, e.clientY < rect.top + rect.height / 2));
});

/** Moves `id` just above (or below) `targetId`, with a key between its new neighbours. */
function placeRelative(id, targetId, above) {
  const others = room.get(COLLECTION).filter((t) => t.id !== id);
  const at = others.findIndex((t) => t.id === targetId);
  if (at < 0) return;
  const index = above ? at : at + 1;
  setPosition(id, others, index);
}

function moveBy(id, delta) {
  const tasks = room.get(COLLECTION);
  const from = tasks.findIndex((t) => t.id === id);
  const to = from + delta;
  if (from < 0 || to < 0 || to >= tasks.length) return;
  const others = tasks.filter((t) => t.id !== id);
  setPosition(id, others, to);
}

function setPosition(id, others, index) {
  const before = index > 0 ? others[index - 1].sortOrder ?? null : null;
  const after = index < others.length ? others[index].sortOrder ?? null : null;
  try {
    room.reorder(COLLECTION, [{ id, sortOrder: Room.keyBetween(before, after) }]);
  } catch (err) {
    if (err && err.code !== "INVALID_OPERATION") throw err;
    // Neighbours without keys (or equal keys from another tool): give everyone fresh keys.
    const order = [...others.slice(0, index), { id }, ...others.slice(index)];
    let prev = null;
    const items = order.map((t) => ({ id: t.id, sortOrder: (prev = Room.keyBetween(prev, null)) }));
    room.reorder(COLLECTION, items);
  }
}

// ---------- start ----------

$("name").value = localStorage.getItem("sealsync-demo-name") || "";
const savedRelay = localStorage.getItem("sealsync-demo-relay");
if (savedRelay) $("relay").value = savedRelay;
readShareLink();
window.addEventListener("hashchange", readShareLink);
const params = new URLSearchParams(location.search);
if (params.get("relay")) $("relay").value = params.get("relay");
if (params.get("room")) $("room").value = params.get("room");
// With a share link and a remembered name, join at once.
if (shared && localStorage.getItem("sealsync-demo-name")) joinForm.requestSubmit();
