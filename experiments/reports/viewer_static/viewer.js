// TextGym episode viewer: plain JS, no network. Data sits in <script type="application/json"> chunks:
// "tg-meta" (the episode table), "tg-texts" (each prompt text once: a string, or a long text as the indices
// of its lines) and one "tg-ep-<id>" per
// episode (steps, calls, frames), parsed only when that episode is opened. Every model or env text is
// put in the page with textContent, never as HTML.
"use strict";
(function () {
  const meta = JSON.parse(document.getElementById("tg-meta").textContent);
  const PAGE_STEPS = meta.page_steps;
  const PAGE_ROWS = 100;
  let texts = null; // parsed on first use
  const episodeCache = new Map();

  const COLUMNS = [
    ["env", "env"], ["level", "level"], ["agent", "agent"], ["model", "model"], ["seed", "seed", true],
    ["episode", "episode", true], ["return", "return", true], ["steps", "steps", true],
    ["invalid_actions", "invalid actions", true], ["tokens", "tokens", true], ["cost_usd", "$", true],
    ["status", "status"],
  ];
  const FILTERS = ["env", "level", "agent", "model", "status"];
  const state = { sort: null, desc: false, filters: {}, search: "", tablePage: 0, open: null, stepPage: 0 };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }
  const fmt = (value, digits) => value == null ? "–" : (typeof value === "number" && digits != null
    ? value.toFixed(digits) : String(value));
  const num = (value) => value == null ? "–" : (Number.isInteger(value) ? String(value) : value.toFixed(3));
  function textOf(index) {
    if (texts === null) texts = JSON.parse(document.getElementById("tg-texts").textContent);
    const item = texts[index];
    return typeof item === "string" ? item : item.map(textOf).join("\n");
  }
  function episodeData(id) {
    if (!episodeCache.has(id)) {
      const node = document.getElementById("tg-ep-" + id);
      episodeCache.set(id, node ? JSON.parse(node.textContent) : { steps: [], calls: [], frames: [] });
    }
    return episodeCache.get(id);
  }

  // ---- episode table -----------------------------------------------------------------------------------
  function buildFilters() {
    const box = document.getElementById("filters");
    for (const name of FILTERS) {
      const values = [...new Set(meta.episodes.map((row) => fmt(row[name])))].sort();
      const select = el("select", { "data-filter": name, onchange: (event) => {
        state.filters[name] = event.target.value; state.tablePage = 0; renderTable(); } },
        el("option", { value: "", text: "all" }), ...values.map((v) => el("option", { value: v, text: v })));
      box.append(el("label", { text: name + " " }, select));
    }
    box.append(el("label", { text: "search " }, el("input", { type: "search", id: "search", placeholder: "any text",
      oninput: (event) => { state.search = event.target.value.toLowerCase(); state.tablePage = 0; renderTable(); } })));
    box.append(el("span", { id: "row-count", class: "muted" }));
  }

  function visibleRows() {
    let rows = meta.episodes.filter((row) => FILTERS.every((name) => !state.filters[name]
      || fmt(row[name]) === state.filters[name]));
    if (state.search) {
      rows = rows.filter((row) => COLUMNS.some(([key]) => fmt(row[key]).toLowerCase().includes(state.search)));
    }
    if (state.sort) {
      const key = state.sort, sign = state.desc ? -1 : 1;
      rows = rows.slice().sort((a, b) => {
        const x = a[key], y = b[key];
        if (x == null || y == null) return (x == null) - (y == null);
        return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
      });
    }
    return rows;
  }

  function renderTable() {
    const table = document.getElementById("episodes");
    const head = table.tHead.rows[0];
    head.replaceChildren(...COLUMNS.map(([key, label]) => el("th", {
      text: label, "data-key": key,
      class: state.sort === key ? (state.desc ? "sorted-desc" : "sorted-asc") : "",
      onclick: () => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; renderTable(); },
    })));
    const rows = visibleRows();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    state.tablePage = Math.min(state.tablePage, pages - 1);
    const shown = rows.slice(state.tablePage * PAGE_ROWS, (state.tablePage + 1) * PAGE_ROWS);
    table.tBodies[0].replaceChildren(...shown.map((row) => el("tr", {
      "data-episode": row.id, class: state.open === row.id ? "selected" : "", onclick: () => openEpisode(row.id),
    }, ...COLUMNS.map(([key, , numeric]) => el("td", {
      class: (numeric ? "num" : "") + (key === "status" && row.status !== "done" ? " status-failed" : ""),
      text: key === "cost_usd" ? fmt(row[key], 4) : (numeric ? num(row[key]) : fmt(row[key])),
      title: key === "tokens" && row.cached_prompt_tokens ? row.cached_prompt_tokens + " prompt tokens cached" : "",
    })))));
    document.getElementById("row-count").textContent = rows.length + " of " + meta.episodes.length + " episodes";
    pager(document.getElementById("table-pager"), state.tablePage, pages, (page) => {
      state.tablePage = page; renderTable(); });
  }

  function pager(box, page, pages, go) {
    box.replaceChildren();
    if (pages <= 1) return;
    const input = el("input", { type: "number", min: 1, max: pages, value: page + 1 });
    box.append(
      el("button", { text: "« first", onclick: () => go(0) }),
      el("button", { text: "‹ prev", onclick: () => go(Math.max(0, page - 1)) }),
      el("span", { text: "page " + (page + 1) + " of " + pages }),
      el("button", { text: "next ›", class: "next", onclick: () => go(Math.min(pages - 1, page + 1)) }),
      el("button", { text: "last »", onclick: () => go(pages - 1) }),
      el("label", { text: "go to " }, input),
      el("button", { text: "go", onclick: () => go(Math.min(pages - 1, Math.max(0, Number(input.value) - 1))) }));
  }

  // ---- one episode -------------------------------------------------------------------------------------
  function openEpisode(id, stepPage) {
    state.open = id;
    state.stepPage = stepPage || 0;
    history.replaceState(null, "", "#episode=" + id + (state.stepPage ? "&page=" + (state.stepPage + 1) : ""));
    renderTable();
    renderEpisode();
    document.getElementById("episode").scrollIntoView({ block: "start" });
  }

  function callView(call) {
    const request = call.request || {};
    const usage = call.usage || {};
    const head = el("div", { class: "head" },
      el("b", { text: call.purpose || "call" }), " · " + fmt(request.model) + " · temperature " + fmt(request.temperature)
      + " · n " + fmt(request.n) + " · max_tokens " + fmt(request.max_tokens) + " · tokens " + fmt(usage.prompt_tokens)
      + " prompt" + (usage.cached_prompt_tokens != null ? " (" + usage.cached_prompt_tokens + " cached)" : "")
      + " + " + fmt(usage.completion_tokens) + " completion · " + (call.latency_s != null
        ? call.latency_s.toFixed(3) + " s" : "–"),
      call.from_cache ? el("span", { class: "badge cache", text: "from response cache" }) : null);
    const body = el("div", { class: "call", "data-call": call.call }, head);
    const messages = request.messages || [];
    messages.forEach((message, index) => {
      const text = textOf(message.text);
      const details = el("details", { class: "msg" },
        el("summary", {}, el("span", { class: "role", text: message.role }), " · " + text.length + " chars"),
        el("pre", { class: "prompt", text: text }));
      // Only the newest turn starts open: the system prompt and the episode's earlier turns repeat what
      // earlier calls already showed.
      details.open = index === messages.length - 1 && message.role !== "system";
      body.append(details);
    });
    if (request.response_format != null) {
      body.append(el("details", { class: "msg" }, el("summary", { text: "response format" }),
        el("pre", { text: JSON.stringify(JSON.parse(textOf(request.response_format)), null, 1) })));
    }
    (call.texts || []).forEach((reply, index) => body.append(el("div", { class: "reply" },
      el("div", { class: "role", text: "reply" + ((call.texts.length > 1) ? " " + (index + 1) : "") }),
      el("pre", { class: "reply-text", text: reply }))));
    return body;
  }

  function callsBox(calls, label, open) {
    const details = el("details", { class: "calls" }, el("summary", { text: label }));
    let built = false;
    const build = () => { if (!built) { built = true; details.append(...calls.map(callView)); } };
    details.addEventListener("toggle", build);
    if (open) { details.open = true; build(); }
    return details;
  }

  function boundary(kind, calls) {
    if (!calls.length) return null;
    const box = el("div", { class: "boundary " + kind },
      el("h3", { text: kind === "reset" ? "Before the episode" : "After the episode" }));
    for (const call of calls) {
      box.append(el("div", {}, el("b", { text: call.purpose + ": " }),
        el("pre", { class: "boundary-text", text: (call.texts || []).join("\n---\n") })));
    }
    box.append(callsBox(calls, "prompts and replies (" + calls.length + " calls)", false));
    return box;
  }

  function frameView(uri, label) {
    if (!uri) return el("div", { class: "noframe", text: label });
    return el("img", { class: "frame", src: uri, alt: label, onclick: (event) => event.target.classList.toggle("big") });
  }

  function baseAction(action) {
    // The text numbers actions from 1 ("4: move up"); the base env indexes them from 0. Say which is which.
    return Number.isInteger(action) ? "action " + (action + 1) + " as the text numbers it; the base env's index "
      + action : "the base env's action: " + JSON.stringify(action);
  }

  function stepView(step, frame, calls, noFrame) {
    // noFrame === null: the episode has no frames at all, so no column is kept for them.
    const badges = el("div", {},
      el("span", { class: "badge " + (step.reward > 0 ? "good" : (step.reward < 0 ? "bad" : "")),
        text: "reward " + num(step.reward) }),
      step.invalid_action ? el("span", { class: "badge bad", text: "invalid action" }) : null,
      step.terminated ? el("span", { class: "badge", text: "terminated" }) : null,
      step.truncated ? el("span", { class: "badge", text: "truncated" }) : null,
      step.prompt_tokens || step.completion_tokens ? el("span", { class: "badge",
        text: (step.prompt_tokens || 0) + "+" + (step.completion_tokens || 0) + " tokens" }) : null);
    const row = el("div", { class: "step" + (noFrame === null ? " no-frames" : ""), "data-step": step.step },
      el("div", { class: "index", text: "#" + step.step }),
      noFrame === null ? null : frameView(frame, noFrame),
      el("div", { class: "obs" }, el("pre", { class: "observation", text: step.observation })),
      el("div", {}, el("div", { class: "action", text: "→ " + step.action_text }),
        el("div", { class: "muted base-action", text: baseAction(step.action) }), badges));
    if (calls.length) row.append(callsBox(calls, calls.length === 1 ? "prompt and reply"
      : "prompts and replies (" + calls.length + " calls)", false));
    else if ((step.replies || []).length) {
      row.append(el("details", { class: "calls" }, el("summary", { text: "raw replies (no transcript)" }),
        ...step.replies.map((reply) => el("pre", { class: "reply-text", text: reply }))));
    }
    return row;
  }

  function renderEpisode() {
    const box = document.getElementById("episode");
    const row = meta.episodes.find((r) => r.id === state.open);
    if (!row) { box.hidden = true; return; }
    box.hidden = false;
    const data = episodeData(row.id);
    const stepCalls = new Map();
    for (const call of data.calls) {
      if (call.phase === "step") {
        if (!stepCalls.has(call.step)) stepCalls.set(call.step, []);
        stepCalls.get(call.step).push(call);
      }
    }
    const title = [row.env, row.level != null ? "L" + row.level : null, row.agent, row.model,
      "seed " + row.seed, "episode " + row.episode].filter((x) => x != null).join(" · ");
    const parts = [el("h2", { text: title }), el("div", { class: "stats" },
      ...[["return", num(row.return)], ["steps", row.steps], ["invalid actions", row.invalid_actions],
        ["LLM calls", row.llm_calls], ["tokens", row.tokens], ["$", fmt(row.cost_usd, 4)], ["status", row.status]]
        .map(([label, value]) => el("span", {}, label + " ", el("b", { text: fmt(value) }))))];
    if (row.error) parts.push(el("div", { class: "warn", text: "error: " + row.error }));
    // A note that an around-the-episode call's reply states word for word (EXE's suggestion) is shown once, with
    // its call, under "Before the episode" / "After the episode".
    const shownWithCalls = new Set(data.calls.filter((c) => c.phase !== "step").flatMap((c) => c.texts || [])
      .map((t) => t.trim()));
    const notes = Object.entries(row.notes || {}).filter(([, v]) => v != null && v !== ""
      && !(typeof v === "string" && shownWithCalls.has(v.trim())));
    if (notes.length) {
      parts.push(el("h3", { text: "What the agent noted around this episode" }));
      parts.push(el("dl", { class: "notes" }, ...notes.flatMap(([key, value]) => [el("dt", { text: key }),
        el("dd", { text: typeof value === "string" ? value : JSON.stringify(value, null, 1) })])));
    }
    if (row.frame_note) parts.push(el("div", { class: "warn", text: row.frame_note }));
    if (!data.steps.length) {
      parts.push(el("p", { class: "muted", text: row.no_steps || "no steps recorded for this episode" }));
    }
    const pages = Math.max(1, Math.ceil(data.steps.length / PAGE_STEPS));
    state.stepPage = Math.min(state.stepPage, pages - 1);
    const first = state.stepPage * PAGE_STEPS;
    const noFrame = !data.frames.some((f) => f) ? null : (row.frame_note ? "no frame (see note above)" : "no frame");
    if (state.stepPage === 0) parts.push(boundary("reset", data.calls.filter((c) => c.phase === "reset")));
    const timeline = el("div", { id: "timeline" }, ...data.steps.slice(first, first + PAGE_STEPS).map((step, i) =>
      stepView(step, data.frames[first + i], stepCalls.get(step.step) || [], noFrame)));
    const stepPager = el("div", { class: "pager", id: "step-pager" });
    parts.push(stepPager, timeline);
    const last = data.steps.length;
    if (state.stepPage === pages - 1 && (data.final_observation != null || data.frames[last])) {
      parts.push(el("div", { class: "step final" + (noFrame === null ? " no-frames" : ""), "data-step": "end" },
        el("div", { class: "index", text: "end" }), noFrame === null ? null : frameView(data.frames[last], noFrame),
        el("div", { class: "obs" }, el("pre", { class: "observation", text: data.final_observation || "" })),
        el("div", { class: "muted", text: "final state" })));
    }
    if (state.stepPage === pages - 1) parts.push(boundary("end", data.calls.filter((c) => c.phase === "end")));
    box.replaceChildren(...parts.filter((p) => p != null));
    pager(stepPager, state.stepPage, pages, (page) => openEpisode(row.id, page));
  }

  // ---- start -------------------------------------------------------------------------------------------
  buildFilters();
  renderTable();
  const match = /episode=(\d+)(?:&page=(\d+))?/.exec(location.hash);
  if (match && meta.episodes.some((r) => r.id === Number(match[1]))) {
    openEpisode(Number(match[1]), match[2] ? Number(match[2]) - 1 : 0);
  }
  document.body.setAttribute("data-ready", "1");
})();
