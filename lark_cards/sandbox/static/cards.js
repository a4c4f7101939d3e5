// Feishu card JSON (2.0, and 1.0 where cheap) → DOM, drawn the way the Feishu client draws it:
// header colour templates, markdown, div, hr, img, column_set, paginated tables, buttons whose
// clicks become real card callbacks, collapsible panels, forms. Unknown components show the
// client's "upgrade" placeholder instead of disappearing.
(function (global) {
  "use strict";
  const md = global.FeishuMarkdown;
  const el = md.el;

  // ---- tables (native `table` component §5.5, and markdown pipe tables) -----------------

  function formatNumber(value, format) {
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value ?? "");
    const precision = format && Number.isInteger(format.precision) ? format.precision : undefined;
    let text = precision === undefined ? String(n) : n.toFixed(precision);
    if (format && format.separator) {
      const [whole, frac] = text.split(".");
      text = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac ? "." + frac : "");
    }
    return (format && format.symbol ? format.symbol : "") + text;
  }

  function cell(value, column, ctx) {
    const td = el("td");
    const type = column.data_type || "text";
    if (column.horizontal_align) td.style.textAlign = column.horizontal_align;
    if (column.vertical_align) td.style.verticalAlign = column.vertical_align;
    if (type === "markdown" || type === "lark_md") {
      td.appendChild(md.render(String(value ?? ""), ctx));
    } else if (type === "number") {
      td.textContent = formatNumber(value, column.format);
      td.style.textAlign = column.horizontal_align || "right";
    } else if (type === "options") {
      (Array.isArray(value) ? value : [value]).forEach((option) => {
        const text = option && typeof option === "object" ? option.text : option;
        const color = option && typeof option === "object" ? option.color : "neutral";
        td.appendChild(el("span", "md-text-tag tag-" + (/^[a-z]+$/.test(color) ? color : "neutral"), String(text ?? "")));
      });
    } else if (type === "persons") {
      (Array.isArray(value) ? value : [value]).forEach((id) =>
        td.appendChild(el("span", "md-at", "@" + ((ctx.people && ctx.people[id]) || id))));
    } else if (type === "date") {
      const date = new Date(Number(value));
      td.textContent = Number.isFinite(date.getTime()) ? date.toLocaleDateString() : String(value ?? "");
    } else {
      td.textContent = String(value ?? "");
    }
    return td;
  }

  function buildTable(columns, rows, pageSize, ctx, options) {
    const opts = options || {};
    const wrapper = el("div", "fs-table");
    const scroller = el("div", "fs-table-scroll");
    const table = el("table");
    const head = el("tr");
    const style = opts.header_style || {};
    columns.forEach((column) => {
      const th = el("th", null, column.display_name ?? column.name ?? "");
      if (style.bold === false) th.style.fontWeight = "normal";
      if (style.background_style === "none") th.classList.add("plain");
      th.style.textAlign = style.text_align || column.horizontal_align || "left";
      if (column.width && /^\d+(px|%)$/.test(column.width)) th.style.width = column.width;
      head.appendChild(th);
    });
    const thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    const tbody = el("tbody");
    table.appendChild(tbody);
    const drawRow = (row) => {
      const tr = el("tr");
      columns.forEach((column) => tr.appendChild(cell(row ? row[column.name] : "", column, ctx)));
      return tr;
    };
    if (opts.freeze_first_column) table.classList.add("freeze-first");
    scroller.appendChild(table);
    wrapper.appendChild(scroller);

    const size = Math.max(1, Math.min(10, Number(pageSize) || 5));
    const pages = Math.max(1, Math.ceil(rows.length / size));
    const pager = el("div", "fs-table-pager");
    const prev = el("button", "pager-prev", "‹");
    const label = el("span", "pager-label");
    const next = el("button", "pager-next", "›");
    prev.type = next.type = "button";
    pager.append(prev, label, next);
    let page = 0;
    const draw = () => {
      tbody.replaceChildren();
      rows.slice(page * size, page * size + size).forEach((row) => tbody.appendChild(drawRow(row)));
      label.textContent = `${page + 1} / ${pages}`;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      wrapper.dataset.page = String(page + 1);
    };
    prev.addEventListener("click", () => { if (page > 0) { page -= 1; draw(); } });
    next.addEventListener("click", () => { if (page < pages - 1) { page += 1; draw(); } });
    draw();
    if (pages > 1) {
      // Every row of every page, collapsed: they size the columns (CSS 2 §17.5.5) but never
      // show, so the columns keep their widths from page to page as in the Feishu client.
      const sizer = el("tfoot", "fs-table-sizer");
      sizer.setAttribute("aria-hidden", "true");
      rows.forEach((row) => sizer.appendChild(drawRow(row)));
      table.appendChild(sizer);
      wrapper.appendChild(pager);
    }
    wrapper.dataset.pages = String(pages);
    return wrapper;
  }

  global.FeishuTable = { build: buildTable };

  // ---- text objects --------------------------------------------------------------------

  function textNode(text, ctx, block) {
    if (!text || typeof text !== "object") return el("span");
    const content = String(text.content ?? "");
    let node;
    if (text.tag === "lark_md" || text.tag === "markdown") {
      node = block ? md.render(content, ctx) : el("span");
      if (!block) md.inline(content, ctx).forEach((c) => node.appendChild(c));
    } else {
      node = el(block ? "div" : "span", "plain-text", content);
    }
    const color = md.safeColor(text.text_color);
    if (color) node.style.color = color;
    if (text.text_align) node.style.textAlign = text.text_align;
    if (text.text_size) node.classList.add("size-" + String(text.text_size).replace(/[^a-z_]/g, ""));
    return node;
  }

  // ---- components (§5.5) ---------------------------------------------------------------

  const RENDER = {
    markdown(element, ctx) {
      const node = md.render(element.content, ctx);
      node.classList.add("fs-markdown");
      if (element.text_align) node.style.textAlign = element.text_align;
      if (element.text_size) node.classList.add("size-" + String(element.text_size).replace(/[^a-z_]/g, ""));
      return node;
    },
    div(element, ctx) {
      const node = el("div", "fs-div");
      if (element.text) node.appendChild(textNode(element.text, ctx, true));
      if (Array.isArray(element.fields)) {
        const grid = el("div", "fs-fields");
        element.fields.forEach((field) => {
          const f = el("div", field.is_short ? "fs-field short" : "fs-field");
          f.appendChild(textNode(field.text, ctx, true));
          grid.appendChild(f);
        });
        node.appendChild(grid);
      }
      return node;
    },
    hr() { return el("hr", "fs-hr"); },
    img(element) {
      const figure = el("div", "fs-img");
      const alt = element.alt && element.alt.content ? element.alt.content : "";
      const img = md.imageNode(element.img_key, alt);
      if (element.size === "small") figure.classList.add("small");
      figure.appendChild(img);
      if (element.title) figure.appendChild(textNode(element.title, {}, true));
      return figure;
    },
    img_combination(element) {
      const grid = el("div", "fs-img-combination");
      (element.img_list || []).forEach((image) => grid.appendChild(md.imageNode(image.img_key, "")));
      return grid;
    },
    table(element, ctx) {
      return buildTable(element.columns || [], element.rows || [], element.page_size || 5, ctx, element);
    },
    column_set(element, ctx) {
      const set = el("div", "fs-column-set");
      if (element.background_style && element.background_style !== "default") set.classList.add("bg-" + element.background_style.replace(/[^a-z_-]/g, ""));
      (element.columns || []).forEach((column) => {
        const col = el("div", "fs-column");
        if (column.width === "weighted") col.style.flex = `${Number(column.weight) || 1} 1 0`;
        else if (/^\d+px$/.test(column.width || "")) col.style.flex = `0 0 ${column.width}`;
        else col.style.flex = "0 1 auto";
        if (column.vertical_align) col.style.alignSelf = { top: "flex-start", center: "center", bottom: "flex-end" }[column.vertical_align] || "";
        renderElements(column.elements || [], ctx, col);
        set.appendChild(col);
      });
      return set;
    },
    button(element, ctx) {
      const button = el("button", "fs-button type-" + String(element.type || "default").replace(/[^a-z_]/g, ""));
      button.type = "button";
      const text = element.text ? element.text.content : "Button";
      button.textContent = String(text ?? "");
      if (element.size) button.classList.add("size-" + String(element.size).replace(/[^a-z]/g, ""));
      if (element.width === "fill") button.classList.add("fill");
      if (element.disabled) button.disabled = true;
      button.addEventListener("click", () => act(element, ctx, button));
      return button;
    },
    collapsible_panel(element, ctx) {
      const details = el("details", "fs-panel");
      if (element.expanded) details.open = true;
      const summary = el("summary");
      const title = element.header && element.header.title;
      summary.appendChild(textNode(title || { tag: "plain_text", content: "" }, ctx, false));
      details.appendChild(summary);
      renderElements(element.elements || [], ctx, details);
      return details;
    },
    interactive_container(element, ctx) {
      const box = el("div", "fs-container" + (element.has_border ? " bordered" : ""));
      renderElements(element.elements || [], ctx, box);
      if ((element.behaviors || []).length) {
        box.classList.add("clickable");
        box.addEventListener("click", () => act(element, ctx, box));
      }
      return box;
    },
    form(element, ctx) {
      const form = el("form", "fs-form");
      form.dataset.name = element.name || "";
      form.addEventListener("submit", (event) => event.preventDefault());
      renderElements(element.elements || [], { ...ctx, form }, form);
      return form;
    },
    input(element) {
      const input = el("input", "fs-input");
      input.name = element.name || "";
      input.placeholder = element.placeholder ? String(element.placeholder.content ?? "") : "";
      input.value = element.default_value || "";
      return input;
    },
    person(element, ctx) {
      return el("span", "md-at", "@" + ((ctx.people && ctx.people[element.user_id]) || element.user_id || ""));
    },
    // Card JSON 1.0 containers, drawn so that old cards still show.
    action(element, ctx) {
      const row = el("div", "fs-action-row");
      renderElements(element.actions || [], ctx, row);
      return row;
    },
    note(element, ctx) {
      const note = el("div", "fs-note");
      renderElements(element.elements || [], ctx, note);
      return note;
    },
    plain_text(element, ctx) { return textNode(element, ctx, false); },
    lark_md(element, ctx) { return textNode(element, ctx, false); },
  };

  // A click: callback behaviors become a real card.action.trigger (§6.1); open_url opens.
  function act(element, ctx, node) {
    const confirm = element.confirm;
    if (confirm && !global.confirm(`${confirm.title ? confirm.title.content : ""}\n${confirm.text ? confirm.text.content : ""}`)) return;
    let behaviors = element.behaviors || [];
    if (!behaviors.length && element.value !== undefined) behaviors = [{ type: "callback", value: element.value }];
    if (!behaviors.length && element.url) behaviors = [{ type: "open_url", default_url: element.url }];
    behaviors.forEach((behavior) => {
      if (behavior.type === "open_url") {
        const url = md.safeUrl(behavior.pc_url || behavior.default_url);
        if (url) global.open(url, "_blank", "noopener");
      } else if (behavior.type === "callback" && ctx.onAction) {
        const action = { tag: element.tag || "button", value: behavior.value ?? {} };
        if (element.name) action.name = element.name;
        if (ctx.form && element.form_action_type === "submit") {
          action.form_value = Object.fromEntries(new FormData(ctx.form).entries());
        }
        ctx.onAction(action, node);
      }
    });
  }

  function renderElement(element, ctx) {
    if (!element || typeof element !== "object") return el("span");
    const render = RENDER[element.tag];
    if (!render) {
      // What the Feishu client shows for a component it cannot draw.
      return el("div", "fs-unsupported", `Unsupported component "${String(element.tag)}": please upgrade to the latest Feishu version`);
    }
    const node = render(element, ctx);
    if (element.element_id && node.dataset) node.dataset.elementId = String(element.element_id);
    if (element.margin && /^[\d\spx-]+$/.test(element.margin)) node.style.margin = element.margin;
    return node;
  }

  function renderElements(elements, ctx, container) {
    elements.forEach((element) => container.appendChild(renderElement(element, ctx)));
    return container;
  }

  function renderHeader(header, ctx) {
    const template = /^[a-z]+$/.test(header.template || "") ? header.template : "default";
    const node = el("div", "fs-card-header tpl-" + template);
    node.dataset.template = template;
    const title = el("div", "fs-card-title");
    if (header.title) title.appendChild(textNode(header.title, ctx, false));
    (header.text_tag_list || []).forEach((tag) => {
      const color = /^[a-z]+$/.test(tag.color || "") ? tag.color : "neutral";
      title.appendChild(el("span", "md-text-tag tag-" + color, tag.text ? String(tag.text.content ?? "") : ""));
    });
    node.appendChild(title);
    if (header.subtitle) {
      const subtitle = el("div", "fs-card-subtitle");
      subtitle.appendChild(textNode(header.subtitle, ctx, false));
      node.appendChild(subtitle);
    }
    return node;
  }

  // The whole card. ctx: {people: {open_id: name}, onAction(action, node)}.
  function renderCard(card, ctx) {
    const node = el("div", "fs-card");
    if (!card || typeof card !== "object") return node;
    const config = card.config || {};
    if (config.width_mode === "compact") node.classList.add("compact");
    if (config.width_mode === "fill") node.classList.add("fill");
    if (card.schema === "2.0") node.dataset.schema = "2.0";
    if (card.header) node.appendChild(renderHeader(card.header, ctx));
    const body = el("div", "fs-card-body");
    const elements = card.schema === "2.0" ? (card.body && card.body.elements) || [] : card.elements || [];
    renderElements(elements, ctx, body);
    if (card.body && card.body.padding && /^[\d\spx]+$/.test(card.body.padding)) body.style.padding = card.body.padding;
    node.appendChild(body);
    const link = card.card_link && md.safeUrl(card.card_link.pc_url || card.card_link.url);
    if (link) {
      node.classList.add("linked");
      node.title = link;
    }
    return node;
  }

  global.FeishuCard = { render: renderCard, renderElement };
})(window);
