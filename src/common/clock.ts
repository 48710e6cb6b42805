/** Anything that schedules takes a Clock, so tests and the simulator control time. */
export interface Clock {
  /** Milliseconds, monotonic, arbitrary origin. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (for records shown to users). */
  wallNow(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};
