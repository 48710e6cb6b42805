import { describe, expect, it } from 'vitest';
import { countListeners, listenerInodes } from './listen.js';

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 ffff 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 ffff 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D3A2 06 00000000:00000000 03:00000F3B 00000000     0        0 0 3 ffff
   3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 ffff 100 0 0 10 0
`;

describe('countListeners', () => {
  it('counts LISTEN rows of one port, not its TIME_WAIT connections or other ports', () => {
    expect(countListeners(TABLE, 8080)).toBe(2);
    expect(countListeners(TABLE, 8081)).toBe(1);
    expect(countListeners(TABLE, 80)).toBe(0);
    expect(countListeners('', 8080)).toBe(0);
  });
});

describe('listenerInodes', () => {
  it('names the socket inode of each LISTEN row of the port (to tell our own listeners from another process\'s)', () => {
    expect(listenerInodes(TABLE, 8080)).toEqual(['1', '2']);
    expect(listenerInodes(TABLE, 8081)).toEqual(['3']);
    expect(listenerInodes(TABLE, 80)).toEqual([]);
  });
});
