/** A configuration mistake: stops start-up with the setting's name, its value and what is accepted. */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly value: string,
    readonly accepted: string,
  ) {
    super(`invalid ${setting}=${JSON.stringify(value)}: expected ${accepted}`);
    this.name = "ConfigError";
  }
}
