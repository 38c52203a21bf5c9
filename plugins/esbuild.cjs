// esbuild plugins for the function bundles (serverless.yml custom.esbuild.plugins; CommonJS because
// serverless-esbuild require()s this file). bench/coldstart.ts builds with the same list.

// kafkajs is CommonJS, so esbuild cannot drop what a function never calls: every consumer and
// protocol request module lands in each bundle. Our functions only produce (the ingest to
// ugc.events, the writer to the dead-letter topic) and describe the cluster (the ingest's health
// check, through the admin client), so the consumer and the requests neither sends are replaced
// by stubs that throw if ever reached. Kept: everything a producer can use, including SASL,
// idempotence and transactions, and the admin client where it is called (its requests are looked
// up lazily).
const requestsNoProducerSends = [
  'fetch', 'listOffsets', 'offsetCommit', 'offsetFetch', 'joinGroup', 'heartbeat', 'leaveGroup', 'syncGroup',
  'describeGroups', 'listGroups', 'createTopics', 'deleteTopics', 'deleteRecords', 'describeAcls', 'createAcls',
  'deleteAcls', 'describeConfigs', 'alterConfigs', 'createPartitions', 'deleteGroups',
  'alterPartitionReassignments', 'listPartitionReassignments',
];
// Functions that call kafka.admin() (the ingest's health check); the others get a stub (20 KB less).
const adminCallers = ['functions/ingest/'];

/** kafkajs file -> the require() specifiers in it that get a stub, for a build of these entry points. */
function stubbedFor(entryPoints) {
  const entries = (Array.isArray(entryPoints) ? entryPoints : Object.values(entryPoints ?? {}))
    .map((entry) => String(typeof entry === 'string' ? entry : entry.in).replaceAll('\\', '/'));
  const callsAdmin = entries.some((entry) => adminCallers.some((caller) => entry.includes(caller)));
  return {
    'kafkajs/src/index.js': callsAdmin ? ['./consumer'] : ['./consumer', './admin'],
    // The admin client makes consumers only to reset or set group offsets.
    'kafkajs/src/admin/index.js': ['../consumer'],
    'kafkajs/src/protocol/requests/index.js': requestsNoProducerSends.map((name) => `./${name}`),
  };
}

const kafkajsProducerOnly = {
  name: 'kafkajs-producer-only',
  setup(build) {
    const stubbedBy = stubbedFor(build.initialOptions.entryPoints);
    const specifiers = new Set(Object.values(stubbedBy).flat());
    const escape = (text) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    build.onResolve({ filter: new RegExp(`^(?:${[...specifiers].map(escape).join('|')})$`) }, (args) => {
      const importer = args.importer.replaceAll('\\', '/');
      const owner = Object.keys(stubbedBy).find((file) => importer.endsWith(`node_modules/${file}`));
      if (!owner || !stubbedBy[owner].includes(args.path)) return undefined;
      return { path: `${owner} ${args.path}`, namespace: 'kafkajs-not-bundled' };
    });
    build.onLoad({ filter: /.*/, namespace: 'kafkajs-not-bundled' }, (args) => {
      const message = JSON.stringify(`kafkajs: ${args.path} is not bundled in this function (plugins/esbuild.cjs): it only produces`);
      const contents = args.path.includes('/requests/')
        // The shape of kafkajs's own request definitions: no version, and a protocol() that throws.
        ? `module.exports = { versions: [], protocol: () => { throw new Error(${message}); } };`
        : `module.exports = () => { throw new Error(${message}); };`;
      return { contents, loader: 'js' };
    });
  },
};

module.exports = [kafkajsProducerOnly];
