// Facts of the HTTP API that a function's answers and the OpenAPI document (shared/openapi.ts) both
// state: one home each, so the document cannot promise what the function does not do.

/** `GET /v1/progress`: films answered without `?limit=`, and the most `?limit=` may ask for (the reader's READ_DEFAULT_LIMIT and READ_MAX_LIMIT default to these). */
export const progressLimits = { defaultLimit: 20, maxLimit: 100 } as const;

/** Cache-Control of the answers: a viewer's own data is never kept by a shared cache; the document may be, for 5 minutes. */
export const cacheControl = { viewerData: 'private, no-store', document: 'public, max-age=300' } as const;
