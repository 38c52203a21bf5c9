// Module resolve hook of offline-reload.js (runs on Node's hooks thread): a bundle under the
// build folder gets the URL `…/handler.mjs?build=N` once N rebuilds happened, so import() loads
// the rebuilt file instead of answering from the module cache. Other modules are untouched.

/** @type {Int32Array | undefined} */
let build;
let urlPrefix = '';

export function initialize(data) {
  build = data.build;
  urlPrefix = data.urlPrefix;
}

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  const n = build ? Atomics.load(build, 0) : 0;
  if (n === 0 || !resolved.url.startsWith(urlPrefix) || resolved.url.includes('?')) return resolved;
  return { ...resolved, url: `${resolved.url}?build=${n}` };
}
