// Every schema here is written with zod/mini: the same checks as zod's chained API at a fraction
// of its bundle size (zod was the largest part of the writer and reader after Kafka). It leaves
// messages to a locale: English, set once here, as the chained API has it. Import it as
// `import * as z from './zod.ts'`: the bundler then keeps only what is used.
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export * from 'zod/mini';
