/** The simulated cluster. */
export interface ClusterConfig {
  machines: number;
  cores: number;
  shards: number;
  k: number;
  idleList: boolean;
  /** RAM per machine (Infinity = effectively unlimited) and swap per machine, MB. */
  ramMb: number;
  swapMb: number;
  /** How often machines check memory and report to the idle lists. */
  memTickMs: number;
}

export const DEFAULT_CLUSTER: ClusterConfig = { machines: 100, cores: 8, shards: 4, k: 3, idleList: false, ramMb: Infinity, swapMb: 0, memTickMs: 100 };
