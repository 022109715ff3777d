/**
 * The text side of the BLIP-2 zero-shot VQA protocol as LAVIS runs it: `BlipQuestionProcessor.pre_question`
 * on the question, Python's `str.format` of the prompt template, and answers stripped of surrounding
 * whitespace (blip2_opt / blip2_t5 `predict_answers`). The protocols' settings themselves live in the
 * language-model family packages (`OPT_VQA_PRESETS`, `T5_VQA_PRESETS`).
 */
import type { QuestionPreprocess } from '@blip2/generation';
import { VqaEvalError } from './errors.js';
import { pyStrip } from './python.js';

/** `BlipQuestionProcessor(max_words=50)`. */
export const LAVIS_MAX_WORDS = 50;

const LAVIS_STRIP = /[.!"()*#:;~]/g;

/**
 * LAVIS `pre_question`: lowercase, delete `.!"()*#:;~`, strip trailing spaces, keep the first
 * `maxWords` words. It splits on single spaces (not whitespace runs) and does not collapse
 * whitespace (that is `pre_caption`), so neither does this.
 */
export function lavisPreQuestion(question: string, maxWords = LAVIS_MAX_WORDS): string {
  const q = question.toLowerCase().replace(LAVIS_STRIP, '').replace(/ +$/, '');
  const words = q.split(' ');
  return words.length > maxWords ? words.slice(0, maxWords).join(' ') : q;
}

export function preprocessQuestion(question: string, mode: QuestionPreprocess): string {
  return mode === 'lavis' ? lavisPreQuestion(question) : question;
}

/**
 * Python's `template.format(question)` for a template with one `{}`: `{{`/`}}` are literal braces,
 * anything else in braces is refused (LAVIS only ever uses `{}`).
 */
export function compilePrompt(template: string): (question: string) => string {
  const pieces: string[] = [];
  let current = '';
  let fields = 0;
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    const next = template[i + 1];
    if ((ch === '{' && next === '{') || (ch === '}' && next === '}')) {
      current += ch;
      i++;
    } else if (ch === '{' && next === '}') {
      pieces.push(current);
      current = '';
      fields++;
      i++;
    } else if (ch === '{' || ch === '}') {
      throw new VqaEvalError(
        'E_PROMPT',
        `--prompt "${template}": unexpected "${ch}" at position ${i} (use {} for the question, {{ and }} for braces)`,
      );
    } else {
      current += ch;
    }
  }
  pieces.push(current);
  if (fields !== 1) {
    throw new VqaEvalError(
      'E_PROMPT',
      `--prompt "${template}": needs exactly one {} for the question (found ${fields})`,
    );
  }
  return (question) => pieces[0] + question + pieces[1];
}

/** Answers are stripped (LAVIS `output_text = [text.strip() ...]`). */
export function postprocessAnswer(answer: string): string {
  return pyStrip(answer);
}
