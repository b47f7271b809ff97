// Validates rendered custom resources against the JSON schemas shipped in the npm packages
// @kubernetes-models/keda and @kubernetes-models/prometheus-operator, then rejects fields
// the schema does not define (the generated schemas allow unknown properties, the API
// server's structural schemas prune or reject them).
//
// usage: node validate-crds.mjs NODE_PREFIX OBJECTS.json
//   OBJECTS.json: [{"source": "...", "object": {...}}, ...]
// Prints one line per object; exits 1 if any object fails.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [prefix, input] = process.argv.slice(2);
const nm = path.join(prefix, "node_modules");

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
  "keda.sh/v1alpha1/TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication",
  "keda.sh/v1alpha1/ClusterTriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/ClusterTriggerAuthentication",
  "keda.sh/v1alpha1/ScaledJob": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};

// ---- known-field check from the packages' TypeScript declarations -----------------------
const ifaceCache = new Map();

function resolveDts(fromFile, spec) {
  let base;
  if (spec.startsWith(".")) base = path.resolve(path.dirname(fromFile), spec);
  else base = path.join(nm, spec);
  base = base.replace(/\.js$/, "");
  for (const cand of [base + ".d.ts", path.join(base, "index.d.ts")]) {
    if (fs.existsSync(cand)) return cand;
  }
  return null;
}

function splitTop(body, sep) {
  const parts = [];
  let depth = 0, cur = "";
  for (const ch of body) {
    if ("{<([".includes(ch)) depth++;
    if ("}>)]".includes(ch)) depth--;
    if (ch === sep && depth === 0) { parts.push(cur); cur = ""; } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts;
}

// Returns {props: Map(name -> typeText), imports: Map(ident -> file), file} for the
// first `export interface` in a .d.ts file.
function loadIface(file) {
  if (ifaceCache.has(file)) return ifaceCache.get(file);
  const src = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const imports = new Map();
  for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [orig, alias] = name.split(/\s+as\s+/);
      imports.set((alias || orig).trim(), m[2]);
    }
  }
  const start = src.search(/export interface \w+[^{]*\{/);
  let result = null;
  if (start >= 0) {
    let i = src.indexOf("{", start) + 1, depth = 1;
    const from = i;
    while (depth > 0 && i < src.length) { if (src[i] === "{") depth++; if (src[i] === "}") depth--; i++; }
    const body = src.slice(from, i - 1);
    const props = new Map();
    for (const entry of splitTop(body, ";")) {
      const m = entry.trim().match(/^"?([^"?:]+)"?\??:\s*([\s\S]+)$/);
      if (m) props.set(m[1], m[2].trim());
    }
    result = { props, imports, file };
  }
  ifaceCache.set(file, result);
  return result;
}

function checkKnown(value, iface, where, errors) {
  if (!iface || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (!iface.props.has(key)) {
      errors.push(`${where}/${key}: unknown field`);
      continue;
    }
    let type = iface.props.get(key);
    let isArray = false;
    const arr = type.match(/^Array<([\s\S]+)>$/);
    if (arr) { type = arr[1].trim(); isArray = true; }
    if (!/^[A-Za-z_]\w*$/.test(type) || !iface.imports.has(type)) continue; // leaf or map
    const sub = resolveDts(iface.file, iface.imports.get(type));
    if (!sub) continue;
    const subIface = loadIface(sub);
    if (isArray && Array.isArray(v)) v.forEach((item, n) => checkKnown(item, subIface, `${where}/${key}/${n}`, errors));
    else checkKnown(v, subIface, `${where}/${key}`, errors);
  }
}

// ---- main --------------------------------------------------------------------------------
const items = JSON.parse(fs.readFileSync(input, "utf8"));
let failed = 0;
for (const { source, object } of items) {
  const key = `${object.apiVersion}/${object.kind}`;
  const label = `${source}: ${object.kind}/${object.metadata?.name}`;
  const mod = MODELS[key];
  if (!mod) { console.log(`FAIL ${label}: no schema known for ${key}`); failed++; continue; }
  const errors = [];
  try {
    const exported = await import(pathToFileURL(path.join(nm, mod + ".js")).href);
    const Model = exported[object.kind];
    new Model(object).validate();
  } catch (e) {
    errors.push(String(e.message || e).split("\n").slice(0, 5).join("; "));
  }
  const dts = resolveDts(path.join(nm, "x"), mod);
  checkKnown(object, dts && loadIface(dts), "", errors);
  if (errors.length) { console.log(`FAIL ${label}: ${errors.join("; ")}`); failed++; }
  else console.log(`ok   ${label}`);
}
console.log(`${items.length - failed} of ${items.length} objects valid`);
process.exit(failed ? 1 : 0);
