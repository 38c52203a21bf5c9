// The /pipeline page's files: the page, its script, and uPlot from node_modules (nothing from
// the internet), plus the series the page polls each second.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { PipelineView } from './collector.ts';

const publicDir = fileURLToPath(new URL('./public/', import.meta.url));
const uplotDir = createRequire(import.meta.url).resolve('uplot').replace(/[^/\\]+$/, '');

/** An answer for the demo server to send. */
export interface PipelineAnswer { status: number; type: string; body: string }

/** Loads the page's files once; `answer(path)` then serves /pipeline/…, or undefined for other paths. */
export async function pipelinePage(view: PipelineView): Promise<(path: string) => PipelineAnswer | undefined> {
  const [page, script, uplot, uplotCss] = await Promise.all([
    readFile(`${publicDir}index.html`, 'utf8'),
    readFile(`${publicDir}pipeline.js`, 'utf8'),
    readFile(`${uplotDir}uPlot.iife.min.js`, 'utf8'),
    readFile(`${uplotDir}uPlot.min.css`, 'utf8'),
  ]);
  const files: Record<string, () => PipelineAnswer> = {
    '/pipeline': () => ({ status: 200, type: 'text/html; charset=utf-8', body: page }),
    '/pipeline/': () => ({ status: 200, type: 'text/html; charset=utf-8', body: page }),
    '/pipeline/pipeline.js': () => ({ status: 200, type: 'text/javascript; charset=utf-8', body: script }),
    '/pipeline/uPlot.js': () => ({ status: 200, type: 'text/javascript; charset=utf-8', body: uplot }),
    '/pipeline/uPlot.css': () => ({ status: 200, type: 'text/css; charset=utf-8', body: uplotCss }),
    '/pipeline/series.json': () => ({ status: 200, type: 'application/json', body: JSON.stringify(view.series()) }),
  };
  return (path) => files[path]?.();
}
