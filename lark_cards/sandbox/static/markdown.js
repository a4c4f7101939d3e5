// Feishu card markdown (the JSON 2.0 subset, docs/feishu-platform.md §5.6) → DOM nodes.
// Safe by construction: every node is made with createElement/textContent, never innerHTML;
// links must be http(s), images must be uploaded img_ keys, colours come from Feishu's enum.
(function (global) {
  "use strict";

  // Feishu's font colour enum as the client draws it (§5.6 <font color>).
  const FONT_COLORS = {
    red: "#f54a45", green: "#2ea121", blue: "#3370ff", yellow: "#dc9b04",
    orange: "#ff8800", purple: "#7f3bf5", violet: "#d136d1", indigo: "#4954e6",
    turquoise: "#04b49c", carmine: "#f01d94", lime: "#8fac02", wathet: "#049fd7",
    grey: "#8f959e", gray: "#8f959e", default: "", neutral: "#646a73",
  };
  const EMOJI = {
    OK: "👌", DONE: "✅", THUMBSUP: "👍", THUMBSDOWN: "👎", SMILE: "😊", HEART: "❤️",
    CLAP: "👏", FIRE: "🔥", JIAYI: "+1", THINKING: "🤔", WAVE: "👋", MUSCLE: "💪",
    CHECK: "✔️", CROSS: "❌", WARNING: "⚠️", PARTY: "🎉", ROCKET: "🚀", EYES: "👀",
  };
  const NAMED_ENTITIES = {
    amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0", copy: "©",
    reg: "®", trade: "™", hellip: "…", mdash: "—", ndash: "–", middot: "·",
  };
  const PAIRED_TAGS = new Set([
    "font", "text_tag", "a", "at", "link", "person", "local_datetime", "number_tag", "raw",
  ]);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function decodeEntities(text) {
    return text.replace(/&(#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,8});/gi, (match, body) => {
      if (body[0] === "#") {
        const code = body[1] === "x" || body[1] === "X"
          ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : match;
      }
      const named = NAMED_ENTITIES[body.toLowerCase()];
      return named === undefined ? match : named;
    });
  }

  function safeUrl(url) {
    const trimmed = decodeEntities(String(url || "").trim());
    return /^(https?:\/\/|tel:\/\/|mailto:)[^\s<>]+$/i.test(trimmed) ? trimmed : null;
  }

  function safeColor(value) {
    const color = String(value || "").trim().toLowerCase();
    if (Object.prototype.hasOwnProperty.call(FONT_COLORS, color)) return FONT_COLORS[color];
    if (/^rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(,\s*(0|1|0?\.\d+)\s*)?\)$/.test(color)) {
      return color;
    }
    return /^#[0-9a-f]{3}([0-9a-f]{3})?$/.test(color) ? color : "";
  }

  function link(href, children) {
    const a = el("a", "md-link");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    children.forEach((child) => a.appendChild(child));
    return a;
  }

  function imageNode(key, alt) {
    const k = decodeEntities(String(key || "").trim());
    if (!/^img_[A-Za-z0-9_\-]+$/.test(k)) return document.createTextNode(`[image ${k}]`);
    const img = el("img", "md-img");
    img.src = "/api/images/" + encodeURIComponent(k);
    img.alt = alt || "";
    img.title = alt || "";
    return img;
  }

  function parseAttrs(text) {
    const attrs = {};
    const re = /([A-Za-z_][\w-]*)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^\s>'"]+))/g;
    let m;
    while ((m = re.exec(text))) attrs[m[1].toLowerCase()] = m[2] ?? m[3] ?? m[4] ?? "";
    return attrs;
  }

  // ---- inline --------------------------------------------------------------------------

  // A link destination in parentheses; one level of balanced parentheses inside (CommonMark).
  const DESTINATION = String.raw`\(\s*((?:[^()\s]|\([^()\s]*\))+)\s*\)`;
  const IMAGE = new RegExp(`^!\\[([^\\]]*)\\]${DESTINATION}`);
  const LINK = new RegExp(`^\\[((?:[^\\[\\]\\\\]|\\\\.)*)\\]${DESTINATION}`);

  // Index of the closing `</name>` that matches the opening tag ending at `from`.
  function findClose(text, name, from) {
    const re = new RegExp(`<(/?)${name}(?=[\\s>/])[^>]*>`, "gi");
    re.lastIndex = from;
    let depth = 1;
    let m;
    while ((m = re.exec(text))) {
      depth += m[1] ? -1 : 1;
      if (depth === 0) return { start: m.index, end: re.lastIndex };
    }
    return null;
  }

  function renderTag(name, attrs, inner, ctx) {
    const children = () => inline(inner, ctx);
    switch (name) {
      case "font": {
        const span = el("span", "md-font");
        const color = safeColor(attrs.color);
        if (color) span.style.color = color;
        children().forEach((c) => span.appendChild(c));
        return span;
      }
      case "text_tag": {
        const span = el("span", "md-text-tag tag-" + (/^[a-z]+$/.test(attrs.color) ? attrs.color : "neutral"));
        children().forEach((c) => span.appendChild(c));
        return span;
      }
      case "a":
      case "link": {
        const href = safeUrl(attrs.href || attrs.url || attrs.pc_url);
        const kids = inner ? children() : [document.createTextNode(attrs.href || attrs.url || "")];
        return href ? link(href, kids) : wrap(kids);
      }
      case "at":
      case "person": {
        const id = attrs.id || attrs.ids || attrs.email || "";
        const span = el("span", "md-at");
        span.textContent = "@" + (id === "all" ? "all" : (ctx.people && ctx.people[id]) || id);
        return span;
      }
      case "number_tag":
        return el("span", "md-number-tag", decodeEntities(inner));
      case "local_datetime": {
        const ms = Number(attrs.millisecond);
        const date = Number.isFinite(ms) && ms > 0 ? new Date(ms) : new Date();
        return el("span", "md-datetime", date.toLocaleString());
      }
      case "raw":
        return document.createTextNode(inner);
      default:
        return document.createTextNode(inner);
    }
  }

  function wrap(children) {
    const span = el("span");
    children.forEach((c) => span.appendChild(c));
    return span;
  }

  // Inline markdown → an array of nodes. Text leaves get their entities decoded last, so
  // `&#42;` shows a star instead of starting emphasis (the renderer's escaping, §5.6).
  function inline(text, ctx) {
    const out = [];
    let buffer = "";
    const flush = () => {
      if (buffer) out.push(document.createTextNode(decodeEntities(buffer)));
      buffer = "";
    };
    const push = (node) => { flush(); out.push(node); };
    let i = 0;
    while (i < text.length) {
      const rest = text.slice(i);
      const ch = text[i];
      let m;
      if (ch === "\\" && /^\\[!-\/:-@\[-`{-~]/.test(rest)) {
        buffer += rest[1]; i += 2; continue;
      }
      if (ch === "\n") { push(el("br")); i += 1; continue; }
      if (ch === "`" && (m = /^(`+)([\s\S]*?[^`])\1(?!`)/.exec(rest))) {
        push(el("code", "md-code-inline", m[2].trim() ? m[2].replace(/^ (.*) $/, "$1") : m[2]));
        i += m[0].length; continue;
      }
      if (ch === "<") {
        if ((m = /^<br\s*\/?>/i.exec(rest))) { push(el("br")); i += m[0].length; continue; }
        if ((m = /^<hr\s*\/?>/i.exec(rest))) { push(el("hr", "md-hr")); i += m[0].length; continue; }
        if ((m = /^<([a-z_]+)((?:\s[^<>]*)?)>/i.exec(rest)) && PAIRED_TAGS.has(m[1].toLowerCase())) {
          const name = m[1].toLowerCase();
          const close = findClose(text, name, i + m[0].length);
          if (close) {
            const inner = text.slice(i + m[0].length, close.start);
            push(renderTag(name, parseAttrs(m[2]), inner, ctx));
            i = close.end; continue;
          }
        }
      }
      if (ch === "!" && (m = IMAGE.exec(rest))) {
        push(imageNode(m[2], decodeEntities(m[1]))); i += m[0].length; continue;
      }
      if (ch === "[" && (m = LINK.exec(rest))) {
        const href = safeUrl(m[2]);
        const kids = inline(m[1], ctx);
        push(href ? link(href, kids) : wrap(kids)); i += m[0].length; continue;
      }
      if ((ch === "h") && (i === 0 || /[\s(]/.test(text[i - 1])) && (m = /^https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/.exec(rest))) {
        const shown = document.createTextNode(decodeEntities(m[0]));
        push(safeUrl(m[0]) ? link(safeUrl(m[0]), [shown]) : shown); i += m[0].length; continue;
      }
      if (ch === ":" && (m = /^:([A-Za-z_]+):/.exec(rest)) && EMOJI[m[1].toUpperCase()]) {
        buffer += EMOJI[m[1].toUpperCase()]; i += m[0].length; continue;
      }
      const emphasis = matchEmphasis(text, i, ctx);
      if (emphasis) { push(emphasis.node); i = emphasis.end; continue; }
      buffer += ch;
      i += 1;
    }
    flush();
    return out;
  }

  // Emphasis by delimiter runs: `*x*`/`_x_` em, `**x**`/`__x__` strong, `***x***` both,
  // `~~x~~` strike. A run closes only with a run of the same length, and `_` only at word
  // edges (snake_case stays text), close to CommonMark's flanking rules.
  function matchEmphasis(text, i, ctx) {
    const ch = text[i];
    if (ch !== "*" && ch !== "_" && ch !== "~") return null;
    let run = 1;
    while (text[i + run] === ch) run += 1;
    if ((ch === "~" && run !== 2) || run > 3) return null;
    const after = text[i + run];
    if (!after || /\s/.test(after)) return null;
    if (ch === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1])) return null;
    const delim = ch.repeat(run);
    let j = i + run;
    while ((j = text.indexOf(delim, j)) >= 0) {
      let len = 0;
      while (text[j + len] === ch) len += 1;
      const closes = len === run && text[j - 1] !== "\\" && !/\s/.test(text[j - 1])
        && !(ch === "_" && /[\p{L}\p{N}]/u.test(text[j + run] || ""));
      if (closes) {
        const inner = inline(text.slice(i + run, j), ctx);
        let node;
        if (ch === "~") node = el("del", "md-del");
        else if (run === 1) node = el("em", "md-em");
        else node = el("strong", "md-strong");
        if (run === 3) {
          const em = el("em", "md-em");
          inner.forEach((c) => em.appendChild(c));
          node.appendChild(em);
        } else {
          inner.forEach((c) => node.appendChild(c));
        }
        return { node, end: j + run };
      }
      j += len;
    }
    return null;
  }

  // ---- blocks --------------------------------------------------------------------------

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
  const HR = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|<hr\s*\/?>)\s*$/i;
  const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
  const QUOTE = /^ {0,3}> ?/;
  const LIST_ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
  const DELIMITER_ROW = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function indentOf(line) {
    return line.replace(/\t/g, "    ").match(/^ */)[0].length;
  }

  function isTableStart(lines, i) {
    return lines[i].includes("|") && i + 1 < lines.length
      && lines[i + 1].includes("|") && DELIMITER_ROW.test(lines[i + 1]);
  }

  function startsBlock(lines, i) {
    const line = lines[i];
    return FENCE.test(line) || HR.test(line) || HEADING.test(line) || QUOTE.test(line)
      || LIST_ITEM.test(line) || isTableStart(lines, i);
  }

  function splitRow(line) {
    let row = line.trim();
    if (row.startsWith("|")) row = row.slice(1);
    if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
    const cells = [];
    let cell = "";
    for (let i = 0; i < row.length; i += 1) {
      if (row[i] === "\\" && row[i + 1] === "|") { cell += "|"; i += 1; }
      else if (row[i] === "|") { cells.push(cell.trim()); cell = ""; }
      else cell += row[i];
    }
    cells.push(cell.trim());
    return cells;
  }

  function parseTable(lines, i, ctx, container) {
    const header = splitRow(lines[i]);
    const aligns = splitRow(lines[i + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : "left");
    const rows = [];
    let j = i + 2;
    while (j < lines.length && lines[j].trim() && lines[j].includes("|")) {
      rows.push(splitRow(lines[j]));
      j += 1;
    }
    const columns = header.map((name, k) => ({
      name: "c" + k, display_name: name, horizontal_align: aligns[k] || "left", data_type: "lark_md",
    }));
    const data = rows.map((cells) => Object.fromEntries(columns.map((c, k) => [c.name, cells[k] || ""])));
    // Feishu pages markdown tables at 5 data rows, not configurable (§5.4).
    container.appendChild(global.FeishuTable.build(columns, data, 5, ctx, { header_style: { bold: true } }));
    return j;
  }

  function parseList(lines, i, ctx, container) {
    const base = indentOf(lines[i]);
    let list = null;
    let item = null;
    let children = [];
    const closeItem = () => {
      if (item && children.length) renderBlocks(children, ctx, item);
      children = [];
    };
    let j = i;
    for (; j < lines.length; j += 1) {
      const line = lines[j];
      if (!line.trim()) {
        const next = lines.slice(j + 1).find((l) => l.trim());
        if (next !== undefined && indentOf(next) > base) { children.push(""); continue; }
        if (next !== undefined && LIST_ITEM.test(next) && indentOf(next) === base) continue;
        break;
      }
      const m = LIST_ITEM.exec(line);
      const indent = indentOf(line);
      if (m && indent === base) {
        const ordered = /\d/.test(m[2]);
        closeItem();
        if (!list || (list.tagName === "OL") !== ordered) {
          list = el(ordered ? "ol" : "ul", "md-list");
          if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
          container.appendChild(list);
        }
        item = el("li");
        inline(m[3], ctx).forEach((c) => item.appendChild(c));
        list.appendChild(item);
      } else if (indent > base && item) {
        children.push(line.replace(/\t/g, "    ").slice(Math.min(indent, base + 4)));
      } else if (item && !startsBlock(lines, j)) {
        item.appendChild(el("br"));
        inline(line.trim(), ctx).forEach((c) => item.appendChild(c));
      } else {
        break;
      }
    }
    closeItem();
    return j;
  }

  function renderBlocks(lines, ctx, container) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i += 1; continue; }
      if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const body = [];
        i += 1;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) { body.push(lines[i]); i += 1; }
        i += 1;
        const pre = el("pre", "md-code-block");
        if (m[2]) pre.dataset.lang = m[2].toLowerCase();
        pre.appendChild(el("code", null, body.join("\n")));
        container.appendChild(pre);
      } else if (HR.test(line)) {
        container.appendChild(el("hr", "md-hr"));
        i += 1;
      } else if ((m = HEADING.exec(line))) {
        const h = el("h" + m[1].length, "md-h md-h" + m[1].length);
        inline(m[2], ctx).forEach((c) => h.appendChild(c));
        container.appendChild(h);
        i += 1;
      } else if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && QUOTE.test(lines[i])) { body.push(lines[i].replace(QUOTE, "")); i += 1; }
        const quote = el("blockquote", "md-quote");
        renderBlocks(body, ctx, quote);
        container.appendChild(quote);
      } else if (isTableStart(lines, i)) {
        i = parseTable(lines, i, ctx, container);
      } else if (LIST_ITEM.test(line)) {
        i = parseList(lines, i, ctx, container);
      } else {
        const body = [line.trim()];
        i += 1;
        while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) { body.push(lines[i].trim()); i += 1; }
        const p = el("p", "md-p");
        inline(body.join("\n"), ctx).forEach((c) => p.appendChild(c));
        container.appendChild(p);
      }
    }
    return container;
  }

  function renderMarkdown(text, ctx) {
    return renderBlocks(String(text || "").replace(/\r\n?/g, "\n").split("\n"), ctx || {}, el("div", "md"));
  }

  global.FeishuMarkdown = { render: renderMarkdown, inline, el, safeUrl, safeColor, decodeEntities, imageNode, EMOJI };
})(window);
