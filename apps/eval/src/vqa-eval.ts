/**
 * The official VQA accuracy (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py,
 * the Python 3 version that LAVIS also ships), rule for rule, quirks included:
 * - answers (predicted and ground truth) have newlines/tabs turned into spaces and are stripped;
 * - normalization (punctuation, then digits/articles/contractions) happens only when the ground
 *   truth answers are not all identical, and then to the prediction too;
 * - accuracy of a prediction = mean over the 10 leave-one-annotator-out sets of
 *   min(#other annotators who gave it / 3, 1);
 * - overall / per answer type / per question type: mean, times 100, Python `round(x, 2)`;
 * - sums as the Python that runs it adds floats: left to right by default (Python 2, CPython
 *   <= 3.11), or compensated (CPython 3.12+) on request.
 */
import { VqaEvalError } from './errors.js';
import { type PyNumber, type PySumMode, pyRound2, pySplit, pyStrip, pySum } from './python.js';

export interface VqaAnswer {
  answer: string;
  answer_id?: number;
  answer_confidence?: string;
  [key: string]: unknown;
}

export interface VqaAnnotation {
  question_id: number;
  image_id: number;
  question_type: string;
  answer_type: string;
  multiple_choice_answer?: string;
  answers: VqaAnswer[];
}

/** One line of the official results format. */
export interface VqaResult {
  question_id: number;
  answer: string;
}

export interface VqaAccuracy {
  overall: number;
  perAnswerType: Record<string, number>;
  perQuestionType: Record<string, number>;
  /** Keyed by question id (as a string, like JSON object keys). */
  perQuestion: Record<string, number>;
}

// The official punctuation list. ':' and "'" are absent (an older revision had them), so
// contractions survive to be mapped below.
const PUNCT = [
  ';',
  '/',
  '[',
  ']',
  '"',
  '{',
  '}',
  '(',
  ')',
  '=',
  '+',
  '\\',
  '_',
  '-',
  '>',
  '<',
  '@',
  '`',
  ',',
  '?',
  '!',
];
// Python's `\d` in a str pattern matches any Unicode decimal digit.
const COMMA_STRIP = /(\p{Nd})(,)(\p{Nd})/u;
const DIGIT = /\p{Nd}/u;
// The official periodStrip is `(?!<=\d)(\.)(?!\d)` (a lookahead misspelt as a lookbehind, so it
// only checks what follows) passed `re.UNICODE` as the *count* argument: at most 32 periods go.
const PERIOD_STRIP_COUNT = 32;

const MANUAL_MAP: Readonly<Record<string, string>> = {
  none: '0',
  zero: '0',
  one: '1',
  two: '2',
  three: '3',
  four: '4',
  five: '5',
  six: '6',
  seven: '7',
  eight: '8',
  nine: '9',
  ten: '10',
};

const ARTICLES = new Set(['a', 'an', 'the']);

// The official table verbatim, with its mix of straight (') and curly (’) apostrophes and its
// capitalised keys that can never match a lowercased word: the scorer's behaviour, not a typo here.
// biome-ignore format: a table reads better packed
const CONTRACTIONS: ReadonlyMap<string, string> = new Map<string, string>([
      ['aint', "ain't"], ['arent', "aren't"], ['cant', "can't"], ['couldve', "could've"], ['couldnt', "couldn't"],
      ["couldn'tve", 'couldn’t’ve'], ['couldnt’ve', 'couldn’t’ve'], ['didnt', 'didn’t'], ['doesnt', 'doesn’t'],
      ['dont', 'don’t'], ['hadnt', 'hadn’t'], ['hadnt’ve', 'hadn’t’ve'], ["hadn'tve", 'hadn’t’ve'], ['hasnt', 'hasn’t'],
      ['havent', 'haven’t'], ['hed', 'he’d'], ['hed’ve', 'he’d’ve'], ['he’dve', 'he’d’ve'], ['hes', 'he’s'],
      ['howd', 'how’d'], ['howll', 'how’ll'], ['hows', 'how’s'], ['Id’ve', 'I’d’ve'], ['I’dve', 'I’d’ve'], ['Im', 'I’m'],
      ['Ive', 'I’ve'], ['isnt', 'isn’t'], ['itd', 'it’d'], ['itd’ve', 'it’d’ve'], ['it’dve', 'it’d’ve'], ['itll', 'it’ll'],
      ['let’s', 'let’s'], ['maam', 'ma’am'], ['mightnt', 'mightn’t'], ['mightnt’ve', 'mightn’t’ve'],
      ['mightn’tve', 'mightn’t’ve'], ['mightve', 'might’ve'], ['mustnt', 'mustn’t'], ['mustve', 'must’ve'],
      ['neednt', 'needn’t'], ['notve', 'not’ve'], ['oclock', 'o’clock'], ['oughtnt', 'oughtn’t'],
      ['ow’s’at', '’ow’s’at'], ['’ows’at', '’ow’s’at'], ['’ow’sat', '’ow’s’at'], ['shant', 'shan’t'],
      ['shed’ve', 'she’d’ve'], ['she’dve', 'she’d’ve'], ['she’s', 'she’s'], ['shouldve', 'should’ve'],
      ['shouldnt', 'shouldn’t'], ['shouldnt’ve', 'shouldn’t’ve'], ['shouldn’tve', 'shouldn’t’ve'],
      ['somebody’d', 'somebodyd'], ['somebodyd’ve', 'somebody’d’ve'], ['somebody’dve', 'somebody’d’ve'],
      ['somebodyll', 'somebody’ll'], ['somebodys', 'somebody’s'], ['someoned', 'someone’d'],
      ['someoned’ve', 'someone’d’ve'], ['someone’dve', 'someone’d’ve'], ['someonell', 'someone’ll'],
      ['someones', 'someone’s'], ['somethingd', 'something’d'], ['somethingd’ve', 'something’d’ve'],
      ['something’dve', 'something’d’ve'], ['somethingll', 'something’ll'], ['thats', 'that’s'], ['thered', 'there’d'],
      ['thered’ve', 'there’d’ve'], ['there’dve', 'there’d’ve'], ['therere', 'there’re'], ['theres', 'there’s'],
      ['theyd', 'they’d'], ['theyd’ve', 'they’d’ve'], ['they’dve', 'they’d’ve'], ['theyll', 'they’ll'],
      ['theyre', 'they’re'], ['theyve', 'they’ve'], ['twas', '’twas'], ['wasnt', 'wasn’t'], ['wed’ve', 'we’d’ve'],
      ['we’dve', 'we’d’ve'], ['weve', "we've"], ['werent', 'weren’t'], ['whatll', 'what’ll'], ['whatre', 'what’re'],
      ['whats', 'what’s'], ['whatve', 'what’ve'], ['whens', 'when’s'], ['whered', 'where’d'], ['wheres', "where's"],
      ['whereve', 'where’ve'], ['whod', 'who’d'], ['whod’ve', 'who’d’ve'], ['who’dve', 'who’d’ve'], ['wholl', 'who’ll'],
      ['whos', 'who’s'], ['whove', "who've"], ['whyll', 'why’ll'], ['whyre', 'why’re'], ['whys', 'why’s'],
      ['wont', 'won’t'], ['wouldve', 'would’ve'], ['wouldnt', 'wouldn’t'], ['wouldnt’ve', 'wouldn’t’ve'],
      ['wouldn’tve', 'wouldn’t’ve'], ['yall', 'y’all'], ['yall’ll', 'y’all’ll'], ['y’allll', 'y’all’ll'],
      ['yall’d’ve', 'y’all’d’ve'], ['y’alld’ve', 'y’all’d’ve'], ['y’all’dve', 'y’all’d’ve'], ['youd', 'you’d'],
      ['youd’ve', 'you’d’ve'], ['you’dve', 'you’d’ve'], ['youll', 'you’ll'], ['youre', 'you’re'], ['youve', 'you’ve'],
]);

/** Turns newlines and tabs into spaces and strips, as the scorer does to every answer first. */
export function cleanAnswer(text: string): string {
  return pyStrip(text.replaceAll('\n', ' ').replaceAll('\t', ' '));
}

/**
 * The scorer's `processPunctuation`. Whether a mark is deleted or turned into a space is decided
 * on the *input* text: deleted when the mark sits next to a space anywhere in it, or when it
 * contains digit,digit; otherwise replaced by a space. Then periods not followed by a digit go.
 */
export function processPunctuation(inText: string): string {
  const hasDigitComma = COMMA_STRIP.test(inText);
  let outText = inText;
  for (const p of PUNCT) {
    const touchesSpace = inText.includes(`${p} `) || inText.includes(` ${p}`);
    outText = outText.replaceAll(p, touchesSpace || hasDigitComma ? '' : ' ');
  }
  return periodStrip(outText);
}

function periodStrip(text: string): string {
  let out = '';
  let removed = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '.' && removed < PERIOD_STRIP_COUNT && !startsWithDigit(text, i + 1)) {
      removed++;
      continue;
    }
    out += ch;
  }
  return out;
}

function startsWithDigit(text: string, at: number): boolean {
  const cp = text.codePointAt(at);
  return cp !== undefined && DIGIT.test(String.fromCodePoint(cp));
}

/** The scorer's `processDigitArticle`: lowercase, number words to digits, drop articles, contractions. */
export function processDigitArticle(inText: string): string {
  const words: string[] = [];
  for (const raw of pySplit(inText.toLowerCase())) {
    const word = MANUAL_MAP[raw] ?? raw;
    if (!ARTICLES.has(word)) words.push(word);
  }
  return words.map((w) => CONTRACTIONS.get(w) ?? w).join(' ');
}

/** Python dict equality on an answer record: the leave-one-out drops every record equal to the held-out one. */
function sameRecord(a: VqaAnswer, b: VqaAnswer): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

/** The accuracy of one predicted answer against one question's human answers, in [0, 1]. */
export function answerAccuracy(
  prediction: string,
  gtAnswers: readonly VqaAnswer[],
  sum: PySumMode = 'left-to-right',
): number {
  let resAns = cleanAnswer(prediction);
  let answers = gtAnswers.map((a) => ({ ...a, answer: cleanAnswer(a.answer) }));
  if (new Set(answers.map((a) => a.answer)).size > 1) {
    answers = answers.map((a) => ({ ...a, answer: processDigitArticle(processPunctuation(a.answer)) }));
    resAns = processDigitArticle(processPunctuation(resAns));
  }
  const gtAcc: PyNumber[] = answers.map((held) => {
    const matching = answers.filter((other) => !sameRecord(other, held) && other.answer === resAns).length;
    // `min(1, float(n) / 3)` returns the int 1 once n >= 3, which Python's sum treats exactly.
    return matching >= 3 ? { int: 1 } : matching / 3;
  });
  return pySum(gtAcc, sum) / gtAcc.length;
}

/** What is wrong between a result set and the annotations, for the mismatch error. */
export function describeIdMismatch(expected: Iterable<number>, got: Iterable<number>): string | undefined {
  const want = new Set(expected);
  const have = new Set(got);
  const missing = [...want].filter((id) => !have.has(id));
  const extra = [...have].filter((id) => !want.has(id));
  if (missing.length === 0 && extra.length === 0) return undefined;
  const list = (ids: number[]) =>
    ids.length === 0
      ? 'none'
      : `${ids.length} (${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', ...' : ''})`;
  return `missing question ids: ${list(missing)}; extra question ids: ${list(extra)}`;
}

/**
 * Scores `results` against `annotations`. Like the official scorer (which asserts it), the
 * results must answer exactly the annotated questions; pass a subset of the annotations to score
 * a subset. Questions are taken in results order, as the official scorer does.
 */
export function scoreVqa(
  annotations: ReadonlyMap<number, VqaAnnotation>,
  results: readonly VqaResult[],
  resultsLabel = 'results',
  sum: PySumMode = 'left-to-right',
): VqaAccuracy {
  const mismatch = describeIdMismatch(
    annotations.keys(),
    results.map((r) => r.question_id),
  );
  if (mismatch) {
    throw new VqaEvalError(
      'E_RESULTS_MISMATCH',
      `${resultsLabel}: its question ids differ from the annotations': ${mismatch}`,
    );
  }
  if (results.length !== annotations.size) {
    throw new VqaEvalError('E_DUPLICATE', `${resultsLabel}: a question id is answered more than once`);
  }
  const accQA: number[] = [];
  const byQuestionType = new Map<string, number[]>();
  const byAnswerType = new Map<string, number[]>();
  const perQuestion: Record<string, number> = {};
  for (const { question_id, answer } of results) {
    const gt = annotations.get(question_id)!;
    const acc = answerAccuracy(answer, gt.answers, sum);
    accQA.push(acc);
    push(byQuestionType, gt.question_type, acc);
    push(byAnswerType, gt.answer_type, acc);
    perQuestion[String(question_id)] = pyRound2(100 * acc);
  }
  return {
    overall: percent(accQA, sum),
    perAnswerType: Object.fromEntries([...byAnswerType].map(([k, v]) => [k, percent(v, sum)])),
    perQuestionType: Object.fromEntries([...byQuestionType].map(([k, v]) => [k, percent(v, sum)])),
    perQuestion,
  };
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** `round(100 * float(sum(accs)) / len(accs), 2)`, evaluated in the same order. */
function percent(accs: readonly number[], sum: PySumMode): number {
  return pyRound2((100 * pySum(accs, sum)) / accs.length);
}
