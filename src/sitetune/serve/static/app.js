// The search page. Everything that comes from the pages goes into the DOM with textContent (never parsed
// as markup), so HTML or Markdown in the corpus shows as text; links get only http(s) URLs.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask");
  const input = $("q");
  const pageSelect = $("page");
  const button = $("go");
  const statusLine = $("status");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(url, text, className) {
    const href = safeUrl(url);
    if (!href) return el("span", className, text);
    const a = el("a", className, text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function setStatus(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error", Boolean(isError));
  }

  async function loadPages() {
    try {
      const response = await fetch("/pages", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      for (const name of data.pages || []) {
        const option = el("option", null, name);
        option.value = name;
        pageSelect.appendChild(option);
      }
    } catch (_) {
      // The filter is optional: searching still works over every page.
    }
  }

  function renderAnswer(data) {
    const box = $("answer");
    const text = $("answer-text");
    const sources = $("sources");
    const note = $("answer-note");
    text.replaceChildren();
    sources.replaceChildren();
    const byNumber = new Map((data.citations || []).map((c) => [c.n, c]));

    // Split on [n] markers: text stays text, each marker becomes a link to its cited section.
    const parts = String(data.text || "").split(/(\[\d+\])/);
    for (const part of parts) {
      const match = /^\[(\d+)\]$/.exec(part);
      const cite = match ? byNumber.get(Number(match[1])) : undefined;
      if (cite) {
        const a = link(cite.url, "[" + cite.n + "]", "cite");
        a.title = cite.page_name + " \u2014 " + cite.section_title;
        text.appendChild(a);
      } else if (part) {
        text.appendChild(document.createTextNode(part));
      }
    }
    text.classList.toggle("not-found", !data.found);

    for (const c of data.citations || []) {
      const item = el("li");
      item.value = c.n;
      item.appendChild(link(c.url, c.section_title, "source-title"));
      item.appendChild(el("span", "source-page", " \u2014 " + c.page_name));
      sources.appendChild(item);
    }
    sources.hidden = !(data.citations || []).length;

    const notes = [];
    if (!data.found) notes.push("The closest sections are listed below.");
    if (data.warning) notes.push(data.warning);
    note.textContent = notes.join(" ");
    note.hidden = notes.length === 0;
    box.hidden = false;
  }

  function renderHits(hits) {
    const list = $("hits");
    list.replaceChildren();
    for (const hit of hits) {
      const item = el("li", "card hit");
      const head = el("div", "hit-head");
      head.appendChild(link(hit.url, hit.section_title || hit.page_name, "hit-title"));
      item.appendChild(head);

      const meta = el("div", "hit-meta");
      meta.appendChild(el("span", "hit-page", hit.page_name));
      const others = (hit.also_on || []).length;
      if (others > 0) {
        const badge = el("span", "badge", "also on " + others + (others === 1 ? " page" : " pages"));
        badge.title = hit.also_on.map((p) => p.page_name).join("\n");
        meta.appendChild(badge);
      }
      item.appendChild(meta);

      const body = el("p", "hit-text", hit.text);
      item.appendChild(body);
      if (String(hit.text).length > 360) {
        body.classList.add("clamped");
        const more = el("button", "more", "Show more");
        more.type = "button";
        more.addEventListener("click", () => {
          const clamped = body.classList.toggle("clamped");
          more.textContent = clamped ? "Show more" : "Show less";
        });
        item.appendChild(more);
      }
      list.appendChild(item);
    }
    $("results").hidden = hits.length === 0;
  }

  async function ask(event) {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) {
      setStatus("Type a question first.", true);
      input.focus();
      return;
    }
    const payload = { question: question, k: 5 };
    if (pageSelect.value) payload.page = pageSelect.value;
    button.disabled = true;
    setStatus("Searching the pages\u2026");
    try {
      const response = await fetch("/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        setStatus(data.detail || "The search failed (" + response.status + ").", true);
        return;
      }
      renderAnswer(data);
      renderHits(data.hits || []);
      const count = (data.hits || []).length;
      setStatus(
        count + (count === 1 ? " section" : " sections") + " found in " + Math.round(data.took_ms) + " ms" +
          (pageSelect.value ? " on \u201c" + pageSelect.value + "\u201d" : "") + "."
      );
    } catch (_) {
      setStatus("The server could not be reached. Try again in a moment.", true);
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("submit", ask);
  loadPages();
})();
