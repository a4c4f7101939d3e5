// Preview mode for template authors: markdown → the cards send_message would send (POST
// /api/preview, the same render path), each with its budget figures against Feishu's limits.
(function (global) {
  "use strict";
  const el = global.FeishuMarkdown.el;
  const $ = (id) => document.getElementById(id);
  let shared = null;
  let requested = 0; // renders asked for; only the latest one's answer is drawn

  function budget(label, value, limit, unit) {
    const item = el("div", "budget" + (value > limit ? " over" : ""));
    item.appendChild(el("span", "budget-label", label));
    const bar = el("span", "budget-bar");
    const fill = el("span", "budget-fill");
    fill.style.width = Math.min(100, (100 * value) / limit).toFixed(1) + "%";
    bar.appendChild(fill);
    item.appendChild(bar);
    const shown = unit ? `${unit(value)} / ${unit(limit)}` : `${value} / ${limit}`;
    item.appendChild(el("span", "budget-value", shown));
    return item;
  }

  // How the user's reply template (--templates-dir) fared: used, or refused / broken with
  // Feishu's answer (code + msg, as im/v1 gives it) and the fallback the bot sends instead.
  function templateNote(template) {
    if (!template || !template.used) return null;
    const error = template.error;
    if (!error) return el("div", "preview-template", `Rendered with your template ${template.used}`);
    const box = el("div", "problem preview-template-error");
    box.appendChild(el("div", "preview-template-file", error.code === null
      ? `Your template ${template.used} is broken:`
      : `Feishu refuses the card your template ${template.used} makes:`));
    box.appendChild(el("code", "preview-feishu-error", error.code === null
      ? error.msg : JSON.stringify({ code: error.code, msg: error.msg })));
    if (template.fallback) {
      box.appendChild(el("div", "preview-fallback",
        "The bot sends this reply with the default reply.json.j2 instead (below) and logs one line naming the file."));
    }
    return box;
  }

  // The typing timer and the Render button can both be in flight: an older answer arriving
  // last must not replace the newer one. data-rendered counts what was drawn, so a test (or
  // a user's script) can wait for *this* render rather than for the previous one's cards.
  async function render() {
    const out = $("preview-output");
    const mine = ++requested;
    let result;
    try {
      result = await shared.api("/api/preview", { markdown: $("preview-input").value });
    } catch (error) {
      if (mine !== requested) return;
      out.replaceChildren(el("div", "problem", String(error.message || error)));
      out.dataset.rendered = String(mine);
      return;
    }
    if (mine !== requested) return;
    out.replaceChildren();
    const kb = (n) => (n / 1024).toFixed(1) + " KB";
    const total = result.cards.length;
    out.appendChild(el("div", "preview-summary", `${total} card${total === 1 ? "" : "s"}`));
    const note = templateNote(result.template);
    if (note) out.appendChild(note);
    result.cards.forEach((item, index) => {
      const section = el("div", "preview-card");
      section.appendChild(el("div", "preview-card-title", `Card ${index + 1} of ${total}`));
      const figures = el("div", "budgets");
      figures.appendChild(budget("bytes", item.bytes, result.limits.bytes, kb));
      figures.appendChild(budget("components", item.components, result.limits.components));
      figures.appendChild(budget("tables", item.tables, result.limits.tables));
      section.appendChild(figures);
      item.problems.forEach((p) => section.appendChild(
        el("div", "problem", `Feishu would refuse it: ${p.code} ${p.path} ${p.message}`)));
      section.appendChild(shared.cardBubble({ message_id: "preview-" + index, content: item.card }));
      out.appendChild(section);
    });
    out.dataset.rendered = String(mine);
  }

  async function loadSamples() {
    const samples = await shared.api("/api/samples");
    const select = $("sample-select");
    samples.forEach((sample, i) => {
      const option = el("option", null, sample.title);
      option.value = String(i);
      select.appendChild(option);
    });
    select.addEventListener("change", () => {
      const sample = samples[Number(select.value)];
      if (sample) { $("preview-input").value = sample.markdown; render(); }
    });
  }

  // shared: {api(path, body), cardBubble(message)} from app.js.
  function init(app) {
    shared = app;
    $("preview-button").addEventListener("click", render);
    let timer = null;
    $("preview-input").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(render, 400);
    });
    return loadSamples();
  }

  global.SandboxPreview = { init };
})(window);
