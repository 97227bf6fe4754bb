// Handoff console: a view over the Slack and Teams emulators, and a panel over Azure DevOps and Azure ML.
// Vanilla JS, no build step. Everything shown is built with DOM nodes and textContent: no HTML from data.
"use strict";

(() => {
  // ---------------------------------------------------------------------------------------------- utilities

  const $ = (selector) => document.querySelector(selector);

  /** An element: el("div", {class: "x", onclick: fn}, child, "text", ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SAFE_URL = /^(https?:|mailto:)/i;

  /** A link that opens in a new tab, or plain text when the URL is not http(s)/mailto. */
  function link(url, label) {
    const text = label || url;
    if (typeof url !== "string" || !SAFE_URL.test(url.trim())) return el("span", { class: "link-text" }, text);
    return el("a", { href: url.trim(), target: "_blank", rel: "noopener noreferrer" }, text);
  }

  function openUrl(url) {
    if (typeof url === "string" && SAFE_URL.test(url.trim())) window.open(url.trim(), "_blank", "noopener,noreferrer");
  }

  function initials(name) {
    const parts = String(name || "?").replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/);
    return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
  }

  const AVATAR_COLORS = ["#e8912d", "#2bac76", "#1d9bd1", "#e01e5a", "#9b59b6", "#4a8b99", "#c0790b", "#5b6abf"];

  function avatar(id, name, bot, shape) {
    let hash = 0;
    for (const ch of String(id || name)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    const node = el("div", { class: `avatar ${shape} ${bot ? "bot" : ""}`, "aria-hidden": "true" }, bot ? "H" : initials(name));
    if (!bot) node.style.background = AVATAR_COLORS[hash % AVATAR_COLORS.length];
    return node;
  }

  function clock(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function toast(text, kind) {
    const node = el("div", { class: `toast ${kind || "info"}`, role: kind === "error" ? "alert" : "status" }, text);
    $("#toasts").append(node);
    setTimeout(() => node.classList.add("leaving"), kind === "error" ? 7000 : 4000);
    setTimeout(() => node.remove(), kind === "error" ? 7600 : 4600);
  }

  class ApiError extends Error {}

  /** JSON from the console's API (paths are relative to the page's <base>). */
  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: S.user, ...body }),
    };
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new ApiError("The console server cannot be reached.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) throw new ApiError((data && data.error) || `The console answered ${response.status}.`);
    return data;
  }

  /** Run fn at most once at a time; calls made meanwhile cause one more run afterwards. */
  function singleFlight(fn) {
    let running = null;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          try {
            await fn();
          } catch (error) {
            console.warn(error);
          }
        } while (again);
      })();
      try {
        await running;
      } finally {
        running = null;
      }
    };
    return run;
  }

  // ---------------------------------------------------------------------------------------------- state

  const S = {
    user: null,
    people: [],
    channels: { slack: [], teams: [] },
    workspaces: {},
    actions: [],
    current: null, // {platform, id}
    snapshot: null,
    snapshotKey: "",
    world: null,
    worldKey: "",
    seen: {}, // "platform:id" -> message count when last shown
    inputs: {}, // "message/input" -> typed value (kept across re-renders)
    showCards: {}, // message id -> key of the open Action.ShowCard
    cardNotes: {}, // message id -> {kind, text} the bot answered a click with
    thread: null, // {id, label}: the thread the composer replies in
    modalKey: "",
  };

  const channelKey = (c) => `${c.platform}:${c.id}`;

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const where = params.get("c");
    const user = params.get("user");
    let current = null;
    if (where && where.includes(":")) {
      const index = where.indexOf(":");
      current = { platform: where.slice(0, index), id: where.slice(index + 1) };
    }
    return { user, current };
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (S.user) params.set("user", S.user);
    if (S.current) params.set("c", channelKey(S.current));
    history.replaceState(null, "", `#${params.toString()}`);
  }

  // ---------------------------------------------------------------------------------------------- loading

  const loadState = singleFlight(async () => {
    const asked = S.user || "";
    const data = await api(`api/state?user=${encodeURIComponent(asked)}`);
    // someone else was chosen while this was on its way: its answer must not choose the old one again (the
    // change asked for another load, which answers for the new one)
    if ((S.user || "") !== asked) return;
    S.people = data.people;
    S.user = data.user;
    S.channels = data.channels;
    S.workspaces = data.workspaces;
    S.actions = data.actions;
    const all = [...S.channels.slack, ...S.channels.teams];
    if (!S.current || !all.some((c) => channelKey(c) === channelKey(S.current))) {
      const first = S.channels.slack.find((c) => c.kind === "channel") || all[0];
      S.current = first ? { platform: first.platform, id: first.id } : null;
    }
    renderUsers();
    renderSidebar();
    writeHash();
  });

  const loadChannel = singleFlight(async () => {
    if (!S.current) return;
    const { platform, id } = S.current;
    const asked = S.user;
    const data = await api(`api/channels/${platform}/${encodeURIComponent(id)}?user=${encodeURIComponent(asked)}`);
    if (!S.current || S.current.platform !== platform || S.current.id !== id) return; // switched meanwhile
    if (S.user !== asked) return; // shown to someone else meanwhile: their load follows
    const key = JSON.stringify(data);
    if (key === S.snapshotKey) return;
    S.snapshot = data;
    S.snapshotKey = key;
    renderChannel();
    renderModal();
  });

  const loadWorld = singleFlight(async () => {
    const data = await api("api/world");
    const key = JSON.stringify(data);
    if (key === S.worldKey) return;
    S.world = data;
    S.worldKey = key;
    renderWorld();
  });

  function select(channel) {
    S.current = { platform: channel.platform, id: channel.id };
    S.snapshot = null;
    S.snapshotKey = "";
    S.thread = null;
    writeHash();
    renderSidebar();
    $("#channel").replaceChildren(el("div", { class: "empty" }, "Loading…"));
    loadChannel();
  }

  // ---------------------------------------------------------------------------------------------- top bar and sidebar

  function renderUsers() {
    const selectNode = $("#user");
    const options = S.people.map((p) =>
      el("option", { value: p.key, selected: p.key === S.user }, `${p.name}${p.role ? ` — ${p.role}` : ""}`),
    );
    selectNode.replaceChildren(...options);
    selectNode.value = S.user;
  }

  function renderSidebar() {
    const sections = [];
    const slack = S.channels.slack || [];
    const teams = S.channels.teams || [];
    if (slack.length) {
      sections.push(
        el("div", { class: "side-section slack" },
          el("div", { class: "side-platform" }, el("span", { class: "platform-dot slack" }), "Slack",
            el("span", { class: "side-workspace" }, S.workspaces.slack || "")),
          slack.map((c) => sideItem(c, c.kind === "im" ? "◆" : "#", c.kind === "im" ? c.title : c.name)),
        ),
      );
    }
    if (teams.length) {
      const byTeam = new Map();
      for (const c of teams) {
        const team = c.kind === "personal" ? "Chat" : c.team;
        if (!byTeam.has(team)) byTeam.set(team, []);
        byTeam.get(team).push(c);
      }
      sections.push(
        el("div", { class: "side-section teams" },
          el("div", { class: "side-platform" }, el("span", { class: "platform-dot teams" }), "Microsoft Teams"),
          [...byTeam.entries()].map(([team, items]) => [
            el("div", { class: "side-team" }, team),
            items.map((c) => sideItem(c, c.kind === "personal" ? "◆" : "▸", c.title)),
          ]),
        ),
      );
    }
    $("#sidebar").replaceChildren(...sections);
  }

  function sideItem(channel, glyph, label) {
    const key = channelKey(channel);
    const active = S.current && channelKey(S.current) === key;
    if (active) S.seen[key] = channel.messages;
    const unread = !active && S.seen[key] !== undefined && channel.messages > S.seen[key];
    if (S.seen[key] === undefined) S.seen[key] = channel.messages;
    return el("button", {
      class: `side-item ${active ? "active" : ""} ${unread ? "unread" : ""}`,
      type: "button",
      dataset: { platform: channel.platform, channel: channel.id, name: channel.name },
      title: channel.member === false ? "You are not a member of this channel" : null,
      onclick: () => select(channel),
    },
    el("span", { class: "side-glyph", "aria-hidden": "true" }, glyph),
    el("span", { class: "side-label" }, label),
    unread ? el("span", { class: "side-badge" }, String(channel.messages - S.seen[key])) : null);
  }

  // ---------------------------------------------------------------------------------------------- the channel

  function renderChannel() {
    const snap = S.snapshot;
    const main = $("#channel");
    if (!snap) return;
    const old = main.querySelector(".messages");
    const atBottom = !old || old.scrollHeight - old.scrollTop - old.clientHeight < 60;
    const previousTop = old ? old.scrollTop : 0;
    const focus = rememberFocus();

    main.className = `channel ${snap.platform}`;
    const header = el("div", { class: "channel-header" },
      el("div", { class: "channel-title" }, snap.title),
      el("div", { class: "channel-sub" },
        snap.platform === "slack" ? `Slack · ${snap.workspace}` : `Microsoft Teams${snap.team ? ` · ${snap.team}` : ""}`),
    );
    const list = el("div", { class: "messages", role: "log", "aria-live": "polite" });
    if (!snap.messages.length) {
      list.append(el("div", { class: "empty" }, "No messages yet. Type a command below, or make something happen in the panel on the right."));
    }
    for (const msg of snap.messages) {
      list.append(snap.platform === "slack" ? slackMessage(msg, snap, false) : teamsPost(msg, snap));
    }
    main.replaceChildren(header, list, composer(snap));
    list.scrollTop = atBottom ? list.scrollHeight : previousTop;
    restoreFocus(focus);
  }

  function rememberFocus() {
    const active = document.activeElement;
    if (!active || !active.dataset || !active.dataset.key) return null;
    return { key: active.dataset.key, start: active.selectionStart, end: active.selectionEnd };
  }

  function restoreFocus(focus) {
    if (!focus) return;
    const node = [...document.querySelectorAll("[data-key]")].find((n) => n.dataset.key === focus.key);
    if (!node) return;
    node.focus();
    if (typeof focus.start === "number" && node.setSelectionRange) {
      try {
        node.setSelectionRange(focus.start, focus.end);
      } catch (error) {
        // not a text field
      }
    }
  }

  function composer(snap) {
    const slack = snap.platform === "slack";
    const hint = slack
      ? `Message ${snap.title} — try /retrain model-x or @${snap.bot.name} status`
      : snap.kind === "personal"
        ? `Message ${snap.bot.name} — try: retrain model-x`
        : `Start a post (it @mentions ${snap.bot.name}) — try: retrain model-x`;
    const key = `composer:${channelKey(snap)}`;
    const box = el("textarea", {
      class: "composer-input",
      rows: 1,
      placeholder: hint,
      "aria-label": `Message ${snap.title}`,
      dataset: { key },
    });
    box.value = S.inputs[key] || "";
    box.addEventListener("input", () => {
      S.inputs[key] = box.value;
    });
    const send = async () => {
      const text = box.value.trim();
      if (!text) return;
      button.disabled = true;
      try {
        const answer = await api(`api/channels/${snap.platform}/${encodeURIComponent(snap.id)}/messages`, {
          text,
          thread: S.thread ? S.thread.id : null,
        });
        box.value = "";
        S.inputs[key] = "";
        if (!answer.ok) toast(botFailure(snap.platform, text, answer), "error");
      } catch (error) {
        toast(error.message, "error");
      } finally {
        button.disabled = false;
        box.focus();
      }
    };
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
    const button = el("button", { class: "composer-send", type: "button", onclick: send }, "Send");
    const thread = S.thread
      ? el("div", { class: "composer-thread" }, `Replying in thread: ${S.thread.label}`,
        el("button", { type: "button", class: "link-button", onclick: () => { S.thread = null; renderChannel(); } }, "✕ cancel"))
      : null;
    return el("div", { class: "composer" }, thread, el("div", { class: "composer-row" }, box, button));
  }

  function botFailure(platform, what, answer) {
    if (platform === "slack" && what.startsWith("/")) {
      return `${what.split(/\s/)[0]} failed: the bot answered HTTP ${answer.status}.`;
    }
    return `The bot answered HTTP ${answer.status}.`;
  }

  function replyButton(id, label) {
    return el("button", {
      type: "button",
      class: "link-button reply-button",
      onclick: () => {
        S.thread = { id, label };
        renderChannel();
        const box = document.querySelector(".composer-input");
        if (box) box.focus();
      },
    }, "↩ Reply in thread");
  }

  // ---------------------------------------------------------------------------------------------- Slack messages

  function slackName(snap, id) {
    return (snap.users && snap.users[id]) || id || "Slack";
  }

  function slackMessage(msg, snap, reply) {
    const name = msg.bot ? snap.bot.name : slackName(snap, msg.author);
    const canStartThread = !reply && !msg.ephemeral && !msg.deleted && !(msg.replies || []).length;
    const content = msg.deleted
      ? el("div", { class: "deleted" }, "This message was deleted.")
      : slackContent(msg, snap);
    const node = el("div", {
      class: `msg slack-msg ${msg.ephemeral ? "ephemeral" : ""} ${reply ? "reply" : ""}`,
      dataset: { ts: msg.ts, id: msg.id },
    },
    avatar(msg.author, name, msg.bot, "square"),
    el("div", { class: "msg-body" },
      el("div", { class: "msg-meta" },
        el("span", { class: "msg-name" }, name),
        msg.bot ? el("span", { class: "app-badge" }, "APP") : null,
        el("span", { class: "msg-time" }, clock(msg.time)),
        msg.edited ? el("span", { class: "edited" }, "(edited)") : null,
        canStartThread ? el("span", { class: "meta-actions" }, replyButton(msg.ts, threadLabel(msg, snap))) : null),
      content,
      msg.ephemeral ? el("div", { class: "ephemeral-note" }, "👁 Only visible to you") : null,
      !reply && !msg.ephemeral && !msg.deleted ? slackThread(msg, snap) : null));
    return node;
  }

  function threadLabel(msg, snap) {
    return `${msg.bot ? snap.bot.name : slackName(snap, msg.author)}: ${plainSnippet(msg.text)}`;
  }

  function slackThread(msg, snap) {
    const replies = msg.replies || [];
    const label = threadLabel(msg, snap);
    if (!replies.length) return null;
    return el("div", { class: "thread" },
      el("div", { class: "thread-count" }, `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`),
      replies.map((r) => slackMessage(r, snap, true)),
      el("div", { class: "thread-actions" }, replyButton(msg.ts, label)));
  }

  function plainSnippet(text) {
    const plain = String(text || "").replace(/<[^|>]*\|([^>]*)>/g, "$1").replace(/[<>*_~`]/g, "").replace(/&amp;/g, "&");
    return plain.length > 60 ? `${plain.slice(0, 60)}…` : plain;
  }

  function slackContent(msg, snap) {
    const box = el("div", { class: "msg-content" });
    if (Array.isArray(msg.blocks) && msg.blocks.length) box.append(renderBlocks(msg.blocks, msg, snap));
    else if (msg.text) box.append(el("div", { class: "mrkdwn" }, mrkdwn(msg.text, snap)));
    for (const attachment of msg.attachments || []) box.append(legacyAttachment(attachment, msg, snap));
    return box;
  }

  function legacyAttachment(attachment, msg, snap) {
    const node = el("div", { class: "legacy-attachment" });
    if (attachment && typeof attachment.color === "string" && /^#?[0-9a-f]{3,8}$/i.test(attachment.color)) {
      node.style.borderLeftColor = attachment.color.startsWith("#") ? attachment.color : `#${attachment.color}`;
    }
    if (!attachment || typeof attachment !== "object") return node;
    if (attachment.title) node.append(el("div", { class: "bk-header small" }, attachment.title_link ? link(attachment.title_link, attachment.title) : attachment.title));
    if (Array.isArray(attachment.blocks)) node.append(renderBlocks(attachment.blocks, msg, snap));
    else if (attachment.text) node.append(el("div", { class: "mrkdwn" }, mrkdwn(String(attachment.text), snap)));
    if (Array.isArray(attachment.fields)) {
      node.append(el("div", { class: "bk-fields" }, attachment.fields.map((f) =>
        el("div", { class: "bk-field" }, el("b", {}, f.title || ""), el("div", {}, mrkdwn(String(f.value || ""), snap))))));
    }
    return node;
  }

  // Block Kit ---------------------------------------------------------------------------------

  function renderBlocks(blocks, msg, snap, form) {
    const box = el("div", { class: "blocks" });
    for (const block of blocks) {
      if (!block || typeof block !== "object") continue;
      box.append(renderBlock(block, msg, snap, form));
    }
    return box;
  }

  function textObject(obj, snap) {
    if (!obj) return "";
    if (typeof obj === "string") return mrkdwn(obj, snap);
    if (obj.type === "mrkdwn") return mrkdwn(String(obj.text || ""), snap);
    return plainText(String(obj.text || ""));
  }

  function plainText(text) {
    return document.createTextNode(withEmoji(text));
  }

  function renderBlock(block, msg, snap, form) {
    switch (block.type) {
      case "header":
        return el("div", { class: "bk-header" }, plainText(String((block.text && block.text.text) || "")));
      case "section": {
        const node = el("div", { class: "bk-section" });
        const main = el("div", { class: "bk-section-main" });
        if (block.text) main.append(el("div", { class: "mrkdwn" }, textObject(block.text, snap)));
        if (Array.isArray(block.fields) && block.fields.length) {
          main.append(el("div", { class: "bk-fields" }, block.fields.map((f) => el("div", { class: "bk-field mrkdwn" }, textObject(f, snap)))));
        }
        node.append(main);
        if (block.accessory) node.append(el("div", { class: "bk-accessory" }, renderElement(block.accessory, block, msg, snap)));
        return node;
      }
      case "context":
        return el("div", { class: "bk-context" }, (block.elements || []).map((e) =>
          e && e.type === "image"
            ? el("span", { class: "bk-image-alt" }, `[${e.alt_text || "image"}]`)
            : el("span", { class: "bk-context-item mrkdwn" }, textObject(e, snap))));
      case "divider":
        return el("hr", { class: "bk-divider" });
      case "actions":
        return el("div", { class: "bk-actions" }, (block.elements || []).map((e) => renderElement(e, block, msg, snap)));
      case "image":
        return el("div", { class: "bk-image-alt" }, `🖼 ${block.alt_text || (block.title && block.title.text) || "image"}`);
      case "input":
        return inputBlock(block, form);
      case "rich_text":
        return el("div", { class: "mrkdwn" }, richText(block, snap));
      default:
        return el("div", { class: "unsupported" }, `[unsupported block: ${block.type}]`);
    }
  }

  function richText(block, snap) {
    const out = [];
    const walk = (items) => {
      for (const item of items || []) {
        if (!item) continue;
        if (item.type === "text") out.push(item.style && item.style.bold ? el("b", {}, item.text) : item.text);
        else if (item.type === "link") out.push(link(item.url, item.text || item.url));
        else if (item.type === "emoji") out.push(EMOJI[item.name] || `:${item.name}:`);
        else if (item.type === "user") out.push(el("span", { class: "mention" }, `@${slackName(snap, item.user_id)}`));
        else if (Array.isArray(item.elements)) {
          walk(item.elements);
          out.push("\n");
        }
      }
    };
    walk(block.elements);
    return out;
  }

  function renderElement(element, block, msg, snap) {
    if (!element || typeof element !== "object") return null;
    if (element.type === "button") {
      const style = element.style === "primary" || element.style === "danger" ? element.style : "default";
      const label = plainText(String((element.text && element.text.text) || "Button"));
      const button = el("button", {
        type: "button",
        class: `bk-button ${style}`,
        dataset: { actionId: element.action_id || "" },
        onclick: () => clickSlack(button, msg, element),
      }, label);
      return button;
    }
    if (element.type === "image") return el("span", { class: "bk-image-alt" }, `[${element.alt_text || "image"}]`);
    return el("span", { class: "unsupported" }, `[${element.type}]`);
  }

  async function clickSlack(button, msg, element) {
    if (!msg || !S.snapshot) return;
    if (element.confirm) {
      const c = element.confirm;
      const ok = await askConfirm(
        (c.title && c.title.text) || "Are you sure?",
        c.text ? textObject(c.text, S.snapshot) : "",
        (c.confirm && c.confirm.text) || "Yes",
        (c.deny && c.deny.text) || "Cancel",
        c.style === "danger",
      );
      if (!ok) return;
    }
    if (element.url) openUrl(element.url);
    button.disabled = true;
    button.classList.add("busy");
    try {
      const answer = await api("api/slack/actions", {
        channel: S.snapshot.id,
        ts: msg.ts,
        action_id: element.action_id,
        value: typeof element.value === "string" ? element.value : null,
      });
      if (!answer.ok) toast(`The bot answered HTTP ${answer.status} to the click.`, "error");
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  // mrkdwn ----------------------------------------------------------------------------------------

  const EMOJI = {
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", no_entry: "⛔", no_entry_sign: "🚫",
    information_source: "ℹ️", hourglass_flowing_sand: "⏳", hourglass: "⌛", arrows_counterclockwise: "🔄",
    raised_hand: "✋", large_orange_diamond: "🔶", alarm_clock: "⏰", scissors: "✂️", rocket: "🚀", tada: "🎉",
    eyes: "👀", bell: "🔔", lock: "🔒", package: "📦", robot_face: "🤖", link: "🔗", memo: "📝", gear: "⚙️",
    chart_with_upwards_trend: "📈", bar_chart: "📊", red_circle: "🔴", large_green_circle: "🟢", large_blue_circle: "🔵",
    large_yellow_circle: "🟡", white_circle: "⚪", thumbsup: "👍", "+1": "👍", thumbsdown: "👎", "-1": "👎",
    fire: "🔥", sparkles: "✨", hammer_and_wrench: "🛠️", test_tube: "🧪", floppy_disk: "💾", inbox_tray: "📥",
    arrow_right: "➡️", heavy_minus_sign: "➖", question: "❓", exclamation: "❗", stopwatch: "⏱️", pause_button: "⏸️",
    black_right_pointing_double_triangle_with_vertical_bar: "⏭️",
  };

  function withEmoji(text) {
    return String(text).replace(/:([a-z0-9_+-]+):/g, (all, name) => EMOJI[name] || all);
  }

  function unescapeSlack(text) {
    return String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  /** Slack mrkdwn as DOM nodes: *bold*, _italic_, ~strike~, `code`, ```pre```, > quotes, <links>, mentions, emoji. */
  function mrkdwn(text, snap) {
    const frag = document.createDocumentFragment();
    const parts = String(text).split("```");
    parts.forEach((part, index) => {
      const isCode = index % 2 === 1 && index < parts.length - 1;
      if (isCode) frag.append(el("pre", { class: "code-block" }, unescapeSlack(part.replace(/^\n/, ""))));
      else mrkdwnLines(frag, index % 2 === 1 ? "```" + part : part, snap);
    });
    return frag;
  }

  function mrkdwnLines(parent, text, snap) {
    let quote = null;
    let previousPlain = false;
    for (const line of text.split("\n")) {
      const quoted = /^&gt;\s?(.*)$/.exec(line);
      if (quoted) {
        if (!quote) {
          quote = el("blockquote");
          parent.append(quote);
        } else quote.append(el("br"));
        inline(quote, quoted[1], snap);
        previousPlain = false;
      } else {
        if (previousPlain) parent.append(el("br"));
        quote = null;
        inline(parent, line, snap);
        previousPlain = true;
      }
    }
  }

  const INLINE = new RegExp(
    [
      "(`[^`\\n]+`)", // 1 code
      "(<[^<>\\n]+>)", // 2 link, mention, special
      "(?<![\\w*])\\*(?!\\s)([^*\\n]+?)(?<!\\s)\\*(?![\\w*])", // 3 bold
      "(?<![\\w_])_(?!\\s)([^_\\n]+?)(?<!\\s)_(?![\\w_])", // 4 italic
      "(?<![\\w~])~(?!\\s)([^~\\n]+?)(?<!\\s)~(?![\\w~])", // 5 strike
      "(:[a-z0-9_+-]+:)", // 6 emoji
    ].join("|"),
    "g",
  );

  function inline(parent, text, snap) {
    const pattern = new RegExp(INLINE.source, "g");
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) parent.append(unescapeSlack(text.slice(last, match.index)));
      if (match[1]) parent.append(el("code", {}, unescapeSlack(match[1].slice(1, -1))));
      else if (match[2]) parent.append(slackToken(match[2].slice(1, -1), snap));
      else if (match[3] !== undefined) inline(parent.appendChild(el("b")), match[3], snap);
      else if (match[4] !== undefined) inline(parent.appendChild(el("i")), match[4], snap);
      else if (match[5] !== undefined) inline(parent.appendChild(el("s")), match[5], snap);
      else if (match[6]) parent.append(EMOJI[match[6].slice(1, -1)] || match[6]);
      last = pattern.lastIndex;
    }
    if (last < text.length) parent.append(unescapeSlack(text.slice(last)));
  }

  function slackToken(inner, snap) {
    const bar = inner.indexOf("|");
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? unescapeSlack(inner.slice(bar + 1)) : "";
    if (target.startsWith("@")) return el("span", { class: "mention" }, `@${label || slackName(snap || {}, target.slice(1))}`);
    if (target.startsWith("#")) {
      const name = label || (snap && snap.channels && snap.channels[target.slice(1)]) || target.slice(1);
      return el("span", { class: "mention" }, `#${name}`);
    }
    if (target.startsWith("!")) {
      const special = target.slice(1).split("^")[0];
      if (["here", "channel", "everyone"].includes(special)) return el("span", { class: "mention" }, `@${special}`);
      return label || special;
    }
    return link(unescapeSlack(target), label || unescapeSlack(target));
  }

  // ---------------------------------------------------------------------------------------------- Slack modals

  function inputBlock(block, form) {
    const element = block.element || {};
    const id = `${block.block_id}/${element.action_id}`;
    const key = `modal:${form ? form.viewId : ""}:${id}`;
    const field = element.multiline
      ? el("textarea", { rows: 4, class: "modal-input", dataset: { key, block: block.block_id, action: element.action_id } })
      : el("input", { type: "text", class: "modal-input", dataset: { key, block: block.block_id, action: element.action_id } });
    if (element.max_length) field.maxLength = element.max_length;
    if (element.placeholder && element.placeholder.text) field.placeholder = element.placeholder.text;
    field.value = S.inputs[key] !== undefined ? S.inputs[key] : element.initial_value || "";
    field.addEventListener("input", () => {
      S.inputs[key] = field.value;
    });
    if (element.type && element.type !== "plain_text_input") field.disabled = true;
    const error = form && form.errors ? form.errors[block.block_id] : null;
    return el("label", { class: "modal-field" },
      el("span", { class: "modal-label" }, (block.label && block.label.text) || "", block.optional ? el("span", { class: "optional" }, " (optional)") : null),
      field,
      block.hint && block.hint.text ? el("span", { class: "modal-hint" }, block.hint.text) : null,
      error ? el("span", { class: "field-error" }, error) : null);
  }

  function renderModal() {
    const dialog = $("#modal");
    const snap = S.snapshot;
    const opened = snap && snap.platform === "slack" ? snap.view : null;
    if (!opened) {
      if (dialog.open) dialog.close();
      S.modalKey = "";
      return;
    }
    const key = `${opened.id}/${opened.view.hash}/${JSON.stringify(opened.errors)}`;
    if (key === S.modalKey && dialog.open) return;
    S.modalKey = key;
    const view = opened.view;
    const form = { viewId: opened.id, errors: opened.errors || {} };
    const blocks = Array.isArray(view.blocks) ? view.blocks : [];
    const submit = async () => {
      const values = {};
      for (const field of dialog.querySelectorAll(".modal-input")) {
        if (field.disabled) continue;
        values[field.dataset.block] = values[field.dataset.block] || {};
        values[field.dataset.block][field.dataset.action] = field.value;
      }
      for (const block of blocks) {
        if (block.type === "input" && !block.optional && block.element) {
          const value = ((values[block.block_id] || {})[block.element.action_id] || "").trim();
          if (!value) {
            toast(`${(block.label && block.label.text) || "This field"} is required.`, "error");
            return;
          }
        }
      }
      submitButton.disabled = true;
      try {
        const answer = await api(`api/slack/views/${encodeURIComponent(opened.id)}/submit`, { values });
        if (!answer.ok) toast(`The bot answered HTTP ${answer.status} to the form.`, "error");
        if (answer.closed) dialog.close();
      } catch (error) {
        toast(error.message, "error");
      } finally {
        submitButton.disabled = false;
      }
    };
    const close = async () => {
      dialog.close();
      try {
        await api(`api/slack/views/${encodeURIComponent(opened.id)}/close`, {});
      } catch (error) {
        toast(error.message, "error");
      }
    };
    const submitButton = el("button", { type: "button", class: "bk-button primary", onclick: submit }, (view.submit && view.submit.text) || "Submit");
    dialog.replaceChildren(
      el("div", { class: "modal-head" }, el("span", { class: "modal-title" }, (view.title && view.title.text) || "Handoff"),
        el("button", { type: "button", class: "modal-x", "aria-label": "Close", onclick: close }, "✕")),
      el("div", { class: "modal-body" }, renderBlocks(blocks, null, snap, form)),
      el("div", { class: "modal-foot" },
        el("button", { type: "button", class: "bk-button default", onclick: close }, (view.close && view.close.text) || "Cancel"),
        submitButton),
    );
    dialog.oncancel = (event) => {
      event.preventDefault();
      close();
    };
    if (!dialog.open) dialog.showModal();
  }

  /** An in-page confirmation (resolves true or false). */
  function askConfirm(title, body, yes, no, danger) {
    const dialog = $("#confirm");
    return new Promise((resolve) => {
      const done = (answer) => {
        dialog.close();
        resolve(answer);
      };
      dialog.replaceChildren(
        el("div", { class: "modal-head" }, el("span", { class: "modal-title" }, title)),
        el("div", { class: "modal-body mrkdwn" }, body),
        el("div", { class: "modal-foot" },
          el("button", { type: "button", class: "bk-button default", onclick: () => done(false) }, no),
          el("button", { type: "button", class: `bk-button ${danger ? "danger" : "primary"}`, onclick: () => done(true) }, yes)),
      );
      dialog.oncancel = (event) => {
        event.preventDefault();
        done(false);
      };
      dialog.showModal();
    });
  }

  // ---------------------------------------------------------------------------------------------- Teams posts

  function teamsPost(msg, snap) {
    const label = `${msg.authorName}: ${plainSnippet(teamsPlain(msg.text))}`;
    const replies = msg.replies || [];
    return el("article", { class: "post", dataset: { id: msg.id } },
      teamsMessage(msg, snap, false),
      replies.length ? el("div", { class: "post-replies" },
        el("div", { class: "thread-count" }, `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`),
        replies.map((r) => teamsMessage(r, snap, true))) : null,
      snap.kind === "channel" ? el("div", { class: "post-reply-bar" }, replyButton(msg.id, label)) : null);
  }

  function teamsMessage(msg, snap, reply) {
    let body;
    if (msg.deleted) body = el("div", { class: "deleted" }, "This message has been deleted.");
    else {
      body = el("div", { class: "teams-content" });
      if (msg.text) body.append(el("div", { class: "teams-text" }, teamsText(msg.text)));
      (msg.cards || []).forEach((card, index) => body.append(adaptiveCard(card.content, msg, index)));
      for (const name of msg.attachments || []) body.append(el("div", { class: "unsupported" }, `[attachment: ${name}]`));
    }
    return el("div", { class: `teams-msg ${reply ? "reply" : ""}`, dataset: { id: msg.id } },
      avatar(msg.author, msg.authorName, msg.bot, "round"),
      el("div", { class: "msg-body" },
        el("div", { class: "msg-meta" },
          el("span", { class: "msg-name" }, msg.authorName),
          msg.bot ? el("span", { class: "app-badge teams" }, "Bot") : null,
          el("span", { class: "msg-time" }, clock(msg.time)),
          msg.edited ? el("span", { class: "edited" }, "Edited") : null),
        body));
  }

  function teamsPlain(text) {
    return String(text || "").replace(/<at>([^<]*)<\/at>/gi, "@$1").replace(/<[^>]+>/g, "");
  }

  /** Teams message text: <at>mentions</at>, **bold**, _italic_, [links](url); other markup shown as text. */
  function teamsText(text) {
    const frag = document.createDocumentFragment();
    const parts = String(text).split(/(<at>[^<]*<\/at>)/i);
    parts.forEach((part, index) => {
      if (index % 2 === 1) frag.append(el("span", { class: "mention teams" }, `@${part.replace(/<\/?at>/gi, "")}`));
      else frag.append(markdown(part));
    });
    return frag;
  }

  /** The markdown Adaptive Cards and Teams support: **bold**, _italic_ / *italic*, [text](url), lists, lines,
   * and backslash escapes (\* shows *), as Teams reads them. */
  function markdown(text) {
    const frag = document.createDocumentFragment();
    const lines = String(text).split("\n");
    lines.forEach((line, index) => {
      if (index > 0) frag.append(el("br"));
      const bullet = /^\s*[-*]\s+(.*)$/.exec(line);
      const numbered = /^\s*(\d+)\.\s+(.*)$/.exec(line);
      if (bullet) {
        frag.append("• ");
        markdownInline(frag, bullet[1]);
      } else if (numbered) {
        frag.append(`${numbered[1]}. `);
        markdownInline(frag, numbered[2]);
      } else markdownInline(frag, line);
    });
    return frag;
  }

  const MD_INLINE = /\*\*([^*]+)\*\*|__([^_]+)__|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])|(?<![\w_])_([^_\s][^_]*?)_(?![\w_])|\[([^\]]+)\]\(([^)\s]+)\)|`([^`]+)`|\\([!-/:-@[-`{-~])/g;

  function markdownInline(parent, text) {
    const pattern = new RegExp(MD_INLINE.source, "g");
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) parent.append(text.slice(last, match.index));
      if (match[1] !== undefined || match[2] !== undefined) markdownInline(parent.appendChild(el("b")), match[1] ?? match[2]);
      else if (match[3] !== undefined || match[4] !== undefined) markdownInline(parent.appendChild(el("i")), match[3] ?? match[4]);
      else if (match[5] !== undefined) parent.append(link(match[6], match[5]));
      else if (match[7] !== undefined) parent.append(el("code", {}, match[7]));
      else if (match[8] !== undefined) parent.append(match[8]); // an escaped character, shown as itself
      last = pattern.lastIndex;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  // Adaptive Cards ----------------------------------------------------------------------------

  function adaptiveCard(card, msg, index) {
    const scope = { msg, inputs: [], parent: null, path: `c${index}` };
    const node = el("div", { class: "ac-card" });
    if (!card || typeof card !== "object") return node;
    node.append(acElements(card.body, scope));
    if (Array.isArray(card.actions) && card.actions.length) node.append(acActions(card.actions, scope, "card"));
    const note = index === 0 ? S.cardNotes[msg.id] : null;
    if (note) node.append(el("div", { class: `ac-note ${note.kind}`, role: note.kind === "error" ? "alert" : "status" }, note.text));
    return node;
  }

  function acElements(items, scope) {
    const box = el("div", { class: "ac-items" });
    for (const item of Array.isArray(items) ? items : []) {
      const node = acElement(item, scope);
      if (node) box.append(node);
    }
    return box;
  }

  const SPACING = ["none", "small", "default", "medium", "large", "extralarge", "padding"];

  function acElement(item, scope) {
    if (!item || typeof item !== "object" || item.isVisible === false) return null;
    const node = acElementBody(item, scope);
    if (!node) return null;
    const spacing = String(item.spacing || "default").toLowerCase();
    node.classList.add(`sp-${SPACING.includes(spacing) ? spacing : "default"}`);
    if (item.separator) node.classList.add("ac-separator");
    if (item.horizontalAlignment) node.classList.add(`align-${String(item.horizontalAlignment).toLowerCase()}`);
    return node;
  }

  function acElementBody(item, scope) {
    switch (item.type) {
      case "TextBlock": {
        const classes = ["ac-text"];
        classes.push(`size-${String(item.size || "default").toLowerCase()}`);
        classes.push(`weight-${String(item.weight || "default").toLowerCase()}`);
        classes.push(`color-${String(item.color || "default").toLowerCase()}`);
        if (item.isSubtle) classes.push("subtle");
        if (item.wrap === false) classes.push("nowrap");
        if (item.style === "heading") classes.push("heading");
        return el("div", { class: classes.join(" ") }, markdown(String(item.text ?? "")));
      }
      case "RichTextBlock":
        return el("div", { class: "ac-text" }, (item.inlines || []).map((run) => {
          if (typeof run === "string") return run;
          const node = el(run.weight === "Bolder" ? "b" : "span", {}, String(run.text || ""));
          if (run.italic) node.style.fontStyle = "italic";
          if (run.strikethrough) node.style.textDecoration = "line-through";
          if (run.color) node.classList.add(`color-${String(run.color).toLowerCase()}`);
          return node;
        }));
      case "FactSet":
        return el("table", { class: "ac-facts" }, el("tbody", {}, (item.facts || []).map((f) =>
          el("tr", {}, el("th", { scope: "row" }, markdown(String(f.title ?? ""))), el("td", {}, markdown(String(f.value ?? "")))))));
      case "ColumnSet":
        return el("div", { class: "ac-columns" }, (item.columns || []).map((column) => acColumn(column, scope)));
      case "Container":
        return el("div", { class: `ac-container style-${String(item.style || "default").toLowerCase()}` }, acElements(item.items, scope));
      case "Image":
        return el("div", { class: "ac-image" }, `🖼 ${item.altText || "image"}`);
      case "ImageSet":
        return el("div", { class: "ac-image" }, (item.images || []).map((i) => `🖼 ${(i && i.altText) || "image"}`).join("  "));
      case "ActionSet":
        scope.sets = (scope.sets || 0) + 1;
        return acActions(item.actions || [], scope, `set${scope.sets}`);
      case "Table":
        return acTable(item, scope);
      case "Input.Text":
      case "Input.Number":
      case "Input.Date":
      case "Input.Time":
      case "Input.Toggle":
      case "Input.ChoiceSet":
        return acInput(item, scope);
      default:
        if (item.fallback && typeof item.fallback === "object") return acElementBody(item.fallback, scope);
        if (item.fallback === "drop") return null;
        return el("div", { class: "unsupported" }, `[unsupported: ${item.type}]`);
    }
  }

  function acColumn(column, scope) {
    const node = el("div", { class: "ac-column" }, acElements(column && column.items, scope));
    const width = column ? column.width : undefined;
    if (width === "auto") node.style.flex = "0 0 auto";
    else if (typeof width === "number" || /^\d+(\.\d+)?$/.test(String(width))) node.style.flex = `${Number(width)} ${Number(width)} 0`;
    else if (/^\d+px$/.test(String(width))) node.style.flex = `0 0 ${width}`;
    else node.style.flex = "1 1 0";
    return node;
  }

  function acTable(item, scope) {
    return el("table", { class: "ac-table" }, el("tbody", {}, (item.rows || []).map((row, r) =>
      el("tr", {}, ((row && row.cells) || []).map((cell) =>
        el(r === 0 && item.firstRowAsHeader !== false ? "th" : "td", {}, acElements(cell && cell.items, scope)))))));
  }

  function acInput(item, scope) {
    const key = `${scope.msg.id}/${item.id}`;
    const stored = S.inputs[key];
    let field;
    if (item.type === "Input.Toggle") {
      field = el("input", { type: "checkbox", dataset: { key } });
      const on = item.valueOn ?? "true";
      field.checked = stored !== undefined ? stored === on : item.value === on;
      field.addEventListener("change", () => {
        S.inputs[key] = field.checked ? on : item.valueOff ?? "false";
      });
      scope.inputs.push({ item, read: () => (field.checked ? on : item.valueOff ?? "false"), field });
      return el("label", { class: "ac-input toggle" }, field, ` ${item.title || item.label || ""}`);
    }
    if (item.type === "Input.ChoiceSet") {
      field = el("select", { dataset: { key }, multiple: item.isMultiSelect === true },
        (item.choices || []).map((c) => el("option", { value: String(c.value ?? "") }, String(c.title ?? c.value ?? ""))));
      field.value = stored !== undefined ? stored : item.value || "";
    } else if (item.type === "Input.Text" && item.isMultiline) {
      field = el("textarea", { rows: 3, dataset: { key } });
    } else {
      const type = { "Input.Number": "number", "Input.Date": "date", "Input.Time": "time" }[item.type] || "text";
      field = el("input", { type, dataset: { key } });
    }
    if (item.type !== "Input.ChoiceSet") field.value = stored !== undefined ? stored : item.value ?? "";
    if (item.placeholder) field.placeholder = item.placeholder;
    if (item.maxLength) field.maxLength = item.maxLength;
    field.setAttribute("aria-label", item.label || item.placeholder || item.id || "input");
    const error = el("span", { class: "field-error", hidden: true }, item.errorMessage || "This field is required.");
    field.addEventListener("input", () => {
      S.inputs[key] = field.value;
      error.hidden = true;
    });
    field.addEventListener("change", () => {
      S.inputs[key] = field.value;
    });
    scope.inputs.push({ item, read: () => field.value, field, error });
    return el("label", { class: "ac-input" },
      item.label ? el("span", { class: "ac-label" }, item.label, item.isRequired ? el("span", { class: "required" }, " *") : null) : null,
      field, error);
  }

  function acActions(actions, scope, where) {
    const row = el("div", { class: "ac-actions" });
    const area = el("div", { class: "ac-showcard" });
    actions.forEach((action, index) => {
      if (!action || typeof action !== "object") return;
      const key = `${scope.path}/${where}/${action.id || index}`;
      const title = String(action.title || action.verb || action.type || "Action");
      const style = action.style === "positive" || action.style === "destructive" ? action.style : "default";
      if (action.type === "Action.ShowCard") {
        const open = S.showCards[scope.msg.id] === key;
        row.append(el("button", {
          type: "button",
          class: `ac-button ${style} ${open ? "expanded" : ""}`,
          "aria-expanded": open ? "true" : "false",
          onclick: () => {
            S.showCards[scope.msg.id] = open ? null : key;
            renderChannel();
          },
        }, title, open ? " ▴" : " ▾"));
        if (open && action.card) {
          const child = { msg: scope.msg, inputs: [], parent: scope, path: `${key}/card` };
          area.append(el("div", { class: "ac-subcard" }, acElements(action.card.body, child),
            Array.isArray(action.card.actions) ? acActions(action.card.actions, child, "card") : null));
        }
        return;
      }
      const supported = ["Action.Execute", "Action.Submit", "Action.OpenUrl"].includes(action.type);
      const button = el("button", {
        type: "button",
        class: `ac-button ${style} ${action.type === "Action.OpenUrl" ? "url" : ""}`,
        disabled: !supported,
        title: supported ? (action.tooltip || null) : `${action.type} is not supported by the console`,
        dataset: { verb: action.verb || "" },
        onclick: () => clickTeams(button, action, scope),
      }, title, action.type === "Action.OpenUrl" ? " ↗" : null);
      row.append(button);
    });
    return el("div", { class: "ac-actionset" }, row, area);
  }

  function gatherInputs(scope) {
    const values = {};
    let valid = true;
    for (let s = scope; s; s = s.parent) {
      for (const input of s.inputs) {
        const value = input.read();
        if (input.item.isRequired && !String(value).trim()) {
          valid = false;
          if (input.error) input.error.hidden = false;
        }
        if (input.item.id && !(input.item.id in values)) values[input.item.id] = value;
      }
    }
    return valid ? values : null;
  }

  async function clickTeams(button, action, scope) {
    if (action.type === "Action.OpenUrl") {
      openUrl(action.url);
      return;
    }
    const values = gatherInputs(scope);
    if (values === null) return;
    const base = action.data && typeof action.data === "object" ? action.data : {};
    button.disabled = true;
    button.classList.add("busy");
    try {
      const answer = await api("api/teams/actions", {
        message_id: scope.msg.id,
        action: { type: action.type, verb: action.verb || null, id: action.id || null, data: { ...base, ...values } },
      });
      for (const input of Object.keys(values)) delete S.inputs[`${scope.msg.id}/${input}`];
      S.showCards[scope.msg.id] = null;
      if (answer.kind === "error" || answer.kind === "message") {
        const note = { kind: answer.kind, text: answer.text };
        S.cardNotes[scope.msg.id] = note;
        setTimeout(() => {
          if (S.cardNotes[scope.msg.id] === note) {
            delete S.cardNotes[scope.msg.id];
            renderChannel();
          }
        }, 10000);
      } else delete S.cardNotes[scope.msg.id];
      if (answer.kind === "error") toast(answer.text, "error");
      S.snapshotKey = "";
      renderChannel();
      loadChannel();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  // ---------------------------------------------------------------------------------------------- world panel

  function badge(state, result) {
    const word = result || state || "unknown";
    return el("span", { class: `badge st-${String(word).toLowerCase()}` }, word);
  }

  function renderWorld() {
    const w = S.world;
    if (!w) return;
    const devops = w.devops;
    const ml = w.ml;
    const pipelines = devops.pipelines.map((p) =>
      el("div", { class: "w-pipeline" },
        el("div", { class: "w-title" }, p.name, p.scripted ? el("span", { class: "w-flag" }, "next run scripted to fail") : null),
        p.runs.length ? p.runs.map((r) => el("div", { class: "w-run", dataset: { run: r.id } },
          el("div", { class: "w-run-head" }, el("span", { class: "w-run-name" }, `#${r.id}`), badge(r.state, r.result),
            el("span", { class: "w-muted" }, r.requestedBy)),
          el("div", { class: "w-stages" }, r.stages.map((s) =>
            el("span", {
              class: `stage st-${s.skipped && s.state === "notStarted" ? "skipped" : String(s.result || s.state).toLowerCase()}`,
              title: `${s.name}: ${s.result || s.state}`,
            }, s.name))),
          r.approvals.filter((a) => a.status === "pending").map((a) =>
            el("div", { class: "w-approval" }, `✋ approval pending: ${a.stage}`))))
          : el("div", { class: "w-muted" }, "no runs yet")));
    const jobs = ml.jobs.length
      ? ml.jobs.map((j) => el("div", { class: "w-row" }, el("span", { class: "w-name", title: j.name }, j.displayName), badge(j.status),
        j.model ? el("span", { class: "w-muted" }, `→ ${j.model}`) : null))
      : [el("div", { class: "w-muted" }, "no jobs yet")];
    const models = ml.models.map((m) => el("div", { class: "w-model" },
      el("div", { class: "w-title" }, m.name, el("span", { class: "w-muted" }, ` ${m.count} versions`)),
      m.versions.map((v) => el("div", { class: "w-row" }, el("span", { class: "w-name w-ver" }, `v${v.version}`),
        v.tags && v.tags.stage ? el("span", { class: "badge st-info" }, v.tags.stage) : null,
        el("span", { class: "w-muted" }, v.description || "")))));
    const lake = ml.lake
      ? el("div", { class: "w-lake" }, el("div", { class: "w-muted" }, `${ml.lake.account}/${ml.lake.filesystem}`),
        ml.lake.recent.map((path) => el("div", { class: "w-row w-path" }, `📄 ${path}`)))
      : null;
    const actions = S.actions.map((a) => el("button", {
      type: "button",
      class: "w-action",
      title: a.help,
      dataset: { action: a.name },
      onclick: (event) => worldAction(event.currentTarget, a),
    }, a.label));
    $("#world").replaceChildren(
      el("section", { class: "w-section" }, el("h3", {}, "Make things happen"), el("div", { class: "w-actions" }, actions)),
      el("section", { class: "w-section" }, el("h3", {}, `Azure DevOps · ${devops.organization}/${devops.project}`), pipelines),
      el("section", { class: "w-section" }, el("h3", {}, `Azure ML · ${ml.workspace}`),
        el("h4", {}, "Jobs"), jobs, el("h4", {}, "Models"), models, lake ? [el("h4", {}, "Data lake"), lake] : null),
    );
  }

  async function worldAction(button, action) {
    button.disabled = true;
    try {
      const answer = await api(`api/world/${action.name}`, {});
      toast(answer.message, "info");
      loadWorld();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------- live updates

  function connect() {
    const live = $("#live");
    const source = new EventSource("api/events");
    source.addEventListener("hello", () => {
      live.dataset.state = "live";
      live.textContent = "● live";
      loadState();
      loadChannel();
      loadWorld();
    });
    source.addEventListener("change", (event) => {
      let scopes = [];
      try {
        scopes = JSON.parse(event.data).scopes || [];
      } catch (error) {
        scopes = ["slack", "teams", "world"];
      }
      if (scopes.includes("world")) loadWorld();
      if (scopes.includes("slack") || scopes.includes("teams")) {
        loadState();
        if (S.current && scopes.includes(S.current.platform)) loadChannel();
      }
    });
    source.addEventListener("error", () => {
      live.dataset.state = "off";
      live.textContent = "reconnecting…";
    });
  }

  // ---------------------------------------------------------------------------------------------- start

  async function start() {
    const hash = readHash();
    S.user = hash.user;
    S.current = hash.current;
    $("#user").addEventListener("change", (event) => {
      S.user = event.target.value;
      S.snapshotKey = "";
      S.thread = null;
      writeHash();
      loadState().then(loadChannel);
    });
    try {
      await loadState();
    } catch (error) {
      toast(error.message, "error");
    }
    loadChannel();
    loadWorld();
    connect();
  }

  start();
})();
