/**
 * The few Python built-ins whose exact behaviour the official VQA scorer and LAVIS depend on.
 * JavaScript's nearest equivalents differ at the edges (what counts as whitespace, how ties
 * round, how floats are summed), and at the edges is where an accuracy changes in its last digit.
 */

/** Characters Python's `str.isspace()` accepts: what `str.split()` and `str.strip()` use. */
const PY_WHITESPACE =
  '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const WS_CLASS = `[${PY_WHITESPACE}]`;
const WS_RUN = new RegExp(`${WS_CLASS}+`, 'u');
const WS_STRIP = new RegExp(`^${WS_CLASS}+|${WS_CLASS}+$`, 'gu');

/** `s.split()`: split on whitespace runs, no empty pieces. */
export function pySplit(s: string): string[] {
  return s.split(WS_RUN).filter((w) => w.length > 0);
}

/** `s.strip()` */
export function pyStrip(s: string): string {
  return s.replace(WS_STRIP, '');
}

/**
 * `round(x, 2)` on a float: Python rounds the exact binary value, so `round(0.125, 2)` is a true
 * tie and goes to even (0.12), where `toFixed` goes up (0.13). Such ties are exactly the values
 * whose 100x has fraction .5, i.e. x = odd/8 (+ integer), so only those need special care.
 */
export function pyRound2(x: number): number {
  if (!Number.isFinite(x)) return x;
  const eighths = Math.abs(x) * 8;
  if (Number.isInteger(eighths) && eighths % 2 === 1) {
    const lower = Math.floor(Math.abs(x) * 100); // exact: |x|*100 = n + 0.5 is representable
    const even = lower % 2 === 0 ? lower : lower + 1;
    return (Math.sign(x) * even) / 100;
  }
  return Number(x.toFixed(2));
}

/** A number as Python holds it: `min(1, k / 3)` returns the int 1, and ints sum exactly. */
export type PyNumber = number | { readonly int: number };

/**
 * How Python's built-in `sum` adds floats. `left-to-right`: Python 2 and CPython <= 3.11, which
 * run the official scorer and LAVIS's port almost everywhere: plain double additions in order.
 * `compensated`: CPython 3.12+, Neumaier's compensated summation. The two differ by an ulp or so,
 * enough to move a reported accuracy by 0.01 when its exact value is a .xx5 tie.
 */
export type PySumMode = 'left-to-right' | 'compensated';

export const PY_SUM_MODES: readonly PySumMode[] = ['left-to-right', 'compensated'];

/**
 * `sum(values)` as CPython computes it: ints are added exactly until the first float, which is
 * added plainly; from there on each value is added in order (`left-to-right`, the default) or
 * with Neumaier's compensation added at the end (`compensated`, CPython 3.12+).
 */
export function pySum(values: Iterable<PyNumber>, mode: PySumMode = 'left-to-right'): number {
  let intSum = 0;
  let sum = 0;
  let c = 0;
  let inFloat = false;
  for (const v of values) {
    const isInt = typeof v !== 'number';
    const x = isInt ? v.int : v;
    if (!inFloat) {
      if (isInt) {
        intSum += x;
        continue;
      }
      sum = intSum + x;
      inFloat = true;
      continue;
    }
    const t = sum + x;
    if (mode === 'compensated') {
      if (Math.abs(sum) >= Math.abs(x)) c += sum - t + x;
      else c += x - t + sum;
    }
    sum = t;
  }
  if (!inFloat) return intSum;
  if (c !== 0 && Number.isFinite(c)) sum += c;
  return sum;
}
