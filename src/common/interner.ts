/**
 * One copy of each of a few strings that thousands of objects repeat
 * (namespace, runtime, price class): every function definition read from
 * SQLite or cloned across threads arrives with its own copies of them, a few
 * dozen bytes each, against a budget of 2 kB of control-plane heap per
 * function. Bounded: past `max` distinct strings, new ones pass through.
 */
export class Interner {
  private readonly seen = new Map<string, string>();

  constructor(private readonly max = 10_000) {}

  intern(s: string): string {
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    if (this.seen.size < this.max) this.seen.set(s, s);
    return s;
  }
}
