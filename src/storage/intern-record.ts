import type { Interner } from '../common/interner.js';
import type { FunctionRecord } from './store.js';

/** The same strings of many definitions (namespace, runtime, class, handler) made one copy each. */
export function internRecord(r: FunctionRecord, strings: Interner): FunctionRecord {
  r.namespace = strings.intern(r.namespace);
  const s = r.spec;
  s.runtime = strings.intern(s.runtime) as typeof s.runtime;
  s.priceClass = strings.intern(s.priceClass);
  if (s.handler !== undefined) s.handler = strings.intern(s.handler);
  return r;
}
