/** A mistake the user can fix (a bad flag, an unreachable gateway, a refused request): printed as one line, no stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
