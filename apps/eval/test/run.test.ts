import {
  appendFileSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/command.js';
import { loadAnnotations } from '../src/data.js';
import { VqaEvalError } from '../src/errors.js';
import { mergeResults } from '../src/merge.js';
import { readProgress } from '../src/progress-log.js';
import { progressPathFor, type RunOptions, reportPathsFor, runEvaluation } from '../src/run.js';
import { selectQuestions, shardFromEnvironment } from '../src/select.js';
import { scoreVqa } from '../src/vqa-eval.js';
import { FAKE_TOKEN_IDS, FakeAnswerer, fakeAnswer, runShapesVal, shapes, tempDir } from './helpers.js';

const base = (extra: Partial<RunOptions> = {}): RunOptions => ({
  answerer: new FakeAnswerer(),
  questionsPath: shapes.questions,
  annotationsPath: shapes.annotations,
  imagesDir: shapes.images,
  batchSize: 8,
  limit: 60,
  ...extra,
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof VqaEvalError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('runEvaluation', () => {
  it('answers in file order with the LAVIS question preprocessing and the family prompt', async () => {
    const fake = new FakeAnswerer('t5');
    const out = await runEvaluation(base({ answerer: fake, limit: 10, batchSize: 4 }));
    expect(fake.calls.map((c) => c.length)).toEqual([4, 4, 2]);
    expect(fake.calls[0]![0]).toEqual({
      imagePath: join(shapes.images, 'COCO_val2014_000000000001.jpg'),
      prompt: 'Question: is there a blue triangle? Short answer:',
    });
    expect(out.results).toHaveLength(10);
    // the answers are the fake's, stripped
    expect(out.results[0]!.answer).toBe(fakeAnswer(fake.calls[0]![0]!).trim());
    expect(out.settings.numBeams).toBe(5);
    expect(out.settings.lengthPenalty).toBe(-1);
  });

  it("defaults to LAVIS's protocol: for OPT its prompt, length penalty 0 and the newline stop token", async () => {
    const fake = new FakeAnswerer('opt');
    const out = await runEvaluation(base({ answerer: fake, limit: 4 }));
    const lavis = {
      protocol: 'lavis',
      prompt: 'Question: {} Short answer:',
      questionPreprocess: 'lavis',
      numBeams: 5,
      lengthPenalty: 0,
      eosTokenIds: [FAKE_TOKEN_IDS.newline],
      maxNewTokens: 10,
      minNewTokens: 1,
      paddingSide: 'left',
      maxPromptTokens: 32,
    };
    expect(out.settings).toMatchObject(lavis);
    expect(fake.calls[0]![0]!.prompt).toBe('Question: is there a blue triangle? Short answer:');
    const { protocol: _, prompt: __, questionPreprocess: ___, ...generation } = lavis;
    expect(fake.settings[0]).toEqual(generation);
  });

  it("--protocol paper: the paper's OPT prompt, length penalty -1, the checkpoint's EOS", async () => {
    const fake = new FakeAnswerer('opt');
    const out = await runEvaluation(base({ answerer: fake, limit: 4, protocol: 'paper' }));
    expect(out.settings).toMatchObject({
      protocol: 'paper',
      prompt: 'Question: {} Answer:',
      lengthPenalty: -1,
      eosTokenIds: [FAKE_TOKEN_IDS.eos.opt],
      paddingSide: 'left',
      maxPromptTokens: null,
    });
    expect(fake.calls[0]![0]!.prompt).toBe('Question: is there a blue triangle? Answer:');
  });

  it("every setting is overridable on its own, the others staying the protocol's", async () => {
    const overrides = {
      numBeams: 3,
      lengthPenalty: 0.5,
      eosTokenIds: [7, 8],
      maxNewTokens: 4,
      minNewTokens: 2,
      paddingSide: 'right',
      maxPromptTokens: null,
    } as const;
    for (const [key, value] of Object.entries(overrides)) {
      const fake = new FakeAnswerer('opt');
      const out = await runEvaluation(base({ answerer: fake, limit: 2, generation: { [key]: value } }));
      const expected = { ...fake.vqaSettings('lavis'), [key]: value };
      const { prompt: _, questionPreprocess: __, ...generation } = expected;
      expect(fake.settings[0], key).toEqual(generation);
      expect(out.settings, key).toMatchObject({ ...expected, protocol: 'lavis' });
    }
    const fake = new FakeAnswerer('opt');
    const out = await runEvaluation(
      base({ answerer: fake, limit: 2, prompt: 'Q: {} A:', questionPreprocess: 'none' }),
    );
    expect(fake.calls[0]![0]!.prompt).toBe('Q: Is there a blue triangle? A:');
    expect(out.settings).toMatchObject({ prompt: 'Q: {} A:', questionPreprocess: 'none', lengthPenalty: 0 });
  });

  it('without annotations writes the results only (test-dev goes to EvalAI)', async () => {
    const dir = tempDir();
    const out = join(dir, 'test-dev.json');
    const outcome = await runEvaluation(base({ annotationsPath: undefined, out }));
    expect(outcome.accuracy).toBeUndefined();
    expect(outcome.files).toEqual({ results: out });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(outcome.results);
    expect(outcome.results).toHaveLength(60);
    expect(existsSync(reportPathsFor(out).json)).toBe(false);
    expect(existsSync(reportPathsFor(out).markdown)).toBe(false);
    expect(existsSync(progressPathFor(out))).toBe(false);
  });

  it('runShapesVal runs all 200 questions the way the reference did', async () => {
    const fake = new FakeAnswerer('opt');
    const { outcome, reference } = await runShapesVal(fake, 'greedy');
    expect(outcome.questions).toBe(200);
    expect(fake.calls.map((c) => c.length)).toEqual([50, 50, 50, 50]);
    expect(fake.calls[0]![0]!.prompt).toBe('Question: Is there a blue triangle? Answer:');
    expect(reference.accuracy).toBe(77.5);
    // the run's accuracy is the official scorer's on its results
    expect(outcome.accuracy).toEqual(scoreVqa(loadAnnotations(shapes.annotations), outcome.results));
  });

  it('writes results, report and removes the progress log when done', async () => {
    const dir = tempDir();
    const out = join(dir, 'r.json');
    const outcome = await runEvaluation(base({ out }));
    const written = JSON.parse(readFileSync(out, 'utf8'));
    expect(written).toEqual(outcome.results);
    expect(written.map((r: { question_id: number }) => r.question_id)).toEqual(
      [...written.map((r: { question_id: number }) => r.question_id)].sort((a, b) => a - b),
    );
    expect(existsSync(progressPathFor(out))).toBe(false);
    const report = JSON.parse(readFileSync(reportPathsFor(out).json, 'utf8'));
    expect(report.accuracy.overall).toBe(outcome.accuracy!.overall);
    expect(report.settings).toEqual(outcome.settings);
    expect(report.model).toBe('fake-model');
    expect(report.examples.right.length + report.examples.wrong.length).toBeGreaterThan(0);
    expect(report.examples.right[0]?.image ?? report.examples.wrong[0]?.image).toMatch(
      /^COCO_val2014_\d{12}\.jpg$/,
    );
    const md = readFileSync(reportPathsFor(out).markdown, 'utf8');
    expect(md).toContain(`overall accuracy: ${outcome.accuracy!.overall.toFixed(2)}`);
    expect(md).toContain('## Accuracy per question type');
  });

  it('an aborted run resumed gives a byte-identical results file', async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    await runEvaluation(base({ out: full }));

    const out = join(dir, 'resumed.json');
    const controller = new AbortController();
    const first = new FakeAnswerer('opt', { beforeBatch: (n) => (n === 3 ? controller.abort() : undefined) });
    expect(await code(runEvaluation(base({ out, answerer: first, signal: controller.signal })))).toBe(
      'E_ABORTED',
    );
    expect(readProgress(progressPathFor(out)).results).toHaveLength(24);

    const second = new FakeAnswerer();
    const outcome = await runEvaluation(base({ out, answerer: second, resume: true }));
    expect(second.calls.flat()).toHaveLength(36);
    expect(outcome.timings.resumed).toBe(24);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(full, 'utf8'));
  });

  it('a run that crashes mid-way (answerer throws, last line cut short) resumes to the same results', async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    await runEvaluation(base({ out: full }));
    const out = join(dir, 'crash.json');
    const crashing = new FakeAnswerer('opt', {
      beforeBatch: (n) => {
        if (n === 5) throw new Error('out of memory');
      },
    });
    await expect(runEvaluation(base({ out, answerer: crashing }))).rejects.toThrow('out of memory');
    // simulate a kill in the middle of writing the next line
    appendFileSync(progressPathFor(out), '{"type":"answers","results":[{"question_');
    await runEvaluation(base({ out, resume: true }));
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(full, 'utf8'));
  });

  it('two shards merged equal one run; shards are whole batches', async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    await runEvaluation(base({ out: full }));
    const parts = [1, 2, 3].map((k) => join(dir, `s${k}.json`));
    const sizes: number[] = [];
    for (const [i, p] of parts.entries()) {
      const o = await runEvaluation(base({ out: p, shard: { index: i + 1, count: 3 } }));
      sizes.push(o.questions);
    }
    expect(sizes).toEqual([16, 24, 20]); // 8 batches of 8 (last of 4) split 2/3/3 batches
    const merged = join(dir, 'merged.json');
    mergeResults({ inputs: parts, out: merged, questionsPath: shapes.questions, limit: 60 });
    expect(readFileSync(merged, 'utf8')).toBe(readFileSync(full, 'utf8'));
  });

  it('--shard auto reads K/N from a Kubernetes Indexed Job or a Slurm array, and says what is missing', () => {
    expect(shardFromEnvironment({ JOB_COMPLETION_INDEX: '0', JOB_COMPLETIONS: '4' })).toEqual({
      index: 1,
      count: 4,
    });
    expect(shardFromEnvironment({ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' })).toEqual({
      index: 4,
      count: 4,
    });
    const slurm1 = { SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' };
    expect(shardFromEnvironment({ ...slurm1, SLURM_ARRAY_TASK_ID: '1' })).toEqual({ index: 1, count: 4 });
    const bad: [Record<string, string>, RegExp][] = [
      [{}, /neither JOB_COMPLETION_INDEX \(Kubernetes Indexed Job\) nor SLURM_ARRAY_TASK_ID/],
      [{ JOB_COMPLETION_INDEX: '1' }, /JOB_COMPLETIONS is not: set it to the Job's spec.completions/],
      [{ JOB_COMPLETION_INDEX: '4', JOB_COMPLETIONS: '4' }, /shard index 4 of 4/],
      [{ JOB_COMPLETION_INDEX: 'x', JOB_COMPLETIONS: '4' }, /JOB_COMPLETION_INDEX is "x"/],
      [{ SLURM_ARRAY_TASK_ID: '2' }, /SLURM_ARRAY_TASK_COUNT is not set/],
      [
        {
          SLURM_ARRAY_TASK_ID: '2',
          SLURM_ARRAY_TASK_COUNT: '4',
          SLURM_ARRAY_TASK_MIN: '0',
          SLURM_ARRAY_TASK_MAX: '6',
        },
        /array 0-6 has 4 tasks, not one per id/,
      ],
    ];
    for (const [env, message] of bad) {
      expect(() => shardFromEnvironment(env)).toThrow(message);
      expect(() => shardFromEnvironment(env)).toThrow(VqaEvalError);
    }
  });

  it('shard selection covers every question exactly once for any N', () => {
    const items = Array.from({ length: 203 }, (_, i) => i);
    for (const count of [1, 2, 3, 7, 40]) {
      const got = Array.from({ length: count }, (_, k) =>
        selectQuestions(items, { shard: { index: k + 1, count }, batchSize: 5 }),
      ).flat();
      expect(got).toEqual(items);
    }
  });

  it('refuses to overwrite a progress log without --resume, and a resume with other settings', async () => {
    const dir = tempDir();
    const out = join(dir, 'r.json');
    const controller = new AbortController();
    const first = new FakeAnswerer('opt', { beforeBatch: (n) => (n === 1 ? controller.abort() : undefined) });
    await code(runEvaluation(base({ out, answerer: first, signal: controller.signal })));
    expect(await code(runEvaluation(base({ out })))).toBe('E_PROGRESS_EXISTS');
    const mismatch = runEvaluation(base({ out, resume: true, generation: { numBeams: 1 } }));
    await expect(mismatch).rejects.toThrow(/numBeams: recorded 5, now 1/);
    expect(await code(runEvaluation(base({ out, resume: true, limit: 30 })))).toBe('E_RESUME_MISMATCH');
  });

  it('--out that cannot be written is a typed error before the data is read or the model loads', async () => {
    const dir = tempDir();
    let loaded = false;
    const answerer = async () => {
      loaded = true;
      return new FakeAnswerer();
    };
    const cases: [string, RegExp][] = [
      [join(dir, 'missing', 'r.json'), /--out .*r\.json: the folder .*missing does not exist/],
      [dir, /is a directory, not a file/],
    ];
    mkdirSync(join(dir, 'sub'));
    symlinkSync(join(dir, 'elsewhere.json'), join(dir, 'link.json'));
    cases.push([join(dir, 'link.json'), /link\.json \(--out\) is a symbolic link/]);
    // a dangling link where the progress log goes: never followed, the target never created
    symlinkSync(join(dir, 'planted.jsonl'), progressPathFor(join(dir, 'p.json')));
    cases.push([join(dir, 'p.json'), /p\.json\.progress\.jsonl \(output of --out .*\) is a symbolic link/]);
    for (const [out, message] of cases) {
      const p = runEvaluation(base({ out, answerer, questionsPath: join(dir, 'not-read-yet.json') }));
      await expect(p).rejects.toThrow(message);
      expect(await code(p)).toBe('E_OUT');
    }
    expect(loaded).toBe(false);
    expect(existsSync(join(dir, 'planted.jsonl'))).toBe(false);
    expect(existsSync(join(dir, 'elsewhere.json'))).toBe(false);
    expect(lstatSync(join(dir, 'link.json')).isSymbolicLink()).toBe(true);
  });

  it('two runs on one --out in one process: the second is refused while the first runs', async () => {
    const out = join(tempDir(), 'r.json');
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = new FakeAnswerer('opt', { beforeBatch: (n) => (n === 0 ? gate : undefined) });
    const first = runEvaluation(base({ out, answerer: slow }));
    await new Promise((r) => setTimeout(r, 50));
    const second = runEvaluation(base({ out, resume: true }));
    await expect(second).rejects.toThrow(new RegExp(`in use by a live run: pid ${process.pid} on host`));
    release();
    const outcome = await first;
    expect(outcome.results).toHaveLength(60);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("an annotation whose image_id differs from its question's is refused before the model loads", async () => {
    const dir = tempDir();
    const annotations = JSON.parse(readFileSync(shapes.annotations, 'utf8'));
    const first = annotations.annotations[0];
    first.image_id += 1;
    const path = join(dir, 'annotations.json');
    writeFileSync(path, JSON.stringify(annotations));
    let loaded = false;
    const p = runEvaluation(
      base({
        annotationsPath: path,
        answerer: async () => {
          loaded = true;
          return new FakeAnswerer();
        },
      }),
    );
    await expect(p).rejects.toThrow(
      new RegExp(
        `question_id ${first.question_id} is for image_id ${first.image_id}, but the question is about image_id ${first.image_id - 1}`,
      ),
    );
    expect(await code(p)).toBe('E_ANNOTATION_MISMATCH');
    expect(loaded).toBe(false);
  });

  it('reports a corrupt progress log by line', async () => {
    const dir = tempDir();
    const out = join(dir, 'r.json');
    writeFileSync(progressPathFor(out), '{"type":"header","version":1,"settings":{}}\nnot json\n');
    await expect(runEvaluation(base({ out, resume: true }))).rejects.toThrow(/line 2 is not JSON/);
    writeFileSync(progressPathFor(out), '{"type":"answers","results":[]}\n');
    expect(await code(runEvaluation(base({ out, resume: true })))).toBe('E_PROGRESS_CORRUPT');
  });

  it('an answerer returning the wrong number of answers is an error', async () => {
    const bad = new FakeAnswerer();
    bad.answer = async (items) => items.slice(1).map(() => 'x');
    await expect(runEvaluation(base({ answerer: bad }))).rejects.toThrow(
      /returned 7 answers for a batch of 8/,
    );
  });

  it('checks every image before loading the model', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'images'));
    copyFileSync(
      join(shapes.images, 'COCO_val2014_000000000001.jpg'),
      join(dir, 'images', 'COCO_val2014_000000000001.jpg'),
    );
    let loaded = false;
    const p = runEvaluation(
      base({
        imagesDir: join(dir, 'images'),
        answerer: async () => {
          loaded = true;
          return new FakeAnswerer();
        },
      }),
    );
    await expect(p).rejects.toThrow(/question_id 1002 \(image_id 2\): .*COCO_val2014_000000000002\.jpg/);
    expect(await code(p)).toBe('E_IMAGE_MISSING');
    expect(loaded).toBe(false);
  });

  it('closes an answerer it loaded itself', async () => {
    const fake = new FakeAnswerer();
    await runEvaluation(base({ answerer: async () => fake, limit: 4 }));
    expect(fake.closed).toBe(true);
  });
});

describe('merge', () => {
  it('refuses overlapping shards and incomplete coverage', () => {
    const dir = tempDir();
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    writeFileSync(a, JSON.stringify([{ question_id: 1000, answer: 'yes' }]));
    writeFileSync(b, JSON.stringify([{ question_id: 1000, answer: 'no' }]));
    expect(() => mergeResults({ inputs: [a, b] })).toThrow(
      /question_id 1000 is answered in both .*a\.json and .*b\.json/,
    );
    try {
      mergeResults({ inputs: [a], questionsPath: shapes.questions, limit: 3 });
    } catch (e) {
      expect((e as VqaEvalError).code).toBe('E_MERGE_INCOMPLETE');
      expect((e as VqaEvalError).message).toMatch(/missing question ids: 2 \(1001, 1002\)/);
    }
    expect.assertions(3);
  });
});

describe('vqa-eval CLI (in process)', () => {
  const io = () => {
    const o = { out: '', err: '' };
    const stdout = (t: string) => {
      o.out += t;
    };
    const stderr = (t: string) => {
      o.err += t;
    };
    return { o, io: { stdout, stderr } };
  };
  const moduleHook = join(import.meta.dirname, 'fixtures', 'test-answerer.mjs');

  it('run --json prints accuracy, results path, question count and timings', async () => {
    const dir = tempDir();
    const { o, io: cio } = io();
    const args = [
      'run',
      '--model',
      'm',
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
    ];
    args.push(
      '--images',
      shapes.images,
      '--answerer-module',
      moduleHook,
      '--limit',
      '20',
      '--batch-size',
      '6',
    );
    args.push('--length-penalty', '-1', '--out', join(dir, 'r.json'), '--json');
    expect(await main(args, cio)).toBe(0);
    const printed = JSON.parse(o.out);
    expect(Object.keys(printed)).toEqual(['accuracy', 'results', 'questions', 'settings', 'timings']);
    expect(printed.settings).toMatchObject({
      protocol: 'lavis',
      lengthPenalty: -1,
      batchSize: 6,
      maxPromptTokens: 32,
    });
    expect(Object.keys(printed.accuracy)).toEqual(['overall', 'perAnswerType', 'perQuestionType']);
    expect(printed.questions).toBe(20);
    expect(printed.results).toBe(join(dir, 'r.json'));
    expect(printed.timings.answered).toBe(20);
    // every setting has its flag
    const flags = io();
    const overridden = [...args.filter((a) => a !== '--json'), '--protocol', 'paper', '--num-beams', '2'];
    overridden.push('--eos-token-ids', '5,6', '--padding-side', 'right', '--min-new-tokens', '0');
    overridden.push('--max-new-tokens', '3', '--prompt', 'Q: {}', '--question-preprocess', 'none');
    overridden.push('--max-prompt-tokens', '7', '--json');
    expect(await main(overridden, flags.io)).toBe(0);
    expect(JSON.parse(flags.o.out).settings).toMatchObject({
      protocol: 'paper',
      prompt: 'Q: {}',
      questionPreprocess: 'none',
      numBeams: 2,
      lengthPenalty: -1,
      eosTokenIds: [5, 6],
      maxNewTokens: 3,
      minNewTokens: 0,
      paddingSide: 'right',
      maxPromptTokens: 7,
    });
    const untruncated = io();
    const noLimit = [...args.filter((a) => a !== '--json'), '--max-prompt-tokens', 'none', '--json'];
    expect(await main(noLimit, untruncated.io)).toBe(0);
    expect(JSON.parse(untruncated.o.out).settings).toMatchObject({
      protocol: 'lavis',
      maxPromptTokens: null,
    });
    // the score command agrees with the run
    const s = io();
    const scoreArgs = ['score', '--questions', shapes.questions, '--annotations', shapes.annotations];
    expect(await main([...scoreArgs, '--results', join(dir, 'r.json'), '--json'], s.io)).toBe(1);
    expect(s.o.err).toMatch(/E_RESULTS_MISMATCH.*missing question ids: 180/);
  });

  it('score --json on the reference predictions', async () => {
    const dir = tempDir();
    const results = join(dir, 'hf.json');
    const { hfPredictions } = await import('./helpers.js');
    writeFileSync(results, JSON.stringify(hfPredictions('t5').greedy.results));
    const { o, io: cio } = io();
    const args = ['score', '--questions', shapes.questions, '--annotations', shapes.annotations];
    expect(await main([...args, '--results', results, '--json'], cio)).toBe(0);
    const printed = JSON.parse(o.out);
    expect(printed.overall).toBe(73);
    expect(Object.keys(printed.perQuestion)).toHaveLength(200);
    const text = io();
    expect(await main([...args, '--results', results], text.io)).toBe(0);
    expect(text.o.out).toMatch(/^Overall Accuracy is: 73\.00\n/);
  });

  it('a model that cannot be loaded fails with E_MODEL after checking the data', async () => {
    const { o, io: cio } = io();
    const missing = join(tempDir(), 'no-such-model');
    const args = ['run', '--model', missing, '--questions', shapes.questions];
    args.push(
      '--annotations',
      shapes.annotations,
      '--images',
      shapes.images,
      '--out',
      join(tempDir(), 'r.json'),
    );
    expect(await main(args, cio)).toBe(1);
    expect(o.err).toContain(`E_MODEL: cannot load model "${missing}"`);
  });

  it('bad arguments are E_ARGS with exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--questions', 'q'], /--model is required/],
      [['run', '--model', 'm', '--num-beams', 'five'], /--num-beams "five": expected an integer/],
      [['run', '--model', 'm', '--shard', '3/2'], /--shard "3\/2": expected K\/N/],
      [['run', '--model', 'm', '--question-preprocess', 'blip'], /--question-preprocess "blip"/],
      [['run', '--model', 'm', '--protocol', 'lavis2'], /--protocol "lavis2": expected lavis or paper/],
      [['run', '--model', 'm', '--eos-token-ids', '2,x'], /--eos-token-ids "2,x": expected token ids/],
      [
        ['run', '--model', 'm', '--padding-side', 'middle'],
        /--padding-side "middle": expected left or right/,
      ],
      [['run', '--model', 'm', '--max-prompt-tokens', '0'], /--max-prompt-tokens 0: must be >= 1/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['score', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const { o, io: cio } = io();
      expect(await main(args, cio)).toBe(2);
      expect(o.err).toMatch(message);
      expect(o.err).toContain('E_ARGS');
    }
  });

  it('a module without createAnswerer is E_ANSWERER', async () => {
    const { o, io: cio } = io();
    const args = [
      'run',
      '--model',
      'm',
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
    ];
    args.push('--images', shapes.images, '--answerer-module', join(import.meta.dirname, 'helpers.ts'));
    args.push('--out', join(tempDir(), 'r.json'));
    expect(await main(args, cio)).toBe(1);
    expect(o.err).toMatch(/E_ANSWERER: --answerer-module .*does not export createAnswerer/);
  });
});
