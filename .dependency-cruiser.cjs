// The import rules of docs/design.md, checked by tests/unit/imports.test.ts: no circle, and a
// folder imports only folders below it: shared/ at the bottom; functions/, sdk/, clickhouse/;
// then scripts/ and localstack/; plugins/ (osls plugins, the offline ones load localstack/) and
// bench/ on top. tests/ may import anything.
const layers = [
  ['shared'],
  ['functions', 'sdk', 'clickhouse'],
  ['scripts', 'localstack'],
  ['plugins', 'bench'],
];
const above = (i) => layers.slice(i + 1).flat();
const sameLayerOthers = (i, folder) => layers[i].filter((other) => other !== folder);

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    ...layers.flatMap((folders, i) => folders.map((folder) => ({
      name: `${folder}-imports-down-only`,
      severity: 'error',
      from: { path: `^${folder}/` },
      to: { path: `^(${[...above(i), ...sameLayerOthers(i, folder)].join('|')})/` },
    }))),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|\\.esbuild|\\.serverless|dist)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.cjs', '.mjs', '.json'] },
  },
};
