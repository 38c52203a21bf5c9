// What this browser keeps for the viewer in localStorage: each film's last reported position (so a
// reload reads it before the writer has stored it), and what a hidden page could not be sure to deliver.
import type { FilmProgress, ProgressStore, QueuedEvent } from './types.ts';

export interface LocalStore {
  /** Keeps a film_progress event as the film's latest position. */
  remember(event: QueuedEvent & { type: 'film_progress' }): void;
  /** This browser's last report of a film. */
  report(filmId: string): FilmProgress | undefined;
  /** This browser's reports of the current viewer. */
  reports(): FilmProgress[];
  /** The newer of the server's and this browser's position (by event time); a local report the server caught up with is forgotten. */
  newer(server: FilmProgress | null | undefined, own: FilmProgress | undefined): FilmProgress | null;
  /** Keeps events for the next load of the page (by event_id, the newest `maxQueue`). */
  keep(events: QueuedEvent[]): void;
  /** Takes what an earlier load kept. */
  takeKept(): QueuedEvent[];
}

/** `subject` names the viewer (the token's `sub`); nothing is kept before there is one. */
export function createLocalStore(storage: ProgressStore | null | undefined, subject: () => string | undefined, maxQueue: number): LocalStore {
  // One key per viewer and film, and one per viewer for the kept events.
  const progressKey = (filmId: string) => `ugc:progress:${subject() ?? ''}:${filmId}`;
  const queueKey = () => `ugc:queue:${subject() ?? ''}`;
  const attempt = (act: (store: ProgressStore) => void) => {
    try {
      if (storage) act(storage);
    } catch { /* full or blocked: the server's position still answers */ }
  };
  const read = (key: string): FilmProgress | undefined => {
    try {
      const value = storage?.getItem(key);
      return value ? (JSON.parse(value) as FilmProgress) : undefined;
    } catch {
      return undefined;
    }
  };
  const keptEvents = (store: ProgressStore) => JSON.parse(store.getItem(queueKey()) ?? '[]') as QueuedEvent[];

  return {
    remember(event) {
      attempt((store) => store.setItem(progressKey(event.film_id), JSON.stringify({
        film_id: event.film_id, position_s: event.position_s, duration_s: event.duration_s ?? null, updated_at: event.client_ts,
      })));
    },
    report: (filmId) => read(progressKey(filmId)),
    reports() {
      const prefix = progressKey('');
      const found: FilmProgress[] = [];
      attempt((store) => {
        for (let i = 0; i < store.length; i++) {
          const key = store.key(i);
          const report = key?.startsWith(prefix) ? read(key) : undefined;
          if (report) found.push(report);
        }
      });
      return found;
    },
    newer(server, own) {
      if (!own) return server ?? null;
      if (server && server.updated_at >= own.updated_at) {
        attempt((store) => store.removeItem(progressKey(own.film_id)));
        return server;
      }
      return own;
    },
    keep(events) {
      attempt((store) => {
        const kept = new Map([...keptEvents(store), ...events].map((e) => [e.event_id, e]));
        store.setItem(queueKey(), JSON.stringify([...kept.values()].slice(-maxQueue)));
      });
    },
    takeKept() {
      let kept: QueuedEvent[] = [];
      attempt((store) => {
        kept = keptEvents(store);
        store.removeItem(queueKey());
      });
      return kept;
    },
  };
}
