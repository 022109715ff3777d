/**
 * `target.push(...items)` passes every item as an argument, and a long text's arrays (a
 * 200K-character prompt) outgrow the call stack that way: a RangeError from deep inside the
 * tokenizer. These loop instead.
 */
export function pushAll<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}

/** `target.splice(start, deleteCount, ...items)` for any number of items. */
export function spliceAll<T>(target: T[], start: number, deleteCount: number, items: readonly T[]): T[] {
  const tail = target.slice(start + deleteCount);
  target.length = start;
  pushAll(target, items);
  pushAll(target, tail);
  return target;
}
