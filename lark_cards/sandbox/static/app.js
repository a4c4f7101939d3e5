// The sandbox page: chats, composer, live updates (long polling), card callbacks.
// The preview panel lives in preview.js.
(function () {
  "use strict";
  const el = window.FeishuMarkdown.el;
  const state = {
    bot: null, users: {}, chats: [], messages: new Map(), seq: 0,
    chatId: null, view: "chat", openJson: new Set(), unread: new Set(),
  };
  const $ = (id) => document.getElementById(id);

  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(path, options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function toast(kind, text) {
    const node = el("div", "toast toast-" + (/^[a-z]+$/.test(kind) ? kind : "info"), text);
    $("toasts").appendChild(node);
    setTimeout(() => node.remove(), 4000);
  }

  function people() {
    const names = {};
    if (state.bot) names[state.bot.open_id] = state.bot.name;
    Object.values(state.users).forEach((u) => { names[u.open_id] = u.name; });
    return names;
  }

  function nameOf(message) {
    if (message.sender_type === "app") return state.bot ? state.bot.name : "Bot";
    return (state.users[message.sender_id] || {}).name || message.sender_id;
  }

  function avatar(name, isBot) {
    const node = el("span", "avatar" + (isBot ? " bot" : ""), (name || "?").slice(0, 1).toUpperCase());
    node.dataset.hue = String([...(name || "")].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7));
    node.style.setProperty("--hue", node.dataset.hue);
    return node;
  }

  // ---- chats ---------------------------------------------------------------------------

  function currentChat() {
    return state.chats.find((c) => c.chat_id === state.chatId);
  }

  function renderChatList() {
    const list = $("chat-list");
    list.replaceChildren();
    state.chats.forEach((chat) => {
      const item = el("li", "chat-item" + (state.view === "chat" && chat.chat_id === state.chatId ? " active" : ""));
      item.dataset.chatId = chat.chat_id;
      item.appendChild(avatar(chat.name, false));
      const label = el("span", "chat-name", chat.chat_mode === "p2p" ? `${chat.name} ↔ ${state.bot.name}` : chat.name);
      item.appendChild(label);
      if (state.unread.has(chat.chat_id)) item.appendChild(el("span", "unread-dot"));
      item.appendChild(el("span", "chat-kind", chat.chat_mode === "p2p" ? "direct" : "group"));
      item.addEventListener("click", () => openChat(chat.chat_id));
      list.appendChild(item);
    });
    $("preview-tab").classList.toggle("active", state.view === "preview");
  }

  function openChat(chatId) {
    state.view = "chat";
    state.chatId = chatId;
    state.unread.delete(chatId);
    $("chat-view").hidden = false;
    $("preview-view").hidden = true;
    const chat = currentChat();
    const members = (chat.members || []).map((id) => (state.users[id] || {}).name || id);
    $("chat-title").textContent = chat.chat_mode === "p2p" ? `${chat.name} ↔ ${state.bot.name}` : chat.name;
    $("chat-subtitle").textContent = chat.chat_mode === "p2p"
      ? "Direct chat with the bot"
      : `Group · ${[...members, state.bot.name].join(", ")} · every message is delivered to the bot`;
    const select = $("sender-select");
    select.replaceChildren();
    (chat.members || []).forEach((id) => {
      const option = el("option", null, (state.users[id] || {}).name || id);
      option.value = id;
      select.appendChild(option);
    });
    select.disabled = (chat.members || []).length < 2;
    renderChatList();
    renderMessages();
    $("composer-input").focus();
  }

  // ---- messages ------------------------------------------------------------------------

  function renderMessages() {
    const box = $("messages");
    box.replaceChildren();
    [...state.messages.values()]
      .filter((m) => m.chat_id === state.chatId)
      .sort((a, b) => a.create_time - b.create_time || a.message_id.localeCompare(b.message_id))
      .forEach((m) => box.appendChild(renderMessage(m)));
    box.scrollTop = box.scrollHeight;
  }

  function upsert(message) {
    const known = state.messages.has(message.message_id);
    state.messages.set(message.message_id, message);
    if (state.view !== "chat" || message.chat_id !== state.chatId) {
      if (!known) { state.unread.add(message.chat_id); renderChatList(); }
      return;
    }
    const box = $("messages");
    const node = renderMessage(message);
    const old = box.querySelector(`[data-message-id="${CSS.escape(message.message_id)}"]`);
    if (old) {
      old.replaceWith(node);
    } else {
      const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 200;
      box.appendChild(node);
      if (nearBottom || !known) box.scrollTop = box.scrollHeight;
    }
  }

  function renderMessage(message) {
    if (message.sender_type === "system") {
      const notice = el("div", "msg system-notice", message.content.text);
      notice.dataset.messageId = message.message_id;
      return notice;
    }
    const isBot = message.sender_type === "app";
    const row = el("div", "msg" + (isBot ? " from-bot" : " from-user"));
    row.dataset.messageId = message.message_id;
    row.dataset.msgType = message.msg_type;
    row.dataset.updates = String(message.updates || 0);
    row.appendChild(avatar(nameOf(message), isBot));
    const main = el("div", "msg-main");
    const meta = el("div", "msg-meta");
    meta.appendChild(el("span", "msg-name", nameOf(message)));
    if (isBot) meta.appendChild(el("span", "bot-badge", "Bot"));
    meta.appendChild(el("span", "msg-time", new Date(message.create_time).toLocaleTimeString()));
    if (message.updates) meta.appendChild(el("span", "msg-edited", `updated ×${message.updates}`));
    if (message.delivery) meta.appendChild(el("span", "msg-delivery delivery-" + message.delivery, deliveryLabel(message.delivery)));
    main.appendChild(meta);
    // Why the bot refused the push (its status and answer), which Feishu's console never shows.
    if (message.delivery_detail && message.delivery !== "delivered") {
      main.appendChild(el("div", "delivery-detail", message.delivery_detail));
    }
    if (message.reply_to) main.appendChild(replyQuote(message.reply_to, message.reply_in_thread));
    main.appendChild(renderContent(message));
    if ((message.reactions || []).length) main.appendChild(reactions(message.reactions));
    row.appendChild(main);
    return row;
  }

  function deliveryLabel(delivery) {
    return { pending: "sending…", delivered: "✓ delivered", retrying: "⟳ not acked — retrying", failed: "✗ not delivered" }[delivery] || delivery;
  }

  function replyQuote(messageId, thread) {
    const parent = state.messages.get(messageId);
    const quote = el("div", "reply-quote");
    if (!parent) { quote.textContent = "↩ Reply"; return quote; }
    const text = parent.msg_type === "text" ? parent.content.text : `[${parent.msg_type}]`;
    quote.textContent = `↩ ${nameOf(parent)}: ${String(text).slice(0, 80)}`;
    if (thread) quote.textContent += "  · in thread";
    return quote;
  }

  function reactions(list) {
    const box = el("div", "reactions");
    const counts = {};
    list.forEach((r) => { counts[r.emoji_type] = (counts[r.emoji_type] || 0) + 1; });
    Object.entries(counts).forEach(([emoji, count]) => {
      const chip = el("span", "reaction", `${window.FeishuMarkdown.EMOJI[emoji.toUpperCase()] || emoji} ${count}`);
      chip.dataset.emoji = emoji;
      box.appendChild(chip);
    });
    return box;
  }

  function renderContent(message) {
    const content = message.content || {};
    switch (message.msg_type) {
      case "text": return textBubble(content.text || "");
      case "post": return postBubble(content);
      case "interactive": return cardBubble(message);
      case "image": {
        const bubble = el("div", "bubble image");
        bubble.appendChild(window.FeishuMarkdown.imageNode(content.image_key, ""));
        return bubble;
      }
      case "file": return el("div", "bubble file", `📄 ${content.file_name || content.file_key}`);
      default: return jsonBlock(content);
    }
  }

  function textBubble(text) {
    const bubble = el("div", "bubble text");
    // Text messages: @mentions highlighted (typed "@Name" or <at user_id> §5.1), the rest as typed.
    const names = [state.bot.name, "bot", ...Object.values(state.users).map((u) => u.name)]
      .sort((a, b) => b.length - a.length)
      .map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const pattern = new RegExp(`(<at user_id="[^"]*">[^<]*</at>|@(?:${names.join("|")})\\b)`, "i");
    String(text).split(pattern).forEach((part) => {
      const at = /^<at user_id="([^"]*)">([^<]*)<\/at>$/.exec(part);
      if (at) bubble.appendChild(el("span", "md-at", "@" + (at[2] || people()[at[1]] || at[1])));
      else if (part && pattern.test(part)) bubble.appendChild(el("span", "md-at", part));
      else if (part) bubble.appendChild(document.createTextNode(part));
    });
    return bubble;
  }

  function postBubble(content) {
    const post = content.zh_cn || content.en_us || content.ja_jp || Object.values(content)[0] || {};
    const bubble = el("div", "bubble post");
    if (post.title) bubble.appendChild(el("div", "post-title", post.title));
    const ctx = { people: people() };
    (post.content || []).forEach((paragraph) => {
      const p = el("div", "post-paragraph");
      (paragraph || []).forEach((node) => p.appendChild(postNode(node, ctx)));
      bubble.appendChild(p);
    });
    return bubble;
  }

  function postNode(node, ctx) {
    const md = window.FeishuMarkdown;
    switch (node.tag) {
      case "text": {
        const span = el("span", null, node.text || "");
        (node.style || []).forEach((s) => span.classList.add("post-" + String(s).replace(/[^A-Za-z]/g, "")));
        return span;
      }
      case "a": {
        const href = md.safeUrl(node.href);
        if (!href) return el("span", null, node.text || "");
        const a = el("a", "md-link", node.text || node.href);
        a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
        return a;
      }
      case "at": return el("span", "md-at", "@" + (node.user_name || ctx.people[node.user_id] || node.user_id));
      case "img": return md.imageNode(node.image_key, "");
      case "hr": return el("hr", "md-hr");
      case "code_block": {
        const pre = el("pre", "md-code-block");
        pre.appendChild(el("code", null, node.text || ""));
        return pre;
      }
      case "md": return md.render(node.text || "", ctx);
      case "emotion": return el("span", null, md.EMOJI[String(node.emoji_type).toUpperCase()] || `:${node.emoji_type}:`);
      default: return el("span", "fs-unsupported", `[${node.tag}]`);
    }
  }

  function cardBubble(message) {
    const wrap = el("div", "card-wrap");
    const ctx = { people: people(), onAction: (action, node) => click(message, action, node) };
    wrap.appendChild(window.FeishuCard.render(message.content, ctx));
    const bar = el("div", "card-tools");
    const toggle = el("button", "json-toggle", "JSON");
    toggle.type = "button";
    toggle.title = "Show the card JSON Feishu received";
    const open = state.openJson.has(message.message_id);
    toggle.setAttribute("aria-pressed", String(open));
    bar.appendChild(toggle);
    bar.appendChild(el("span", "card-size", `${new Blob([JSON.stringify(message.content)]).size} bytes`));
    wrap.appendChild(bar);
    const raw = jsonBlock(message.content);
    raw.classList.add("card-json");
    raw.hidden = !open;
    wrap.appendChild(raw);
    toggle.addEventListener("click", () => {
      raw.hidden = !raw.hidden;
      toggle.setAttribute("aria-pressed", String(!raw.hidden));
      if (raw.hidden) state.openJson.delete(message.message_id);
      else state.openJson.add(message.message_id);
    });
    return wrap;
  }

  function jsonBlock(value) {
    return el("pre", "json", JSON.stringify(value, null, 2));
  }

  async function click(message, action, node) {
    const operator = $("sender-select").value || Object.keys(state.users)[0];
    if (node) node.classList.add("busy");
    try {
      const shown = await api("/api/action", { message_id: message.message_id, operator, action });
      if (shown.toast) toast(shown.toast.type, shown.toast.content);
      else if (!shown.updated) toast("info", "Callback sent");
    } catch (error) {
      toast("error", String(error.message || error));
    } finally {
      if (node) node.classList.remove("busy");
    }
  }

  // ---- composer ------------------------------------------------------------------------

  async function send(event) {
    if (event) event.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    try {
      upsert(await api("/api/send", { chat_id: state.chatId, sender: $("sender-select").value, text }));
    } catch (error) {
      input.value = text;
      toast("error", String(error.message || error));
    }
  }

  // ---- live updates --------------------------------------------------------------------

  async function poll() {
    for (;;) {
      try {
        const update = await api(`/api/updates?since=${state.seq}&wait=20`);
        state.seq = Math.max(state.seq, update.seq);
        if (update.chats && update.chats.length !== state.chats.length) {
          state.chats = update.chats;
          renderChatList();
        }
        update.messages.forEach(upsert);
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  // ---- long connection -----------------------------------------------------------------

  // The bot's sockets to the sandbox (websocket mode), with the faults a network has:
  // Drop cuts one without a close frame, Half-open keeps it open but silent both ways.
  function renderConnections(connections) {
    const open = connections.filter((c) => c.state === "open").length;
    const halfOpen = connections.length - open;
    $("longconn-summary").textContent = `Long connection: ${open} connected`
      + (halfOpen ? ` · ${halfOpen} half-open` : "");
    const list = $("connection-list");
    list.replaceChildren();
    connections.forEach((conn) => {
      const item = el("li", "connection state-" + conn.state);
      item.dataset.connectionId = conn.id;
      const ping = conn.last_ping ? `last ping ${new Date(conn.last_ping).toLocaleTimeString()}` : "no ping yet";
      const label = el("span", "connection-label", `${conn.id} · ${conn.state}`);
      label.title = `device ${conn.device_id}, connected ${new Date(conn.connected_at).toLocaleTimeString()}, ${ping}`;
      item.appendChild(label);
      [["drop", "Drop"], ["half-open", "Half-open"]].forEach(([fault, text]) => {
        if (fault === "half-open" && conn.state !== "open") return;
        const button = el("button", "connection-fault", text);
        button.type = "button";
        button.dataset.fault = fault;
        button.addEventListener("click", () => injectFault(conn.id, fault));
        item.appendChild(button);
      });
      list.appendChild(item);
    });
  }

  async function injectFault(id, fault) {
    try {
      renderConnections(await api(`/api/connections/${encodeURIComponent(id)}/${fault}`, {}));
    } catch (error) {
      toast("error", String(error.message || error));
    }
  }

  async function watchConnections() {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      try { renderConnections(await api("/api/connections")); } catch (error) { /* retried */ }
    }
  }

  function openPreview() {
    state.view = "preview";
    $("chat-view").hidden = true;
    $("preview-view").hidden = false;
    renderChatList();
  }

  // ---- start ---------------------------------------------------------------------------

  async function start() {
    const initial = await api("/api/state");
    state.bot = initial.bot;
    initial.users.forEach((u) => { state.users[u.open_id] = u; });
    state.chats = initial.chats;
    state.seq = initial.seq;
    initial.messages.forEach((m) => state.messages.set(m.message_id, m));
    if (initial.mode === "websocket") {
      $("bot-status").textContent = "events over the long connection the bot opens";
      $("longconn").hidden = false;
      renderConnections(initial.connections || []);
      watchConnections();
    } else {
      $("bot-status").textContent = initial.bot_url
        ? `events → ${initial.bot_url}${initial.encrypted ? " (encrypted, signed)" : ""}`
        : "no bot URL configured";
    }
    const group = state.chats.find((c) => c.chat_mode !== "p2p") || state.chats[0];
    openChat(group.chat_id);
    $("composer").addEventListener("submit", send);
    $("composer-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
    });
    $("preview-tab").addEventListener("click", openPreview);
    window.SandboxPreview.init({ api, cardBubble });
    document.body.dataset.ready = "true";
    poll();
  }

  start().catch((error) => toast("error", "Cannot load the sandbox: " + error));
})();
