// A browser page as a user writes it: @blip2/sdk/browser from npm, onnxruntime-web's
// files served wherever the app wants them (here /static/onnx/), wasm.
import { Blip2ForConditionalGeneration, configureWebRuntime, type ImageInput } from '@blip2/sdk/browser';

configureWebRuntime({ wasmPaths: '/static/onnx/' });

async function run(): Promise<{ caption: string; answers: string[] }> {
  const captioner = await Blip2ForConditionalGeneration.fromPretrained('/models/captioner/', {
    device: 'wasm',
  });
  const image: ImageInput = await (await fetch('/image.jpg')).blob();
  const caption = await captioner.caption(image);
  await captioner.dispose();
  const vqa = await Blip2ForConditionalGeneration.fromPretrained('/models/vqa/', { device: 'wasm' });
  const img = new Image();
  img.src = '/image.jpg';
  await img.decode();
  const answers = await vqa.ask(img, ['What color is the circle?', 'How many shapes are there?']);
  await vqa.dispose();
  return { caption, answers };
}

(globalThis as { run?: typeof run }).run = run;
