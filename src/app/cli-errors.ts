/** Bad input or usage: the command exits 2 (CONTRACT.md "Command line"). */
export class InputError extends Error {}
