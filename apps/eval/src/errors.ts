// @blip2/tensor, not the SDK: commands that load no model (score, merge) must not load onnxruntime
import { Blip2Error } from '@blip2/tensor';

/**
 * Every failure the evaluation app reports on purpose is a `VqaEvalError` with a stable `code`,
 * so scripts (and tests) can branch on the code while people read the message, which always
 * names the file, field or value at fault.
 */
export type EvalErrorCode =
  | 'E_MODEL' // the model cannot be loaded by the SDK (missing folder, bad config, unknown family)
  | 'E_IMAGE' // an image of a batch cannot be decoded or preprocessed
  | 'E_ARGS' // bad command line or option value
  | 'E_READ' // a file could not be read
  | 'E_JSON' // a file is not valid JSON
  | 'E_FIELD' // a JSON file has a missing or wrongly typed field
  | 'E_DUPLICATE' // a question id appears twice in one file
  | 'E_MISSING_ANNOTATION' // a question has no annotation
  | 'E_ANNOTATION_MISMATCH' // a question's annotation names another image_id
  | 'E_PATTERN' // bad --image-pattern
  | 'E_PROMPT' // bad --prompt template
  | 'E_IMAGE_MISSING' // an image file the questions need does not exist
  | 'E_RESULTS_MISMATCH' // results' question ids differ from the annotations'
  | 'E_OUT' // --out (or a file beside it) cannot be written: missing folder, a link, a directory, no permission
  | 'E_OUT_LOCKED' // another live run writes the same --out (the message names its pid and host)
  | 'E_PROGRESS_EXISTS' // a progress file exists and --resume was not given
  | 'E_PROGRESS_CORRUPT' // a progress file line cannot be read
  | 'E_RESUME_MISMATCH' // --resume with settings that differ from the recorded ones
  | 'E_ANSWERER' // the answerer broke its contract (wrong answer count, bad module) or refused a batch
  | 'E_ABORTED' // the run was interrupted; the progress file holds what was done
  | 'E_MERGE_OVERLAP' // two shard result files answer the same question
  | 'E_MERGE_INCOMPLETE'; // merged shards do not cover the questions

export class VqaEvalError extends Blip2Error<EvalErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.VqaEvalError');
  constructor(code: EvalErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'VqaEvalError';
  }
}
