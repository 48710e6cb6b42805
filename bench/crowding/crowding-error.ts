/** The experiment cannot go on or cannot be trusted (a child died, sandboxes never came up, calls failed while warming up); the message says which. */
export class CrowdingError extends Error {
  override readonly name = 'CrowdingError';
}
