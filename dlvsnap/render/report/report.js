(function () {
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const E = D.ev, SPG = D.spg, G = D.groups.length;
const CH = "FEDorXYZU?";
const NAMES = ["full", "empty", "deleted", "emptyOne", "emptyRest", "evacuatedX",
  "evacuatedY", "evacuatedEmpty", "unlinked", "unknown"];
const COLORS = NAMES.map(n => getComputedStyle(document.documentElement)
  .getPropertyValue("--" + n).trim() || "#f0f");
const code = ch => { const i = CH.indexOf(ch); return i < 0 ? 9 : i; };
const $ = id => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};
const fmt = n => (typeof n === "number") ? n.toLocaleString("en-US") : String(n);

// One grid: the snapshot's states, replayed to the selected event.
const st = new Uint8Array(G * SPG);
for (let i = 0; i < st.length; i++) st[i] = code(D.init[i] || "?");
const added = new Set(D.added);
let cur = -1;                 // the last event applied (-1: before the first)
const touched = new Set();    // slots whose state changed since the grid was drawn
function apply(e, forward) {
  const c = e.c; if (!c) return;
  const s = forward ? e.a : e.b;
  for (let j = 0; j < s.length; j++) {
    const k = c[2 * j] * SPG + c[2 * j + 1];
    st[k] = code(s[j]); touched.add(k);
  }
}
function goTo(i) {
  while (cur < i) apply(E[++cur], true);
  while (cur > i) apply(E[cur--], false);
}
const slotLabel = k => D.groups[Math.floor(k / SPG)] + "/s" + (k % SPG);

// Header.
const S = D.start || {};
$("run").textContent = [
  S.map ? "map " + S.map : null, S.go_version, S.goarch,
  D.impl ? D.impl + " map" : null, S.delve ? "Delve " + S.delve : null,
  E.length + " events", D.source || null].filter(Boolean).join(" · ");
const Y = D.summary;
if (Y && Y.memory) {
  $("summary").textContent = "after the last event: " + fmt(Y.count) + " live entries, " +
    fmt(Y.tombstones) + " tombstones; the map holds " + fmt(Y.memory.held_bytes) +
    " B for " + fmt(Y.memory.needed_bytes) + " B of live entries" +
    (Y.memory_before_first ? " (held " + fmt(Y.memory_before_first.held_bytes) +
      " B before the first delete)" : "");
  if (Y.advice) $("advice").textContent = Y.advice;
} else if (!Y) {
  $("summary").textContent = "no summary record: the run stopped early or with an error";
}
// The legend names the states of this map's implementation, and any other state that
// appears in this run (unlinked, unknown).
const OWN = {
  swiss: ["full", "empty", "deleted"],
  classic: ["full", "emptyOne", "emptyRest", "evacuatedX", "evacuatedY", "evacuatedEmpty"],
}[D.impl] || NAMES.slice(0, 9);
const seen = new Set(D.init);
E.forEach(e => { for (const s of [e.a, e.b]) if (s) for (const ch of s) seen.add(ch); });
const leg = $("legend");
NAMES.forEach((n, i) => {
  if (OWN.indexOf(n) < 0 && !seen.has(CH[i])) return;
  const sw = el("span", "sw"); sw.dataset.state = n; leg.append(sw, n + " ");
});
const hl = el("span", "sw"); hl.style.outline = "3px solid var(--hl)";
leg.append(hl, "changed by the selected event");
const notes = [];
if (!D.snapshot) notes.push("This file has no snapshot record (written by an older dlvsnap):" +
  " only the groups seen in changes are shown, each slot in its first known state.");
if (D.added.length && D.snapshot) notes.push(D.added.length +
  " group(s) not in the first snapshot were added from the changes (labels in purple).");
notes.push("Slots keep their last state seen around a delete: inserts between deletes are" +
  " not recorded.");
$("grid-note").textContent = notes.join(" ");

// Grid: every group as elements, or a canvas overview plus the groups near the changes.
const grid = $("grid"), cells = new Array(G * SPG);
function groupEl(g) {
  const d = el("div", "grp" + (added.has(g) ? " added" : ""));
  d.dataset.group = D.groups[g];
  d.append(el("span", "gl", D.groups[g]));
  const row = el("span", "cells");
  for (let s = 0; s < SPG; s++) {
    const k = g * SPG + s, c = el("i", "slot");
    c.dataset.slot = D.groups[g] + "/s" + s; c.dataset.state = NAMES[st[k]];
    c.title = c.dataset.slot + ": " + NAMES[st[k]];
    cells[k] = c; row.append(c);
  }
  d.append(row);
  return d;
}
const cv = $("overview");
let cell = 1, perRow = 1, gw = 9;
if (D.full_grid) {
  const frag = document.createDocumentFragment();
  for (let g = 0; g < G; g++) frag.append(groupEl(g));
  grid.append(frag);
} else {
  const W = 1200, maxPx = 1200 * 700;
  cell = Math.max(1, Math.min(6, Math.floor(Math.sqrt(maxPx / (G * SPG * 1.15)))));
  gw = SPG * cell + Math.max(1, cell);
  perRow = Math.max(1, Math.floor(W / gw));
  cv.width = perRow * gw; cv.height = Math.ceil(G / perRow) * (cell + Math.max(1, cell >> 1));
  cv.hidden = false;
  cv.title = "every slot of the map; click a group to show it below";
}
const pinned = new Set();
const rgb = COLORS.map(c => {
  const x = document.createElement("canvas").getContext("2d");
  x.fillStyle = c; x.fillRect(0, 0, 1, 1); return x.getImageData(0, 0, 1, 1).data;
});
function drawOverview(e) {
  const ctx = cv.getContext("2d"), img = ctx.createImageData(cv.width, cv.height), p = img.data;
  const rh = cell + Math.max(1, cell >> 1);
  for (let g = 0; g < G; g++) {
    const gx = (g % perRow) * gw, gy = Math.floor(g / perRow) * rh;
    for (let s = 0; s < SPG; s++) {
      const c = rgb[st[g * SPG + s]];
      for (let dy = 0; dy < cell; dy++) {
        let o = ((gy + dy) * cv.width + gx + s * cell) * 4;
        for (let dx = 0; dx < cell; dx++, o += 4) {
          p[o] = c[0]; p[o + 1] = c[1]; p[o + 2] = c[2]; p[o + 3] = 255;
        }
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  if (!e.c) return;
  const r = Math.max(6, 2 * cell);
  for (const [color, width] of [["#000", 4], ["#ffca28", 2]]) {
    ctx.strokeStyle = color; ctx.lineWidth = width;
    for (let j = 0; j < e.c.length && j < 10000; j += 2) {
      const g = e.c[j], s = e.c[j + 1];
      const x = (g % perRow) * gw + s * cell + cell / 2;
      const y = Math.floor(g / perRow) * rh + cell / 2;
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
    }
  }
}
cv.addEventListener("click", ev => {
  const r = cv.getBoundingClientRect(), sx = cv.width / r.width;
  const x = (ev.clientX - r.left) * sx, y = (ev.clientY - r.top) * sx;
  const g = Math.floor(y / (cell + Math.max(1, cell >> 1))) * perRow + Math.floor(x / gw);
  if (g >= 0 && g < G) { pinned.add(g); show(sel, false); }
});
const MAX_DETAIL = 128;
function drawDetail(e) {
  grid.textContent = "";
  const want = new Set();
  const c = e.c || [];
  for (let j = 0; j < c.length && want.size < MAX_DETAIL; j += 2) {
    for (let g = c[j] - 1; g <= c[j] + 1; g++) if (g >= 0 && g < G) want.add(g);
  }
  pinned.forEach(g => want.add(g));
  const list = [...want].sort((a, b) => a - b);
  let last = -1;
  for (const g of list) {
    if (last >= 0 && g > last + 1) grid.append(el("span", "grp skip", "…"));
    grid.append(groupEl(g)); last = g;
  }
  const groupsChanged = new Set(); for (let j = 0; j < c.length; j += 2) groupsChanged.add(c[j]);
  grid.prepend(el("p", "note", G.toLocaleString("en-US") + " groups (" +
    (G * SPG).toLocaleString("en-US") + " slots) in the overview below (changed slots" +
    " circled); here: the " +
    groupsChanged.size + " group(s) this event changed and their neighbours" +
    (pinned.size ? ", and the groups you clicked" : "") +
    (groupsChanged.size * 3 > MAX_DETAIL ? " (first " + MAX_DETAIL + " only)" : "") + "."));
}
let marked = [];
function drawGrid(e, i) {
  if (D.full_grid) {
    touched.forEach(k => {
      const c = cells[k]; c.dataset.state = NAMES[st[k]];
      c.title = c.dataset.slot + ": " + NAMES[st[k]];
    });
    marked.forEach(c => c.classList.remove("changed"));
    marked = [];
  } else {
    drawOverview(e); drawDetail(e);
  }
  touched.clear();
  const c = e.c || [];
  for (let j = 0; j < c.length; j += 2) {
    const k = c[j] * SPG + c[j + 1], x = cells[k];
    if (!x || !x.isConnected) continue;
    x.classList.add("changed"); marked.push(x);
    x.title = x.dataset.slot + ": " + NAMES[code(e.b[j / 2])] + " → " + NAMES[code(e.a[j / 2])] +
      (e.kk && e.kk[j / 2] ? ", key " + e.kk[j / 2] : "");
  }
}

// Timeline.
const list = $("events"), slider = $("slider");
slider.max = String(E.length - 1);
const evText = e => "#" + e.s + " " + e.o + (e.k !== null && e.k !== undefined ?
  " key=" + e.k : "") + (e.o === "delete" && !e.p ? " (absent)" : "") + "  " + D.locs[e.w];
function drawList(i) {
  list.textContent = "";
  const a = Math.max(0, i - 60), b = Math.min(E.length, i + 61);
  if (a > 0) list.append(el("li", "gap", "… " + a + " earlier events"));
  for (let j = a; j < b; j++) {
    const li = el("li", j === i ? "sel" : "", evText(E[j]));
    li.dataset.i = String(j); li.dataset.seq = String(E[j].s);
    li.addEventListener("click", () => show(j, true));
    list.append(li);
  }
  if (b < E.length) list.append(el("li", "gap", "… " + (E.length - b) + " later events"));
  const s = list.querySelector(".sel");
  if (s) list.scrollTop = s.offsetTop - list.clientHeight / 2;
}
function rows(id, data) {
  const tb = $(id).tBodies[0]; tb.textContent = "";
  if (!data.length) {
    const tr = el("tr"), td = el("td", "", "none"); td.colSpan = 4; tr.append(td); tb.append(tr);
  }
  for (const r of data) {
    const tr = el("tr"); r.forEach(v => tr.append(el("td", "", v))); tb.append(tr);
  }
}
const MAX_ROWS = 64;
function drawDetails(e) {
  $("ev-title").textContent = evText(e).split("  ")[0];
  $("ev-where").textContent = D.locs[e.w];
  const f = $("ev-facts"); f.textContent = "";
  const fact = (t, cls) => f.append(el("li", cls || "", t));
  fact("count " + fmt(e.cb) + " → " + fmt(e.ca) +
    (e.o === "delete" ? (e.p ? " (the key was present)" : " (the key was absent)") : ""));
  fact("the map holds " + fmt(e.h) + " B for " + fmt(e.n) + " B of live entries" +
    (e.le !== undefined && e.le !== null ? " (" + fmt(e.le) + " entries)" : "") +
    (e.t !== undefined && e.t !== null ? "; " + fmt(e.t) + " tombstones" : ""));
  if (e.r) fact("the hash seed was re-randomised");
  if (e.m) fact("the header moved during the call: " + e.m[0] + " → " + e.m[1]);
  (e.wn || []).forEach(w => fact("warning: " + w, "warn"));
  const nt = $("ev-notes"); nt.textContent = "";
  (e.nt || []).forEach(n => nt.append(el("p", "note", "before this event: " + n)));
  const ch = [], c = e.c || [];
  for (let j = 0; j < c.length && j < 2 * MAX_ROWS; j += 2) {
    ch.push([D.groups[c[j]] + "/s" + c[j + 1], NAMES[code(e.b[j / 2])],
      NAMES[code(e.a[j / 2])], e.kk ? e.kk[j / 2] : ""]);
  }
  if (c.length > 2 * MAX_ROWS) ch.push(["… " + (c.length / 2 - MAX_ROWS) + " more", "", "", ""]);
  rows("changes", ch);
  rows("header-deltas", e.hc || []);
  rows("table-deltas", e.tc || []);
}
const G0 = D.chart, cursor = $("cursor");
function drawCursor(i) {
  const p = i + G0.offset, x = G0.x0 + (G0.x1 - G0.x0) *
    (Math.floor(p * G0.cols / Math.max(1, G0.n)) / Math.max(1, G0.cols - 1));
  cursor.setAttribute("x1", x.toFixed(1)); cursor.setAttribute("x2", x.toFixed(1));
}
$("chart").addEventListener("click", ev => {
  const svg = $("chart"), r = svg.getBoundingClientRect();
  const x = (ev.clientX - r.left) * (svg.viewBox.baseVal.width / r.width);
  const col = Math.round((x - G0.x0) / (G0.x1 - G0.x0) * Math.max(1, G0.cols - 1));
  const p = Math.floor(col * G0.n / Math.max(1, G0.cols)) - G0.offset;
  show(Math.max(0, Math.min(E.length - 1, p)), true);
});
let sel = 0;
function show(i, setHash) {
  sel = i;
  const e = E[i];
  goTo(i);
  slider.value = String(i);
  $("position").textContent = "event " + (i + 1) + " of " + E.length + " (#" + e.s + ")";
  $("prev").disabled = i === 0; $("next").disabled = i === E.length - 1;
  drawList(i); drawDetails(e); drawGrid(e, i); drawCursor(i);
  if (setHash) { try { history.replaceState(null, "", "#seq=" + e.s); } catch (x) { /* file: */ } }
}
function fromHash() {
  const m = /seq=(\d+)/.exec(location.hash);
  if (!m) return 0;
  const i = E.findIndex(e => String(e.s) === m[1]);
  return i < 0 ? 0 : i;
}
slider.addEventListener("input", () => show(Number(slider.value), true));
$("prev").addEventListener("click", () => show(Math.max(0, sel - 1), true));
$("next").addEventListener("click", () => show(Math.min(E.length - 1, sel + 1), true));
document.addEventListener("keydown", ev => {
  if (ev.target && ev.target.tagName === "INPUT") return;
  if (ev.key === "ArrowLeft") show(Math.max(0, sel - 1), true);
  if (ev.key === "ArrowRight") show(Math.min(E.length - 1, sel + 1), true);
});
// a jump to a section (#grid-section) keeps the selected event
window.addEventListener("hashchange", () => {
  if (/seq=/.test(location.hash)) show(fromHash(), false);
});
show(fromHash(), false);
document.body.dataset.ready = "1";
})();
