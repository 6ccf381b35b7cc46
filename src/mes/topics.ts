/**
 * The MQTT topics visq uses (CONTRACT.md "MQTT"): `{prefix}/{site}/{line}/{stationId}/verdict` and
 * `…/context` per station, `{prefix}/{site}/_module/state` for the module.
 */
export class Topics {
  constructor(private readonly prefix: string, private readonly site: string) {}

  /** Where a verdict message goes: its own station's topic, on this installation's prefix. */
  verdict(m: { site: string; line: string; stationId: string }): string {
    return `${this.prefix}/${m.site}/${m.line}/${m.stationId}/verdict`;
  }

  /** Every station's retained context (MES → module). */
  get contexts(): string {
    return `${this.prefix}/${this.site}/+/+/context`;
  }

  get state(): string {
    return `${this.prefix}/${this.site}/_module/state`;
  }

  /** The line and station a `…/{line}/{stationId}/context` topic names. */
  contextOf(topic: string): { line: string; stationId: string } {
    const levels = topic.split('/');
    return { line: levels.at(-3)!, stationId: levels.at(-2)! };
  }
}
