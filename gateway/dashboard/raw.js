// A raw record as received, pretty-printed, with the source fields a mapping reads marked: each
// line of a marked field is wrapped in <mark> (the text stays exactly the pretty-printed record).
import { h } from "./dom.js";

/** A source path ("zfjg.tyshxydm", "dsr[0].mc") as its segments, array positions left out. */
export function segments(path) {
  return String(path)
    .replace(/\[\d+\]/g, "")
    .split(".")
    .map((s) => s.replace(/^@/, "").replace(/^[^:]*:/, ""))
    .filter((s) => s !== "" && !/^\d+$/.test(s));
}

/** Lines of `value` indented as JSON.stringify(value, null, 2) writes it, each with its key path (array positions are transparent). */
function jsonLines(value, indent, path, prefix, suffix, out) {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value) && value.length) {
    out.push({ text: `${pad}${prefix}[`, path });
    value.forEach((x, i) => jsonLines(x, indent + 1, path, "", i < value.length - 1 ? "," : "", out));
    out.push({ text: `${pad}]${suffix}`, path });
  } else if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
    const keys = Object.keys(value);
    out.push({ text: `${pad}${prefix}{`, path });
    keys.forEach((k, i) => jsonLines(value[k], indent + 1, [...path, k], JSON.stringify(k) + ": ", i < keys.length - 1 ? "," : "", out));
    out.push({ text: `${pad}}${suffix}`, path });
  } else {
    out.push({ text: `${pad}${prefix}${JSON.stringify(value)}${suffix}`, path });
  }
  return out;
}

const localName = (tag) => tag.replace(/^[^:]*:/, "");

/** Lines of indented XML, each with its element path. */
function xmlLines(text) {
  const stack = [];
  return text.split("\n").map((line) => {
    const s = line.trim();
    let m;
    if (s.startsWith("<?") || s.startsWith("<!")) return { text: line, path: [...stack] };
    if ((m = /^<\/([^\s>]+)>$/.exec(s))) {
      const path = [...stack];
      stack.pop();
      return { text: line, path };
    }
    if ((m = /^<([^\s/>]+)[^>]*\/>$/.exec(s))) return { text: line, path: [...stack, localName(m[1])] };
    if ((m = /^<([^\s/>]+)[^>]*>.*<\/[^>]+>$/.exec(s))) return { text: line, path: [...stack, localName(m[1])] };
    if ((m = /^<([^\s/>]+)[^>]*>$/.exec(s))) {
      stack.push(localName(m[1]));
      return { text: line, path: [...stack] };
    }
    return { text: line, path: [...stack] };
  });
}

const startsWith = (path, seg, at) => seg.every((s, i) => path[at + i] === s);

/**
 * The record `raw` (an API raw view) as a <pre>, the lines of each of `sourcePaths` marked.
 * A source path is looked for from the record's root first; when nothing is found there (an XML
 * record's root element, a wrapper), anywhere in the tree. Answers {el, marks: Map(path → first <mark>)}.
 */
export function rawRecord(raw, sourcePaths, attrs = {}) {
  let lines;
  const text = raw.payload_pretty || "";
  if (raw.format === "json" && raw.payload !== null && raw.payload !== undefined) lines = jsonLines(raw.payload, 0, [], "", "", []);
  else if (text.trimStart().startsWith("<")) lines = xmlLines(text);
  else lines = text.split("\n").map((l) => ({ text: l, path: [] }));
  const marked = new Array(lines.length).fill(null);
  for (const source of sourcePaths) {
    const seg = segments(source);
    if (!seg.length) continue;
    let any = false;
    lines.forEach((l, i) => {
      if (l.path.length >= seg.length && startsWith(l.path, seg, 0)) {
        marked[i] = marked[i] || source;
        any = true;
      }
    });
    if (any) continue;
    lines.forEach((l, i) => {
      for (let at = 1; at + seg.length <= l.path.length; at++) {
        if (startsWith(l.path, seg, at)) {
          marked[i] = marked[i] || source;
          break;
        }
      }
    });
  }
  const marks = new Map();
  const children = [];
  lines.forEach((l, i) => {
    if (marked[i]) {
      const m = h("mark", { class: "src-field", dataset: { field: marked[i] } }, l.text);
      if (!marks.has(marked[i])) marks.set(marked[i], m);
      children.push(m);
    } else {
      children.push(l.text);
    }
    if (i < lines.length - 1) children.push("\n");
  });
  return { el: h("pre", { class: "code raw", tabindex: 0, ...attrs }, children), marks };
}

/** The source paths the mapping reads for canonical `pointer` (from `fields` of an entry), trying the pointer without array positions and its parents. */
export function sourceFieldsFor(fields, pointer) {
  if (!fields || !pointer) return [];
  const tokens = pointer.split("/").slice(1);
  const tries = [pointer, "/" + tokens.filter((x) => !/^\d+$/.test(x)).join("/"), "/" + tokens.map((x) => (/^\d+$/.test(x) ? "*" : x)).join("/")];
  for (const p of tries) if (fields[p]) return fields[p];
  for (let n = tokens.length - 1; n > 0; n--) {
    const parent = "/" + tokens.slice(0, n).join("/");
    if (fields[parent]) return fields[parent];
  }
  return [];
}
