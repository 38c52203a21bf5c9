/** A sleep that wake() ends early: the delivery loop waits for a due batch, new records, or stop(). */
export class WakeableSleep {
  #wakeUp: (() => void) | undefined;

  /** Sleeps up to `ms`, or until wake() is called. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeUp = done;
    });
  }

  /** Ends the current sleep, if any. */
  wake(): void {
    const wakeUp = this.#wakeUp;
    this.#wakeUp = undefined;
    wakeUp?.();
  }
}
