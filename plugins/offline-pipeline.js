/**
 * osls plugin: under `serverless offline`, when `npm start` asks for it (PIPELINE_HTTP_ANSWERS_UDP),
 * counts the HTTP answers of each function's routes and sends them to its pipeline page
 * (see http-answers.ts). Does nothing otherwise, and nothing for `serverless package`.
 *
 * Plain JavaScript (osls loads plugins with require/import); the work is done by localstack/pipeline/http-answers.ts,
 * bundled and loaded (import-ts.js) before serverless-offline's init starts its HTTP server.
 */
export default class PipelineAnswersPlugin {
  /** @type {{ stop(): void } | undefined} */
  #reporter;

  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'before:offline:start:init': () => this.#start(),
      'before:offline:start': () => this.#start(),
      'before:offline:start:end': () => this.#reporter?.stop(),
    };
  }

  async #start() {
    const target = process.env.PIPELINE_HTTP_ANSWERS_UDP;
    if (!target || this.#reporter) return;
    const { importTs } = await import('./import-ts.js');
    /** @type {typeof import('../localstack/pipeline/http-answers.ts')} */
    const answers = await importTs('../localstack/pipeline/http-answers.ts', import.meta.url);
    if (this.#reporter) return;
    const { service } = this.serverless;
    const functions = Object.fromEntries(service.getAllFunctions().map((key) => [key, { events: service.getFunction(key).events ?? [] }]));
    this.#reporter = answers.reportHttpAnswers(target, answers.routeMatchers(functions));
  }
}
