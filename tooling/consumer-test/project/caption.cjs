// The same from CommonJS: the packages ship a require() build too.
const { Blip2ForConditionalGeneration } = require('@blip2/sdk');

(async () => {
  const [captioner, image] = process.argv.slice(2);
  const model = await Blip2ForConditionalGeneration.fromPretrained(captioner);
  console.log(JSON.stringify({ caption: await model.caption(image) }));
  await model.dispose();
})();
