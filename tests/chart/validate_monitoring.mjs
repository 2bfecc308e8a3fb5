// Validate prometheus-operator custom resources (ServiceMonitor, PodMonitor,
// PrometheusRule) with the JSON-schema validators that
// @kubernetes-models/prometheus-operator generates from prometheus-operator's
// Go API types (installed by scripts/ensure-helm.sh).
// Usage: node validate_monitoring.mjs MODELS_NODE_MODULES DOCS.json
// Prints a JSON list: [{kind, name, errors}] with errors null when valid.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modulesDir, docsPath] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(docsPath, "utf8"));
const base = path.join(modulesDir, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const results = [];
for (const doc of docs) {
  const mod = await import(pathToFileURL(path.join(base, `${doc.kind}.js`)).href);
  const Model = mod[doc.kind];
  let errors = null;
  try {
    new Model(doc).validate();
  } catch (err) {
    errors = String(err && err.message ? err.message : err);
  }
  results.push({ kind: doc.kind, name: doc.metadata && doc.metadata.name, errors });
}
process.stdout.write(JSON.stringify(results));
