// The embeddable search box. One tag on any page:
//   <script src="https://search.example.org/widget.js" data-endpoint="https://search.example.org" defer></script>
// adds a question box, the cited answer and the sections found, right after the tag (or inside the element
// whose id data-target names). It lives in a Shadow DOM of its own, so the host page's CSS does not reach
// it and its CSS does not reach the page. Everything the server sends goes into the DOM with textContent
// (never parsed as markup) and links get only http(s) URLs. The server must list the page's origin with
// `sitetune serve --allow-origin`; otherwise the browser blocks the answer and the box says so.
"use strict";

(function () {
  const script = document.currentScript;
  if (!script || typeof Element.prototype.attachShadow !== "function") return;

  const CSS = `
:host { all: initial; display: block; }
.st { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2937; background: #ffffff; text-align: left; max-width: 48rem; }
.st *, .st *::before, .st *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
form { display: flex; gap: 0.5rem; margin: 0; }
input { flex: 1 1 auto; min-width: 0; font: inherit; color: #111827; background: #ffffff;
  border: 1px solid #9ca3af; border-radius: 6px; padding: 0.5rem 0.75rem; margin: 0; }
button { font: inherit; font-weight: 600; color: #ffffff; background: #1d4ed8; border: 0; border-radius: 6px;
  padding: 0.5rem 1rem; margin: 0; cursor: pointer; }
button:disabled { opacity: 0.6; cursor: progress; }
input:focus-visible, button:focus-visible, a:focus-visible, summary:focus-visible {
  outline: 2px solid #1d4ed8; outline-offset: 2px; }
.status { margin: 0.5rem 0 0; min-height: 1.25em; color: #4b5563; font-size: 0.875rem; }
.status.error { color: #b91c1c; }
h2 { margin: 1rem 0 0.25rem; color: #4b5563; font-size: 0.75rem; font-weight: 700; letter-spacing: 0.06em;
  text-transform: uppercase; }
p { margin: 0; }
a { color: #1d4ed8; text-decoration: underline; }
.answer-text { white-space: pre-line; }
.answer-text.not-found { color: #4b5563; }
.cite { font-size: 0.8em; vertical-align: super; line-height: 0; text-decoration: none; padding: 0 0.1em; }
.sources { margin: 0.5rem 0 0; padding-left: 1.5rem; font-size: 0.875rem; }
.source-page { color: #4b5563; }
.note { margin-top: 0.5rem; color: #92400e; font-size: 0.875rem; }
.hits { list-style: none; margin: 0; padding: 0; }
.hit { padding: 0.5rem 0; border-top: 1px solid #e5e7eb; }
.hit-page { display: block; color: #4b5563; font-size: 0.8rem; }
.hit-text { margin-top: 0.25rem; color: #374151; font-size: 0.875rem; }
summary { cursor: pointer; color: #4b5563; font-size: 0.875rem; margin-top: 1rem; }
`;
  const SNIPPET_CHARS = 240;
  const TIMEOUT_MS = 60000;

  function safeUrl(url, base) {
    try {
      const parsed = new URL(url, base || window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed : null;
    } catch (_) {
      return null;
    }
  }

  // The API's base URL: data-endpoint (an http(s) URL, perhaps with a path), else the script's origin.
  function endpointOf(tag) {
    const attribute = tag.getAttribute("data-endpoint");
    if (attribute) {
      const given = safeUrl(attribute);
      if (!given) return null;
      return (given.origin + given.pathname).replace(/\/+$/, "");
    }
    const source = safeUrl(tag.src);
    return source ? source.origin : null;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function link(url, text, className) {
    const href = safeUrl(url);
    if (!href) return el("span", className, text);
    const a = el("a", className, text);
    a.href = href.href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function applyStyles(root) {
    if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function") {
      try {
        // A constructed sheet is not inline style: a host page whose CSP forbids inline styles still shows it.
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
        return;
      } catch (_) {
        // Older browsers: a <style> element below.
      }
    }
    root.appendChild(el("style", null, CSS));
  }

  function mount() {
    const endpoint = endpointOf(script);
    const host = el("div");
    host.setAttribute("data-sitetune-widget", "");
    const targetId = script.getAttribute("data-target");
    const target = targetId ? document.getElementById(targetId) : null;
    if (target) {
      target.appendChild(host);
    } else if (script.parentNode && script.parentNode !== document.head && document.body.contains(script)) {
      script.parentNode.insertBefore(host, script.nextSibling);
    } else {
      document.body.appendChild(host);
    }
    const root = host.attachShadow({ mode: "open" });
    applyStyles(root);

    const box = el("div", "st");
    const form = el("form");
    form.setAttribute("role", "search");
    form.setAttribute("autocomplete", "off");
    const input = el("input");
    input.type = "search";
    input.name = "q";
    input.maxLength = 1000;
    input.required = true;
    input.placeholder = script.getAttribute("data-placeholder") || "Ask a question about this site";
    input.setAttribute("aria-label", input.placeholder);
    const button = el("button", null, "Ask");
    button.type = "submit";
    form.append(input, button);

    const status = el("p", "status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");

    const answer = el("section", "answer");
    answer.hidden = true;
    const answerText = el("div", "answer-text");
    const sources = el("ol", "sources");
    const note = el("p", "note");
    answer.append(el("h2", null, "Answer"), answerText, sources, note);

    const results = el("section", "results");
    results.hidden = true;
    const hitsList = el("ol", "hits");
    results.append(el("h2", null, "Sections"), hitsList);

    const closest = el("details", "closest");
    closest.hidden = true;
    const closestSummary = el("summary", null, "Closest sections");
    const closestList = el("ol", "hits");
    closest.append(closestSummary, closestList);

    box.append(form, status, answer, results, closest);
    root.appendChild(box);

    function setStatus(text, isError) {
      status.textContent = text || "";
      status.classList.toggle("error", Boolean(isError));
      status.setAttribute("role", isError ? "alert" : "status");
    }

    function clear() {
      answer.hidden = results.hidden = closest.hidden = true;
      answerText.replaceChildren();
      sources.replaceChildren();
      hitsList.replaceChildren();
      closestList.replaceChildren();
    }

    function renderAnswer(data) {
      const byNumber = new Map((data.citations || []).map((c) => [Number(c.n), c]));
      // Text stays text; each [n] marker becomes a link to the passage it cites.
      for (const part of String(data.text || "").split(/(\[\d+\])/)) {
        const match = /^\[(\d+)\]$/.exec(part);
        const cite = match ? byNumber.get(Number(match[1])) : undefined;
        if (cite) {
          const a = link(cite.link || cite.url, "[" + cite.n + "]", "cite");
          a.title = String(cite.page_name) + " \u2014 " + String(cite.section_title);
          a.setAttribute("aria-label", "Source " + cite.n + ": " + cite.section_title + ", " + cite.page_name);
          answerText.appendChild(a);
        } else if (part) {
          answerText.appendChild(document.createTextNode(part));
        }
      }
      answerText.classList.toggle("not-found", !data.found);
      for (const c of data.citations || []) {
        const item = el("li");
        item.value = Number(c.n) || 0;
        item.appendChild(link(c.link || c.url, c.section_title || c.page_name, "source"));
        item.appendChild(el("span", "source-page", " \u2014 " + c.page_name));
        sources.appendChild(item);
      }
      sources.hidden = sources.children.length === 0;
      note.textContent = data.warning ? String(data.warning) : "";
      note.hidden = !data.warning;
      answer.hidden = false;
    }

    function renderHits(list, hits) {
      for (const hit of hits) {
        const item = el("li", "hit");
        item.appendChild(link(hit.link || hit.url, hit.section_title || hit.page_name, "hit-title"));
        item.appendChild(el("span", "hit-page", hit.page_name));
        const text = String(hit.text || "").replace(/\s+/g, " ").trim();
        const snippet = text.length > SNIPPET_CHARS ? text.slice(0, SNIPPET_CHARS).replace(/\s\S*$/, "") + "\u2026" : text;
        item.appendChild(el("p", "hit-text", snippet));
        list.appendChild(item);
      }
    }

    let asked = 0;

    async function ask(question) {
      const mine = ++asked;
      clear();
      if (!endpoint) {
        setStatus("This search box has no valid data-endpoint (an http or https URL).", true);
        return;
      }
      button.disabled = true;
      setStatus("Searching\u2026");
      const controller = typeof AbortController === "function" ? new AbortController() : null;
      const timer = controller ? setTimeout(() => controller.abort(), TIMEOUT_MS) : null;
      try {
        const response = await fetch(endpoint + "/answer", {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ question: question, k: 5 }),
          signal: controller ? controller.signal : undefined,
        });
        const data = await response.json().catch(() => ({}));
        if (mine !== asked) return;
        if (!response.ok) {
          setStatus(typeof data.detail === "string" ? data.detail : "The search failed (" + response.status + ").", true);
          return;
        }
        renderAnswer(data);
        const hits = Array.isArray(data.hits) ? data.hits : [];
        if (data.found) {
          renderHits(hitsList, hits);
          results.hidden = hits.length === 0;
        } else {
          // Unrelated to the question when nothing answers it: offered collapsed.
          renderHits(closestList, hits);
          closestSummary.textContent = "Closest sections (" + hits.length + ")";
          closest.open = false;
          closest.hidden = hits.length === 0;
        }
        setStatus(data.found ? "" : "No answer in the pages.");
      } catch (_) {
        if (mine !== asked) return;
        if (controller && controller.signal.aborted) {
          setStatus("The search took too long. Try again in a moment.", true);
          return;
        }
        // A network failure and a CORS refusal look the same from here (the browser hides which).
        setStatus("The search service could not be reached from this page. Try again later.", true);
      } finally {
        if (timer) clearTimeout(timer);
        if (mine === asked) button.disabled = false;
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const question = input.value.trim();
      if (question) ask(question);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
