// The search page. Everything that comes from the pages goes into the DOM with textContent (never parsed
// as markup), so HTML or Markdown in the corpus shows as text; links get only http(s) URLs.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask");
  const input = $("q");
  const pageSelect = $("page");
  const button = $("go");
  const buttonLabel = $("go-label");
  const statusBox = $("status-box");
  const statusLine = $("status");
  const retry = $("retry");
  const output = $("output");
  let lastPayload = null;
  let feedbackId = null;

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

  function setStatus(text, isError, canRetry) {
    statusLine.textContent = text || "";
    statusBox.classList.toggle("error", Boolean(isError));
    statusLine.classList.toggle("error", Boolean(isError));
    statusLine.setAttribute("role", isError ? "alert" : "status");
    retry.hidden = !canRetry;
  }

  function setBusy(busy) {
    button.disabled = busy;
    button.classList.toggle("busy", busy);
    buttonLabel.textContent = busy ? "Asking\u2026" : "Ask";
    output.setAttribute("aria-busy", busy ? "true" : "false");
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

    function citeLink(cite) {
      const a = link(cite.link || cite.url, "[" + cite.n + "]", "cite");
      a.title = cite.page_name + " \u2014 " + cite.section_title;
      a.setAttribute("aria-label", "Source " + cite.n + ": " + cite.section_title + ", " + cite.page_name);
      return a;
    }

    const blocks = data.found && Array.isArray(data.blocks) ? data.blocks : [];
    if (blocks.length) {
      // The quoted structure: a paragraph stays a paragraph, a list a list, table rows rows (all as text).
      for (const block of blocks) {
        const lines = (block.lines || []).map(String);
        let node;
        if (block.kind === "list" || block.kind === "rows") {
          node = el("ul", block.kind === "list" ? "answer-list" : "answer-rows");
          for (const line of lines) {
            // An item keeps its nested items on the lines below it; the "- " markers become the list's.
            const item = line.split("\n").map((l, i) => (i ? l.replace(/^(\s*)[-\u2022*\u2013]\s+/, "$1\u2022 ")
              : l.replace(/^\s*[-\u2022*\u2013]\s+/, ""))).join("\n");
            node.appendChild(el("li", null, item));
          }
        } else {
          node = el("p", "answer-para", lines.join(" "));
        }
        const cite = block.n ? byNumber.get(Number(block.n)) : undefined;
        if (cite) {
          const last = node.lastElementChild || node;
          last.appendChild(document.createTextNode(" "));
          last.appendChild(citeLink(cite));
        }
        text.appendChild(node);
      }
    } else {
      // Split on [n] markers: text stays text, each marker becomes a link to the quoted passage on its page.
      const parts = String(data.text || "").split(/(\[\d+\])/);
      for (const part of parts) {
        const match = /^\[(\d+)\]$/.exec(part);
        const cite = match ? byNumber.get(Number(match[1])) : undefined;
        if (cite) {
          text.appendChild(citeLink(cite));
        } else if (part) {
          text.appendChild(document.createTextNode(part));
        }
      }
    }
    text.classList.toggle("not-found", !data.found);

    for (const c of data.citations || []) {
      const item = el("li");
      item.value = c.n;
      item.appendChild(link(c.link || c.url, c.section_title || c.page_name, "source-title"));
      item.appendChild(el("span", "source-page", " \u2014 " + c.page_name));
      sources.appendChild(item);
    }
    sources.hidden = !(data.citations || []).length;

    const notes = [];
    if (!data.found) notes.push("The closest sections are listed below.");
    if (data.warning) notes.push(data.warning);
    note.textContent = notes.join(" ");
    note.hidden = notes.length === 0;
    renderFeedback(data.log_id);
    box.hidden = false;
  }

  function renderFeedback(logId) {
    feedbackId = logId || null;
    const box = $("feedback");
    box.hidden = !feedbackId;
    for (const id of ["helpful-yes", "helpful-no"]) {
      $(id).disabled = false;
      $(id).setAttribute("aria-pressed", "false");
    }
    const status = $("feedback-status");
    status.textContent = "";
    status.classList.remove("error");
  }

  async function sendFeedback(helpful) {
    if (!feedbackId) return;
    const status = $("feedback-status");
    const yes = $("helpful-yes");
    const no = $("helpful-no");
    yes.disabled = no.disabled = true;
    try {
      const response = await fetch("/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ id: feedbackId, helpful: helpful }),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok || !data.recorded) throw new Error(data.detail || "not recorded");
      (helpful ? yes : no).setAttribute("aria-pressed", "true");
      status.classList.remove("error");
      status.textContent = helpful
        ? "Thanks \u2014 glad it helped."
        : "Thanks \u2014 the site team will see that this answer did not help.";
    } catch (_) {
      yes.disabled = no.disabled = false;
      status.classList.add("error");
      status.textContent = "Your feedback could not be sent. Try again in a moment.";
    }
  }

  // The hit's text with the parts the answer quotes wrapped in <mark>, all as text nodes.
  function markedText(text, spans) {
    const body = el("p", "hit-text");
    let position = 0;
    const ordered = (spans || []).slice().sort((a, b) => a.start - b.start);
    for (const span of ordered) {
      const start = Math.max(span.start, position);
      const end = Math.min(span.end, text.length);
      if (end <= start) continue;
      if (start > position) body.appendChild(document.createTextNode(text.slice(position, start)));
      body.appendChild(el("mark", null, text.slice(start, end)));
      position = end;
    }
    if (position < text.length) body.appendChild(document.createTextNode(text.slice(position)));
    return body;
  }

  function alsoOn(hit) {
    const places = hit.also_on || [];
    const details = el("details", "also-on");
    details.appendChild(el("summary", null, "Appears on " + (places.length + 1) + " pages"));
    const list = el("ul");
    for (const place of places) {
      const item = el("li");
      item.appendChild(link(place.url, place.page_name, "also-link"));
      if (place.section_title) item.appendChild(el("span", "source-page", " \u2014 " + place.section_title));
      list.appendChild(item);
    }
    details.appendChild(list);
    return details;
  }

  function renderHits(hits, citations) {
    const list = $("hits");
    list.replaceChildren();
    const citedAs = new Map();
    for (const c of citations || []) {
      if (!citedAs.has(c.chunk_id)) citedAs.set(c.chunk_id, []);
      citedAs.get(c.chunk_id).push(c.n);
    }
    for (const hit of hits) {
      const text = String(hit.text);
      const quoted = hit.quoted || [];
      const item = el("li", "card hit");
      const head = el("div", "hit-head");
      head.appendChild(link(hit.link || hit.url, hit.section_title || hit.page_name, "hit-title"));
      const numbers = citedAs.get(hit.chunk_id);
      if (numbers) {
        item.classList.add("cited");
        head.appendChild(el("span", "cited-as", "cited " + numbers.map((n) => "[" + n + "]").join("")));
      }
      item.appendChild(head);

      const meta = el("div", "hit-meta");
      meta.appendChild(el("span", "hit-page", hit.page_name));
      if ((hit.also_on || []).length > 0) meta.appendChild(alsoOn(hit));
      item.appendChild(meta);

      const body = markedText(text, quoted);
      item.appendChild(body);
      // A quoted section stays open so its highlighted sentence is visible; long others are clamped.
      if (text.length > 360 && quoted.length === 0) {
        body.classList.add("clamped");
        const more = el("button", "more", "Show more");
        more.type = "button";
        more.setAttribute("aria-expanded", "false");
        more.addEventListener("click", () => {
          const clamped = body.classList.toggle("clamped");
          more.textContent = clamped ? "Show more" : "Show less";
          more.setAttribute("aria-expanded", clamped ? "false" : "true");
        });
        item.appendChild(more);
      }
      list.appendChild(item);
    }
    $("results").hidden = hits.length === 0;
  }

  async function send(payload) {
    lastPayload = payload;
    setBusy(true);
    setStatus("Searching the pages\u2026");
    try {
      const response = await fetch("/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const busy = response.status === 503 || response.status >= 500;
        setStatus(data.detail || "The search failed (" + response.status + ").", true, busy);
        return;
      }
      renderAnswer(data);
      renderHits(data.hits || [], data.citations || []);
      const count = (data.hits || []).length;
      setStatus(
        count + (count === 1 ? " section" : " sections") + " found in " + Math.round(data.took_ms) + " ms" +
          (payload.page ? " on \u201c" + payload.page + "\u201d" : "") + "."
      );
      // Keyboard and screen-reader users land on the answer; Tab then reaches its sources.
      $("answer-h").focus();
    } catch (_) {
      setStatus("The server could not be reached. Check your connection and try again.", true, true);
    } finally {
      setBusy(false);
    }
  }

  function ask(event) {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) {
      setStatus("Type a question first.", true);
      input.focus();
      return;
    }
    const payload = { question: question, k: 5 };
    if (pageSelect.value) payload.page = pageSelect.value;
    send(payload);
  }

  form.addEventListener("submit", ask);
  retry.addEventListener("click", () => {
    if (lastPayload) send(lastPayload);
  });
  $("helpful-yes").addEventListener("click", () => sendFeedback(true));
  $("helpful-no").addEventListener("click", () => sendFeedback(false));
  loadPages();
})();
