/** "Did you mean": the closest known name to a mistyped one, for options refused by name. */

/** Edit distance with swapped neighbours as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The closest of `names` to a mistyped `word`, if any is close: a part of a name
 * (`--beams` for `--num-beams`), or at most a third of its letters off.
 */
export function closest(word: string, names: readonly string[]): string | undefined {
  // a pasted paragraph is no typo of an option name (and the distance table is quadratic)
  if (word.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const part = word.length >= 4 && (name.includes(word) || word.includes(name));
    const d = part ? 1 : distance(word, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * The message refusing the first name of `options` outside `known`, with the closest
 * known one suggested (`unknown option "numBeems" in generation options (did you mean
 * 'numBeams'?)`), or undefined when every name is known. Each package throws it in its
 * own error class, so the refusal carries that package's stable code.
 */
export function unknownOptionMessage(
  options: object,
  known: readonly string[],
  where: string,
): string | undefined {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const near = closest(name, known);
    return `unknown option ${JSON.stringify(name)} in ${where}${near ? ` (did you mean '${near}'?)` : ''}`;
  }
  return undefined;
}
