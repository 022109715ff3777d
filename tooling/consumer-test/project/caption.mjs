// What a Node user writes after `npm install @blip2/sdk @blip2/backend-node sharp`.
import { Blip2ForConditionalGeneration } from '@blip2/sdk';

const [captioner, vqa, image] = process.argv.slice(2);
const model = await Blip2ForConditionalGeneration.fromPretrained(captioner);
const caption = await model.caption(image);
await model.dispose();
const asker = await Blip2ForConditionalGeneration.fromPretrained(vqa);
const answers = await asker.ask(image, ['What color is the circle?', 'How many shapes are there?']);
await asker.dispose();
console.log(JSON.stringify({ caption, answers }));
