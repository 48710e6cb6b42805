export interface PriceClassDef {
  name: string;
  /** Price per CPU-second (µ¢). */
  price: number;
}

export interface PriceClass extends PriceClassDef {
  /** 0 = cheapest. */
  rank: number;
}

export const DEFAULT_PRICE_CLASSES: readonly PriceClassDef[] = [
  { name: 'batch', price: 0.5 },
  { name: 'standard', price: 1 },
  { name: 'interactive', price: 1.5 },
  { name: 'critical', price: 2 },
];

/** The fixed set of price classes configured at start. */
export class PriceClassSet {
  /** Cheapest first. */
  readonly byRank: readonly PriceClass[];
  private readonly byName = new Map<string, PriceClass>();

  constructor(defs: readonly PriceClassDef[] = DEFAULT_PRICE_CLASSES) {
    if (defs.length === 0) throw new RangeError('price classes: at least one class is required');
    const seen = new Set<string>();
    for (const [i, d] of defs.entries()) {
      if (typeof d.name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(d.name)) throw new RangeError(`price classes[${i}].name: "${String(d.name)}" is not a lowercase name`);
      if (seen.has(d.name)) throw new RangeError(`price classes[${i}].name: "${d.name}" appears twice`);
      if (!Number.isFinite(d.price) || d.price <= 0) throw new RangeError(`price classes[${i}].price: must be a positive number, got ${d.price}`);
      seen.add(d.name);
    }
    const sorted = [...defs].sort((a, b) => a.price - b.price);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]?.price === sorted[i - 1]?.price) throw new RangeError(`price classes: "${sorted[i - 1]?.name}" and "${sorted[i]?.name}" have the same price`);
    }
    this.byRank = sorted.map((d, rank) => ({ name: d.name, price: d.price, rank }));
    for (const c of this.byRank) this.byName.set(c.name, c);
  }

  get size(): number {
    return this.byRank.length;
  }

  get lowest(): PriceClass {
    return this.byRank[0] as PriceClass;
  }

  get highest(): PriceClass {
    return this.byRank[this.byRank.length - 1] as PriceClass;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): PriceClass {
    const c = this.byName.get(name);
    if (c === undefined) throw new RangeError(`unknown price class "${name}"; configured classes: ${this.byRank.map((x) => x.name).join(', ')}`);
    return c;
  }

  names(): string[] {
    return this.byRank.map((c) => c.name);
  }

  /** A call made from inside an invocation runs at least at its caller's class: the maximum along the chain. */
  effective(chain: readonly string[]): PriceClass {
    if (chain.length === 0) throw new RangeError('effective price class of an empty call chain');
    let best = this.get(chain[0] as string);
    for (const name of chain) {
      const c = this.get(name);
      if (c.rank > best.rank) best = c;
    }
    return best;
  }
}
