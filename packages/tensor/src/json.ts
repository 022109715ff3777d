/** A parsed JSON object (not null, not an array): what every config, header and index reader expects. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
