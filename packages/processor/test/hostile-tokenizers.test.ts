// A corpus of broken tokenizer.json / tokenizer_config.json files, made from the fixture
// tokenizers: each refused by a ProcessorError E_TOKENIZER_JSON naming the file and the
// field, never a raw TypeError and never silently ignored.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { Blip2Processor, ImageProcessor, ProcessorError, Tokenizer } from '../src/index.js';

// biome-ignore lint/suspicious/noExplicitAny: the corpus edits arbitrary paths of parsed JSON
type Json = Record<string, any>;
const read = (p: string): Json => JSON.parse(readFileSync(p, 'utf8'));
const bpe = () => read(join(fixtures.tinyOpt, 'tokenizer.json'));
const unigram = () => read(join(fixtures.tinyT5, 'tokenizer.json'));
const optConfig = () => read(join(fixtures.tinyOpt, 'tokenizer_config.json'));

const CASES: [string, () => Json, (j: Json) => void, string][] = [
  [
    'a BPE id as a string',
    bpe,
    (j) => {
      j.model.vocab['</s>'] = '2';
    },
    'tokenizer.json model (BPE): vocab["</s>"] must be an id in [0, 16777215], got "2"',
  ],
  [
    'a negative BPE id',
    bpe,
    (j) => {
      j.model.vocab['</s>'] = -2;
    },
    'vocab["</s>"] must be an id in [0, 16777215], got -2',
  ],
  [
    'a huge BPE id',
    bpe,
    (j) => {
      j.model.vocab['</s>'] = 1e12;
    },
    'got 1000000000000',
  ],
  [
    'a BPE vocab as a list',
    bpe,
    (j) => {
      j.model.vocab = ['a', 'b'];
    },
    '"vocab" must be an object of token -> id, got an array',
  ],
  [
    'a merge that is a number',
    bpe,
    (j) => {
      j.model.merges[0] = 7;
    },
    'merges[0] must be "a b" or ["a", "b"], got 7',
  ],
  [
    'a merge of three',
    bpe,
    (j) => {
      j.model.merges[1] = ['a', 'b', 'c'];
    },
    'merges[1] must be "a b" or ["a", "b"]',
  ],
  [
    'a Unigram piece without a score',
    unigram,
    (j) => {
      j.model.vocab[3] = ['x'];
    },
    'tokenizer.json model (Unigram): vocab[3] must be [piece, finite score], got ["x"]',
  ],
  [
    'a Unigram score as a string',
    unigram,
    (j) => {
      j.model.vocab[4] = ['x', '-1.5'];
    },
    'vocab[4] must be [piece, finite score]',
  ],
  [
    'a Unigram unk_id past the pieces',
    unigram,
    (j) => {
      j.model.unk_id = 1e6;
    },
    'unk_id 1000000 is outside the vocabulary',
  ],
  [
    'a fractional Unigram unk_id',
    unigram,
    (j) => {
      j.model.unk_id = 1.5;
    },
    'unk_id 1.5 is outside the vocabulary',
  ],
  [
    'an added token with a negative id',
    bpe,
    (j) => {
      j.added_tokens[0].id = -1;
    },
    'tokenizer.json: added_tokens[0].id must be an integer in [0, 16777215], got -1',
  ],
  [
    'an added token with a huge id',
    bpe,
    (j) => {
      j.added_tokens[0].id = 2 ** 40;
    },
    'added_tokens[0].id must be an integer in [0, 16777215]',
  ],
  [
    'an added token without content',
    bpe,
    (j) => {
      j.added_tokens[0].content = '';
    },
    'added_tokens[0] needs a numeric "id" and a non-empty "content"',
  ],
  [
    'no model',
    bpe,
    (j) => {
      delete j.model;
    },
    'tokenizer.json: no "model" section',
  ],
];

const CONFIG_CASES: [string, (j: Json) => void, string][] = [
  [
    'a pad token as a number',
    (j) => {
      j.pad_token = 1;
    },
    'tokenizer_config.json: pad_token must be a token string or {"content": "..."}, got number 1',
  ],
  [
    'an eos token as a list',
    (j) => {
      j.eos_token = ['</s>'];
    },
    'tokenizer_config.json: eos_token must be a token string or {"content": "..."}, got an array of length 1',
  ],
  [
    'an AddedToken without content',
    (j) => {
      j.bos_token = { id: 2 };
    },
    'bos_token must be a token string or {"content": "..."}',
  ],
  [
    'clean_up_tokenization_spaces as a string',
    (j) => {
      j.clean_up_tokenization_spaces = 'yes';
    },
    'tokenizer_config.json: clean_up_tokenization_spaces must be true or false, got the string "yes"',
  ],
];

function refusal(fn: () => unknown): ProcessorError {
  try {
    fn();
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(ProcessorError);
    return e as ProcessorError;
  }
  throw new Error('accepted a broken tokenizer');
}

describe('broken tokenizer.json files', () => {
  it('the unbroken fixtures load', () => {
    expect(Tokenizer.fromJSON(bpe(), optConfig()).vocabSize).toBe(947);
    expect(Tokenizer.fromJSON(unigram()).vocabSize).toBe(344);
  });
  for (const [name, base, edit, says] of CASES) {
    it(name, () => {
      const j = base();
      edit(j);
      const e = refusal(() => Tokenizer.fromJSON(j));
      expect(e.code).toBe('E_TOKENIZER_JSON');
      expect(e.message).toContain(says);
    });
  }
});

describe('broken tokenizer_config.json files', () => {
  for (const [name, edit, says] of CONFIG_CASES) {
    it(name, () => {
      const j = optConfig();
      edit(j);
      const e = refusal(() => Tokenizer.fromJSON(bpe(), j));
      expect(e.code).toBe('E_TOKENIZER_JSON');
      expect(e.message).toContain(says);
    });
  }
  it('a list instead of an object', () => {
    expect(refusal(() => Tokenizer.fromJSON(bpe(), [])).message).toBe(
      'tokenizer_config.json: expected a JSON object, got an array of length 0',
    );
  });
  it('null named tokens mean none, as transformers reads them', () => {
    const j = optConfig();
    j.mask_token = null;
    expect(Tokenizer.fromJSON(bpe(), j).specialTokens.mask_token).toBeUndefined();
  });
});

describe('unknown option names, refused with the closest known one', () => {
  const tok = () => Tokenizer.fromJSON(bpe(), optConfig());
  const CASES: [string, () => unknown, string][] = [
    [
      'encode',
      () => tok().encode('a', null, { addSpecialToken: false } as never),
      `unknown option "addSpecialToken" in encode options (did you mean 'addSpecialTokens'?)`,
    ],
    [
      'decode',
      () => tok().decode([4], { skip_special_tokens: true } as never),
      `unknown option "skip_special_tokens" in decode options (did you mean 'skipSpecialTokens'?)`,
    ],
    [
      'ImageProcessor',
      () => new ImageProcessor({ imageMeans: [0, 0, 0] } as never),
      `unknown option "imageMeans" in ImageProcessor options (did you mean 'imageMean'?)`,
    ],
    [
      'Blip2Processor',
      () =>
        new Blip2Processor({
          imageProcessor: new ImageProcessor(),
          tokenizer: tok(),
          numQueryTokens: 5,
          paddingSlide: 'left',
        } as never),
      `unknown option "paddingSlide" in Blip2Processor options (did you mean 'paddingSide'?)`,
    ],
  ];
  for (const [name, run, says] of CASES) {
    it(name, () => {
      const e = refusal(run);
      expect(e.code).toBe('E_OPTION');
      expect(e.message).toBe(says);
    });
  }
  it('Blip2Processor.process', async () => {
    const processor = new Blip2Processor({
      imageProcessor: new ImageProcessor(),
      tokenizer: tok(),
      numQueryTokens: 5,
    });
    const e = await processor.process({ image: 'x.png', text: 'a' } as never).catch((err) => err);
    expect(e).toBeInstanceOf(ProcessorError);
    expect(e.message).toBe(`unknown option "image" in Blip2Processor.process input (did you mean 'images'?)`);
  });
});
