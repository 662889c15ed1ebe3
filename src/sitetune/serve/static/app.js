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
  // The empty page's introduction stays hidden once a question was asked.
  let asked = false;

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

  // The site's name (from the store's analysis of its pages) and example questions drawn from its sections.
  async function loadSite() {
    try {
      const response = await fetch("/site", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      const name = String(data.name || "").trim();
      if (name) {
        $("site-title").textContent = "Ask " + name;
        document.title = "Ask " + name;
      }
      const list = $("examples");
      list.replaceChildren();
      for (const question of (data.examples || []).map(String)) {
        const item = el("li");
        const button = el("button", "example", question);
        button.type = "button";
        button.addEventListener("click", () => {
          input.value = question;
          form.requestSubmit();
        });
        item.appendChild(button);
        list.appendChild(item);
      }
      $("intro").hidden = asked || list.children.length === 0;
    } catch (_) {
      // The introduction is optional: the form works without it.
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
    if (!data.found) notes.push("The closest sections are collapsed below.");
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

  // A list item's marker at the start of a line of section text ("- ", "\u2022 ", "* ", "\u2013 ").
  const BULLET = /^(\s*)[-\u2022*\u2013]\s+/;

  // The hit's text as paragraphs and lists (lines starting with a marker become <li>, nested by their
  // indentation), with the parts the answer quotes wrapped in <mark>; every piece is a text node.
  function markedText(text, spans) {
    const body = el("div", "hit-text");
    const ordered = (spans || []).slice().sort((a, b) => a.start - b.start);

    // Appends text[from, to) to parent, the quoted parts as <mark> (a quote over several lines is split).
    function appendRange(parent, from, to) {
      let position = from;
      for (const span of ordered) {
        const start = Math.max(span.start, position);
        const end = Math.min(span.end, to);
        if (end <= start) continue;
        if (start > position) parent.appendChild(document.createTextNode(text.slice(position, start)));
        parent.appendChild(el("mark", null, text.slice(start, end)));
        position = end;
      }
      if (position < to) parent.appendChild(document.createTextNode(text.slice(position, to)));
    }

    let paragraph = null;
    let lists = []; // open lists, outermost first: {indent, node}
    let offset = 0;
    for (const line of text.split("\n")) {
      const start = offset;
      const end = offset + line.length;
      offset = end + 1;
      const bullet = BULLET.exec(line);
      if (bullet) {
        const indent = bullet[1].length;
        while (lists.length && lists[lists.length - 1].indent > indent) lists.pop();
        if (!lists.length || lists[lists.length - 1].indent < indent) {
          const list = el("ul", "hit-list");
          const parentItem = lists.length ? lists[lists.length - 1].node.lastElementChild : null;
          (parentItem || body).appendChild(list);
          lists.push({ indent: indent, node: list });
        }
        const item = el("li");
        appendRange(item, start + bullet[0].length, end);
        lists[lists.length - 1].node.appendChild(item);
        paragraph = null;
        continue;
      }
      lists = [];
      if (!line.trim()) {
        paragraph = null;
        continue;
      }
      if (paragraph) {
        paragraph.appendChild(document.createTextNode("\n"));
      } else {
        paragraph = el("p", "hit-para");
        body.appendChild(paragraph);
      }
      appendRange(paragraph, start, end);
    }
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

  // The section cards of hits into list (the results, or the closest sections of a "not found").
  function renderHits(list, hits, citations) {
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
  }

  // A found answer's sections are shown; after "not found" they are unrelated to the question, so the
  // closest ones wait, collapsed, behind a disclosure.
  function renderSections(data) {
    const hits = data.hits || [];
    const found = Boolean(data.found);
    renderHits($("hits"), found ? hits : [], data.citations || []);
    renderHits($("closest-hits"), found ? [] : hits, []);
    $("results").hidden = !found || hits.length === 0;
    const closest = $("closest");
    closest.open = false;
    closest.hidden = found || hits.length === 0;
    $("closest-summary").textContent = "Closest sections (" + hits.length + ")";
  }

  function showEmptyPage() {
    for (const id of ["answer", "results", "closest"]) $(id).hidden = true;
    $("intro").hidden = $("examples").children.length === 0;
    asked = false;
    setStatus("");
  }

  async function send(payload) {
    lastPayload = payload;
    asked = true;
    $("intro").hidden = true;
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
      renderSections(data);
      const count = (data.hits || []).length;
      const where = payload.page ? " on \u201c" + payload.page + "\u201d" : "";
      setStatus(
        data.found
          ? count + (count === 1 ? " section" : " sections") + " found in " + Math.round(data.took_ms) + " ms" +
              where + "."
          : "No answer in the pages" + where + " (searched in " + Math.round(data.took_ms) + " ms)."
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
    if (button.disabled) return; // an example clicked while a question is on its way waits its turn
    const question = input.value.trim();
    if (!question) {
      setStatus("Type a question first.", true);
      input.focus();
      return;
    }
    const payload = { question: question, k: 5 };
    if (pageSelect.value) payload.page = pageSelect.value;
    // The question goes into the address bar, so the answer can be linked, bookmarked and gone back to.
    const address = addressOf(payload);
    if (window.location.pathname + window.location.search !== address) {
      window.history.pushState(null, "", address);
    }
    send(payload);
  }

  function addressOf(payload) {
    const params = new URLSearchParams();
    params.set("q", payload.question);
    if (payload.page) params.set("page", payload.page);
    return window.location.pathname + "?" + params.toString();
  }

  // Asks the question of the address (?q=...&page=...), as a link or bookmark gives it; false if none.
  function askFromAddress() {
    const params = new URLSearchParams(window.location.search);
    const question = (params.get("q") || "").trim();
    if (!question) return false;
    input.value = question;
    const page = params.get("page") || "";
    const known = Array.from(pageSelect.options).some((option) => option.value === page);
    pageSelect.value = known ? page : "";
    const payload = { question: question, k: 5 };
    if (pageSelect.value) payload.page = pageSelect.value;
    send(payload);
    return true;
  }

  form.addEventListener("submit", ask);
  retry.addEventListener("click", () => {
    if (lastPayload) send(lastPayload);
  });
  $("helpful-yes").addEventListener("click", () => sendFeedback(true));
  $("helpful-no").addEventListener("click", () => sendFeedback(false));
  window.addEventListener("popstate", () => {
    if (!askFromAddress()) {
      input.value = "";
      showEmptyPage();
    }
  });
  loadSite();
  // The filter's options first, so that a linked question's page can be chosen.
  loadPages().then(askFromAddress);
})();
