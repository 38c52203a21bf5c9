// osls plugin: how the HTTP API's routes are exposed and throttled (custom.httpRoutes in serverless.yml).
//
//   docs routes  published only when custom.httpRoutes.docs.published is true (param apiDocs): removed
//                from the functions' events at initialize, so neither a deploy nor offline serves them.
//   throttling   per route (the stage's RouteSettings): each function's routes together stay within its
//                ceiling (custom.httpRoutes.ceilings), so the ingest's concurrency is never asked for
//                more than API Gateway admits. A public route (no token) gets publicRouteRate of it;
//                the function's other routes share the rest equally.

/** An httpApi event's route key, `METHOD /path`. */
const routeKey = (event) => (typeof event.httpApi === 'string' ? event.httpApi : `${String(event.httpApi.method).toUpperCase()} ${event.httpApi.path}`);

/**
 * Each route's throttle: a public route `publicRouteRate` (rate and burst), the function's other routes
 * an equal share of what its ceiling leaves. Refuses a ceiling the public routes alone would use up.
 */
function routeSettings(routes, { ceilings, publicRoutes, publicRouteRate }) {
  const settings = {};
  for (const [fn, keys] of Object.entries(routes)) {
    if (keys.length === 0) continue;
    const ceiling = ceilings[fn];
    if (!ceiling) throw new Error(`custom.httpRoutes.ceilings: no ceiling for ${fn}'s routes (${keys.join(', ')}); add ${fn}: { rate, burst }`);
    const open = keys.filter((k) => publicRoutes.includes(k));
    const viewer = keys.filter((k) => !publicRoutes.includes(k));
    const left = { rate: ceiling.rate - open.length * publicRouteRate, burst: ceiling.burst - open.length * publicRouteRate };
    if (viewer.length > 0 && (left.rate < viewer.length || left.burst < viewer.length)) {
      throw new Error(`httpPublicRouteRateLimit: ${open.length} public routes at ${publicRouteRate}/s leave ${fn}'s other routes nothing of its ceiling (${ceiling.rate}/s, burst ${ceiling.burst}); lower it or raise the ceiling`);
    }
    for (const k of open) settings[k] = { ThrottlingRateLimit: publicRouteRate, ThrottlingBurstLimit: publicRouteRate };
    for (const k of viewer) {
      settings[k] = { ThrottlingRateLimit: Math.floor(left.rate / viewer.length), ThrottlingBurstLimit: Math.floor(left.burst / viewer.length) };
    }
  }
  return settings;
}

class HttpRoutesPlugin {
  constructor(serverless) {
    // The framework's own error: printed as its message, without a stack.
    const Refusal = serverless.classes.Error;
    const config = () => serverless.service.custom.httpRoutes;
    // Every route serverless.yml declares, the docs routes included when they are not published.
    const declared = new Set();
    this.hooks = {
      initialize: () => {
        for (const fn of Object.values(serverless.service.functions)) for (const e of fn.events ?? []) if (e.httpApi) declared.add(routeKey(e));
        const { docs } = config();
        if (docs.published === true || docs.published === 'true') return;
        if (docs.published !== false && docs.published !== 'false') throw new Refusal(`apiDocs: expected true or false, got ${JSON.stringify(docs.published)}`);
        for (const fn of Object.values(serverless.service.functions)) {
          if (fn.events) fn.events = fn.events.filter((e) => !(e.httpApi && docs.routes.includes(routeKey(e))));
        }
      },
      // After the routes are compiled and before resources.extensions is merged (package:finalize).
      'after:package:compileEvents': () => {
        const { Resources } = serverless.service.provider.compiledCloudFormationTemplate;
        if (!Resources.HttpApiStage) return;
        const routes = Object.fromEntries(Object.entries(serverless.service.functions).map(([name, fn]) => [name, (fn.events ?? []).filter((e) => e.httpApi).map(routeKey)]));
        const { docs, publicRoutes } = config();
        const unknown = [...publicRoutes, ...docs.routes].filter((k) => !declared.has(k));
        if (unknown.length > 0) throw new Refusal(`custom.httpRoutes: ${unknown.join(', ')} is no function's httpApi event in serverless.yml`);
        try {
          Resources.HttpApiStage.Properties.RouteSettings = routeSettings(routes, config());
        } catch (error) {
          throw new Refusal(error.message);
        }
        // A stage's RouteSettings may name only routes that exist: create them first.
        const routeIds = Object.keys(Resources).filter((id) => Resources[id].Type === 'AWS::ApiGatewayV2::Route');
        Resources.HttpApiStage.DependsOn = [...[Resources.HttpApiStage.DependsOn ?? []].flat(), ...routeIds];
      },
    };
  }
}

module.exports = HttpRoutesPlugin;
module.exports.routeSettings = routeSettings;
