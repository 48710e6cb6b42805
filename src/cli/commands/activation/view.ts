/** An activation record as the API returns it. */
export interface ActivationView {
  id: string;
  function: string;
  priceClass: string;
  status: string;
  start: number;
  durationMs: number | null;
  cpuSeconds: number;
  gbSeconds: number;
  cost: number;
  statusCode: number | null;
  async: boolean;
  attempts: number;
  parentId: string | null;
}

export const ACTIVATION_COLUMNS = ['id', 'function', 'class', 'status', 'code', 'start', 'ms', 'cpu_s', 'cost', 'kind'];

export function activationRow(a: ActivationView): Record<string, unknown> {
  return {
    id: a.id,
    function: a.function,
    class: a.priceClass,
    status: a.status,
    code: a.statusCode,
    start: new Date(a.start).toISOString(),
    ms: a.durationMs === null ? null : Math.round(a.durationMs),
    cpu_s: a.cpuSeconds.toFixed(4),
    cost: a.cost.toFixed(6),
    kind: `${a.async ? 'async' : 'sync'}${a.attempts > 1 ? ` ×${a.attempts}` : ''}${a.parentId === null ? '' : ' (chain)'}`,
  };
}
