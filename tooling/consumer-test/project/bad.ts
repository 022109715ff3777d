// The one line tsc must refuse: an array of images gives string[], not a string.
import type { Blip2ForConditionalGeneration } from '@blip2/sdk';

export async function bad(model: Blip2ForConditionalGeneration): Promise<string> {
  const text: string = await model.caption(['a.jpg', 'b.jpg']);
  return text;
}
