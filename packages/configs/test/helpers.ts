import { readFileSync } from 'node:fs';

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** The JSON spelling of a camelCase field. */
function snake(name: string): string {
  if (name === 'removeFinalLayerNorm') return '_remove_final_layer_norm';
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Compares every field of a parsed config with the raw JSON value it was read
 * from (when the JSON holds one) and returns how many fields were compared.
 */
export function expectMirrors(parsed: object, raw: Record<string, unknown>, path = ''): number {
  let compared = 0;
  for (const [key, value] of Object.entries(parsed)) {
    const rawKey = snake(key);
    if (!(rawKey in raw) || raw[rawKey] === null) continue;
    const rawValue = raw[rawKey];
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      compared += expectMirrors(value, rawValue as Record<string, unknown>, `${path}${rawKey}.`);
    } else {
      if (JSON.stringify(value) !== JSON.stringify(rawValue)) {
        throw new Error(
          `${path}${rawKey}: parsed ${JSON.stringify(value)} but the JSON holds ${JSON.stringify(rawValue)}`,
        );
      }
      compared++;
    }
  }
  return compared;
}
