// Markdown as agents write it, rendered safely: every node is made with
// createElement and filled with textContent, so no input is ever parsed as
// HTML (the page's Trusted Types policy forbids that anyway). Raw HTML in a
// message shows as the text it is. Links are kept only for http:, https:
// and mailto: targets, open in a new tab with rel="noopener noreferrer",
// and anything else (javascript:, data:, relative) stays plain text.
//
// Supported: fenced and indented code blocks, headings, paragraphs with
// hard line breaks, block quotes, ordered and unordered (nested) lists,
// horizontal rules, tables; inline code, strong, emphasis, strikethrough,
// [links](url), <autolinks> and bare URLs, backslash escapes.

const MAX_DEPTH = 8; // nesting of quotes and lists; deeper renders as text

function el(tag, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  return e;
}

// safeURL returns href as an absolute http(s)/mailto URL, or null.
export function safeURL(href) {
  let u;
  try {
    u = new URL(href.trim());
  } catch {
    return null; // relative or malformed
  }
  if (u.protocol !== "http:" && u.protocol !== "https:" && u.protocol !== "mailto:") return null;
  return u.href;
}

function link(parent, label, href) {
  const url = safeURL(href);
  if (!url) return false;
  const a = el("a");
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  a.referrerPolicy = "no-referrer";
  if (typeof label === "string") a.textContent = label;
  else label(a);
  parent.appendChild(a);
  return true;
}

const ESCAPABLE = "\\`*_{}[]()#+-.!~<>|";
const DELIMS = [
  ["**", "strong"],
  ["__", "strong"],
  ["~~", "del"],
  ["*", "em"],
  ["_", "em"],
];
const URL_RE = /^https?:\/\/[^\s<>"]+/;

function isWord(c) {
  return c !== undefined && /[\p{L}\p{N}]/u.test(c);
}

// inline renders text's inline Markdown into parent. missing caches, per
// delimiter, the position after which it has no closer, which keeps the
// scan linear on text full of unmatched markers.
function inline(text, parent, depth, missing = new Map()) {
  let buf = "";
  const flush = () => {
    if (buf) parent.appendChild(document.createTextNode(buf));
    buf = "";
  };
  const find = (delim, from) => {
    const after = missing.get(delim);
    if (after !== undefined && from >= after) return -1;
    const j = text.indexOf(delim, from);
    if (j < 0) missing.set(delim, from);
    return j;
  };
  let i = 0;
  outer: while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const fence = "`".repeat(n);
      let j = find(fence, i + n);
      while (j >= 0 && text[j + n] === "`") j = find(fence, j + n + 1); // a longer run is not a closer
      if (j >= 0) {
        flush();
        const code = el("code");
        let body = text.slice(i + n, j);
        if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ")) body = body.slice(1, -1);
        code.textContent = body;
        parent.appendChild(code);
        i = j + n;
        continue;
      }
      buf += fence;
      i += n;
      continue;
    }
    if ((c === "*" || c === "_" || c === "~") && depth < MAX_DEPTH) {
      for (const [d, tag] of DELIMS) {
        if (!text.startsWith(d, i)) continue;
        if (c === "_" && isWord(text[i - 1])) break; // snake_case stays as is
        const start = i + d.length;
        if (start >= text.length || /\s/.test(text[start])) break;
        let j = find(d, start + 1);
        // A single * must not close on half of a **.
        while (j >= 0 && d.length === 1 && text[j + 1] === c) j = find(d, j + 2);
        if (j < 0 || /\s/.test(text[j - 1])) continue;
        if (c === "_" && isWord(text[j + d.length])) continue;
        flush();
        const e = el(tag);
        inline(text.slice(start, j), e, depth + 1);
        parent.appendChild(e);
        i = j + d.length;
        continue outer;
      }
    }
    if (c === "[" && depth < MAX_DEPTH) {
      const close = find("](", i + 1);
      if (close >= 0 && !text.slice(i + 1, close).includes("\n")) {
        const end = text.indexOf(")", close + 2);
        if (end >= 0) {
          const href = text.slice(close + 2, end).trim().split(/\s+/)[0] || "";
          const label = text.slice(i + 1, close);
          if (safeURL(href)) {
            flush();
            link(parent, (a) => inline(label, a, depth + 1), href);
            i = end + 1;
            continue;
          }
        }
      }
    }
    if (c === "<") {
      const end = text.indexOf(">", i + 1);
      if (end > i && end - i < 2048) {
        const inner = text.slice(i + 1, end);
        if (/^(https?:\/\/|mailto:)\S+$/.test(inner) && safeURL(inner)) {
          flush();
          link(parent, inner, inner);
          i = end + 1;
          continue;
        }
      }
    }
    if ((c === "h" || c === "H") && !isWord(text[i - 1])) {
      const m = URL_RE.exec(text.slice(i, i + 4096));
      if (m) {
        let url = m[0];
        while (/[.,;:!?'")\]]$/.test(url) && !(url.endsWith(")") && url.split("(").length >= url.split(")").length)) {
          url = url.slice(0, -1);
        }
        if (safeURL(url)) {
          flush();
          link(parent, url, url);
          i += url.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
}

// paragraph renders lines as one paragraph; a single newline is a line
// break, as chat readers expect.
function paragraph(lines, parent, depth) {
  const p = el("p");
  lines.forEach((line, k) => {
    if (k > 0) p.appendChild(el("br"));
    inline(line, p, depth);
  });
  parent.appendChild(p);
}

const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const HR_RE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE_RE = /^ {0,3}> ?/;
const ITEM_RE = /^( {0,3})([-*+]|\d{1,9}[.)])(\s+|$)/;
const TABLE_SEP_RE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function startsBlock(line) {
  return FENCE_RE.test(line) || HEADING_RE.test(line) || HR_RE.test(line) || QUOTE_RE.test(line) || ITEM_RE.test(line);
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const out = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (s[i] === "|") {
      out.push(cur.trim());
      cur = "";
    } else cur += s[i];
  }
  out.push(cur.trim());
  return out;
}

// blocks renders lines as Markdown blocks into parent.
function blocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    let m = FENCE_RE.exec(line);
    if (m) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length) {
        const t = lines[i].trim();
        if (t.startsWith(fence[0].repeat(fence.length)) && /^(`+|~+)$/.test(t)) break;
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (or the end)
      const pre = el("pre");
      const code = el("code");
      if (m[2]) code.dataset.lang = m[2].slice(0, 40);
      code.textContent = body.join("\n");
      pre.appendChild(code);
      parent.appendChild(pre);
      continue;
    }
    if (/^( {4}|\t)/.test(line) && parent.lastChild?.tagName !== "P") {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || /^\s*$/.test(lines[i]))) {
        body.push(lines[i].replace(/^( {4}|\t)/, ""));
        i++;
      }
      while (body.length && /^\s*$/.test(body[body.length - 1])) body.pop();
      const pre = el("pre");
      const code = el("code");
      code.textContent = body.join("\n");
      pre.appendChild(code);
      parent.appendChild(pre);
      continue;
    }
    m = HEADING_RE.exec(line);
    if (m) {
      const h = el("h" + Math.min(6, m[1].length + 2)); // h3..h6: a message sits under the page's own headings
      h.className = "md-h" + m[1].length;
      inline(m[2] || "", h, depth);
      parent.appendChild(h);
      i++;
      continue;
    }
    if (HR_RE.test(line)) {
      parent.appendChild(el("hr"));
      i++;
      continue;
    }
    if (QUOTE_RE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE_RE.test(lines[i])) {
        body.push(lines[i].replace(QUOTE_RE, ""));
        i++;
      }
      const q = el("blockquote");
      if (depth < MAX_DEPTH) blocks(body, q, depth + 1);
      else q.textContent = body.join("\n");
      parent.appendChild(q);
      continue;
    }
    m = ITEM_RE.exec(line);
    if (m) {
      const ordered = /\d/.test(m[2]);
      const list = el(ordered ? "ol" : "ul");
      if (ordered) {
        const start = parseInt(m[2], 10);
        if (start !== 1) list.start = start;
      }
      while (i < lines.length) {
        const im = ITEM_RE.exec(lines[i]);
        if (!im || /\d/.test(im[2]) !== ordered) break;
        const indent = im[0].length;
        const body = [lines[i].slice(indent)];
        i++;
        while (i < lines.length) {
          const l = lines[i];
          if (/^\s*$/.test(l)) {
            // A blank line continues the item only if indented text follows.
            if (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1])) {
              body.push("");
              i++;
              continue;
            }
            break;
          }
          if (/^\s{2,}/.test(l)) {
            body.push(l.replace(new RegExp("^ {0," + indent + "}"), ""));
            i++;
            continue;
          }
          if (startsBlock(l)) break;
          body.push(l); // a lazy continuation line
          i++;
        }
        const li = el("li");
        if (depth < MAX_DEPTH) {
          blocks(body, li, depth + 1);
          // Tight items: a lone paragraph's text goes straight in the item.
          if (li.childNodes.length >= 1 && li.firstChild.tagName === "P") {
            const p = li.firstChild;
            while (p.firstChild) li.insertBefore(p.firstChild, p);
            p.remove();
          }
        } else li.textContent = body.join("\n");
        list.appendChild(li);
      }
      parent.appendChild(list);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP_RE.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const head = cells(line);
      const wrap = el("div", "table-wrap");
      const table = el("table");
      const tr = el("tr");
      for (const c of head) {
        const th = el("th");
        inline(c, th, depth);
        tr.appendChild(th);
      }
      const thead = el("thead");
      thead.appendChild(tr);
      table.appendChild(thead);
      const tbody = el("tbody");
      i += 2;
      while (i < lines.length && lines[i].includes("|") && !/^\s*$/.test(lines[i])) {
        const row = el("tr");
        const cs = cells(lines[i]);
        for (let k = 0; k < head.length; k++) {
          const td = el("td");
          inline(cs[k] || "", td, depth);
          row.appendChild(td);
        }
        tbody.appendChild(row);
        i++;
      }
      table.appendChild(tbody);
      wrap.appendChild(table);
      parent.appendChild(wrap);
      continue;
    }
    const para = [line];
    i++;
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !startsBlock(lines[i])) {
      para.push(lines[i]);
      i++;
    }
    paragraph(para, parent, depth);
  }
}

// render returns a DocumentFragment of text rendered as Markdown.
export function render(text) {
  const frag = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag, 0);
  return frag;
}
