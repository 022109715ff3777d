// Type-checked against the published .d.ts in a Node project (no lib "dom"; skipLibCheck
// as `tsc --init` sets it, since onnxruntime-common's own .d.ts need the DOM types): what
// a TypeScript user may and may not write. Without the DOM, ImageInput must still be a
// real type: were its DOM members unresolved, it would be `any` and caption(42) compile.
import {
  Blip2ForConditionalGeneration,
  type GenerationOptions,
  type ImageInput,
  type RawImage,
} from '@blip2/sdk';

export async function typed(path: string, pixels: RawImage, bytes: Uint8Array): Promise<string[]> {
  const model = await Blip2ForConditionalGeneration.fromPretrained(path, { device: 'cpu' });
  const options: GenerationOptions = { maxNewTokens: 5, numBeams: 2 };
  const one: string = await model.caption(path, options);
  const many: string[] = await model.caption([path, pixels, bytes]);
  const answers: string[] = await model.ask(path, ['what color?', 'how many?']);
  const answer: string = await model.ask(new URL(`file://${path}`), 'what color?');
  const input: ImageInput = bytes.buffer as ArrayBuffer;
  // @ts-expect-error a number is no image
  await model.caption(42);
  // @ts-expect-error one image gives one string, not an array
  const wrong: string[] = await model.caption(path);
  // @ts-expect-error a question is text
  await model.ask(path, 7);
  await model.dispose();
  return [one, ...many, ...answers, answer, String(input), ...wrong];
}
